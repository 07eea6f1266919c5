/**
 * Security of the links: MQTT over TLS (CA, client certificate and key) with username/password against a real
 * mosquitto with generated certificates; a tus bearer token from an environment variable; the MQTT password from a
 * file. Neither secret may appear in the daemon's logs or in `dockctl status`.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import type { Subscriber } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, filesJson, statusJson } from '../helpers/dockctlJson.ts';

const TOKEN_ENV = 'DOCKD_TEST_TOKEN';

describe('MQTT over TLS with a client certificate and password; secrets from a file and the environment', () => {
  // Distinctive values, so that a leak anywhere is found by a plain substring search.
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const token = `tok-${randomBytes(16).toString('hex')}`;
  const hqPassword = `hq-${randomBytes(8).toString('hex')}`;
  // mosquitto with only a TLS listener: client certificate required, password file, no anonymous access.
  const station = useStation({
    prefix: 'dockd-tls-',
    broker: { tls: true, users: { 'dockd-station': password, hq: hqPassword } },
  });

  beforeEach(() => {
    // HQ's tus server refuses any request without the token.
    station.tus.auth = { expect: `Bearer ${token}` };
    process.env[TOKEN_ENV] = `Bearer ${token}`;
    station.onCleanup(() => delete process.env[TOKEN_ENV]);
  });

  async function world(ca: string) {
    const { broker, tus } = station;
    const passwordFile = path.join(station.dir, 'secrets', 'mqtt-password');
    await fs.mkdir(path.dirname(passwordFile), { recursive: true });
    await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    return station.world({
      extra: {
        hq: {
          embedded: false,
          tus: {
            endpoint: tus.endpoint,
            stallTimeoutSeconds: 5,
            maxRetryDelaySeconds: 2,
            headers: { Authorization: { env: TOKEN_ENV } },
          },
          mqtt: {
            url: broker.url,
            topicPrefix: 'dockd',
            username: 'dockd-station',
            password: { file: passwordFile },
            tls: { ca, cert: broker.pki!.clientCert, key: broker.pki!.clientKey },
          },
        },
      },
    });
  }

  /** A daemon that trusts the broker certificates of `ca`, and HQ's subscriber (TLS, its own user). */
  async function start(ca: 'ca' | 'otherCa') {
    const w = await world(station.broker.pki![ca]);
    const sub = await station.subscribeAs('hq', 'dockd/test-st/#');
    const daemon = await station.startDaemon(w.configFile);
    return { w, sub, daemon };
  }

  async function retainedOnline(sub: Subscriber): Promise<void> {
    await waitFor(
      'retained online over TLS',
      () => sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'online'),
      30_000,
    );
  }

  async function dockOneClip(mountRoot: string, variant: number): Promise<string> {
    const clip = await sampleMedia('video', 2, variant);
    const name = recordingName({ at: '20261128090000', seq: 1 });
    await dockVolume(mountRoot, 'REC1', async (v) => {
      await fs.copyFile(clip, path.join(v, name));
      await fs.writeFile(
        path.join(v, name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'T-1', purpose: '取证', place: '幸福路12号' }),
      );
    });
    return sha256OfFile(clip);
  }

  function expectNoSecret(text: string, where: string): void {
    expect(text.length, where).toBeGreaterThan(0);
    for (const secret of [password, token]) expect(text.includes(secret), `${where} contains a secret`).toBe(false);
  }

  it('connects over TLS (retained online seen by a TLS subscriber), sends the bearer token to tus, and never shows a secret', async () => {
    const { w, sub, daemon } = await start('ca');

    await retainedOnline(sub);
    const sha = await dockOneClip(w.mountRoot, 901);
    await waitFor('the upload verified by the tus server', () => station.tus.finished.some((u) => u.sha256 === sha), 60_000);
    // Every request carried the token from the environment (a request without it would have been refused).
    expect(station.tus.authorizations.length).toBeGreaterThanOrEqual(2); // creation + at least one PATCH
    expect(new Set(station.tus.authorizations)).toEqual(new Set([`Bearer ${token}`]));
    await waitFor(
      'file.uploaded on MQTT over TLS',
      () => sub.messages.some((m) => m.topic === 'dockd/test-st/event' && JSON.parse(m.payload).type === 'file.uploaded'),
      30_000,
    );
    await waitFor('catalog shows it uploaded', async () =>
      (await filesJson(w.configFile)).some((f) => f.sha256 === sha && f.state === 'uploaded'),
    );

    const status = await statusJson(w.configFile);
    expect(status.json.daemon).toBe('running');
    expect(status.json.links).toMatchObject({ mqtt: 'connected', tus: 'ok' });
    expect(status.json.alarms.map((a) => a.code)).not.toContain('MQTT_UNREACHABLE');
    expectNoSecret(status.raw, 'dockctl status --json');
    const text = await runDockctl(w.configFile, ['status']);
    expect(text.code).toBe(0);
    expectNoSecret(text.stdout + text.stderr, 'dockctl status');
    expectNoSecret(JSON.stringify(await dockctlAudit(w.configFile)), 'dockctl audit --json');
    // Everything the daemon wrote (debug level: the most it ever says), plus what reached MQTT.
    expectNoSecret(JSON.stringify(daemon.logs) + daemon.stderr, 'daemon logs');
    expectNoSecret(sub.messages.map((m) => m.payload).join('\n'), 'MQTT messages');
    expect(await daemon.stop()).toBe(0);
    expectNoSecret(JSON.stringify(daemon.logs) + daemon.stderr, 'daemon logs after stop');
    await waitFor('offline over TLS', () =>
      sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'offline'),
    );
  });

  it('a broker certificate from another CA is refused: not connected, MQTT_UNREACHABLE, and the daemon keeps working', async () => {
    const { w, sub, daemon } = await start('otherCa');

    const status = await waitFor(
      'MQTT_UNREACHABLE in dockctl status',
      async () => {
        const s = await statusJson(w.configFile);
        return s.json.alarms.some((a) => a.code === 'MQTT_UNREACHABLE') ? s : null;
      },
      60_000,
      500,
    );
    expect(status.json.daemon).toBe('running');
    expect(status.json.links?.mqtt).toBe('disconnected');
    await daemon.waitForLog(
      (l) => l.msg === 'mqtt error' && /certificate/i.test(JSON.stringify(l.err)),
      'a certificate error in the logs',
    );
    expect(daemon.logs.some((l) => l.msg === 'connected to broker')).toBe(false);

    // Still running and still working: a docked clip is copied and uploaded (with the token) while MQTT is refused.
    const sha = await dockOneClip(w.mountRoot, 902);
    await waitFor('the upload verified by the tus server', () => station.tus.finished.some((u) => u.sha256 === sha), 60_000);
    expect(new Set(station.tus.authorizations)).toEqual(new Set([`Bearer ${token}`]));
    expect(daemon.proc?.exitCode).toBeNull();
    const after = await statusJson(w.configFile);
    expect(after.json).toMatchObject({ daemon: 'running', links: { mqtt: 'disconnected' } });
    expect(after.json.queue.outbox).toBeGreaterThan(0); // events wait for the broker
    expect(sub.messages.filter((m) => m.topic.startsWith('dockd/test-st/'))).toEqual([]);
    expectNoSecret(after.raw, 'dockctl status --json');
    expectNoSecret(JSON.stringify(daemon.logs) + daemon.stderr, 'daemon logs');
    expect(await daemon.stop()).toBe(0);
  });

  it('an HQ refusal that echoes the token back does not carry it into logs, status, the catalog or MQTT', async () => {
    station.tus.auth = { expect: 'Bearer something-else', echoRefused: true };
    const { w, sub, daemon } = await start('ca');
    await retainedOnline(sub);
    await dockOneClip(w.mountRoot, 903);

    // HQ refuses (401) with the token in its error text; dockd reports the refusal …
    const status = await waitFor(
      'UPLOAD_REFUSED in dockctl status',
      async () => {
        const s = await statusJson(w.configFile);
        return s.json.alarms.some((a) => a.code === 'UPLOAD_REFUSED') ? s : null;
      },
      60_000,
      500,
    );
    await daemon.waitForLog((l) => l.msg === 'HQ refused the upload', 'the refusal in the logs');
    expect(station.tus.authorizations).toContain(`Bearer ${token}`);
    const refusal = status.json.alarms.find((a) => a.code === 'UPLOAD_REFUSED')!;
    expect(refusal.message).toMatch(/401/);
    expect(refusal.message).toMatch(/invalid credentials/); // HQ's words are kept, the secret in them is not
    // … without repeating the secret anywhere.
    expectNoSecret(status.raw, 'dockctl status --json');
    expectNoSecret(JSON.stringify(await filesJson(w.configFile)), 'dockctl files --json');
    expectNoSecret(JSON.stringify(await dockctlAudit(w.configFile)), 'dockctl audit --json');
    expectNoSecret(JSON.stringify(daemon.logs) + daemon.stderr, 'daemon logs');
    await waitFor('the UPLOAD_REFUSED alarm event on MQTT', () =>
      sub.messages.some((m) => m.topic === 'dockd/test-st/event' && JSON.parse(m.payload).code === 'UPLOAD_REFUSED'),
    );
    expectNoSecret(sub.messages.map((m) => m.payload).join('\n'), 'MQTT messages');
    expect(await daemon.stop()).toBe(0);
    expectNoSecret(JSON.stringify(daemon.logs) + daemon.stderr, 'daemon logs after stop');
  });
});
