/**
 * Security of the links: MQTT over TLS (CA, client certificate and key) with username/password against a real
 * mosquitto with generated certificates; a tus bearer token from an environment variable; the MQTT password from a
 * file. Neither secret may appear in the daemon's logs or in `dockctl status`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server, type Upload } from '@tus/server';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DaemonProcess, makeWorld, runDockctl, tempDir } from '../helpers/daemon.ts';
import type { Received } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, filesJson, statusJson } from '../helpers/dockctlJson.ts';

const run = promisify(execFile);
const MOSQUITTO = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
const TOKEN_ENV = 'DOCKD_TEST_TOKEN';

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(
      err.code === 'ENOENT'
        ? 'openssl is not installed (apt-get install openssl): the TLS test needs it to make certificates'
        : `openssl ${args[0]} failed: ${err.stderr ?? err.message}`,
    );
  }
}

interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
}

/** A CA, a server certificate for 127.0.0.1 (subjectAltName IP), a client certificate, and an unrelated CA. */
async function makePki(dir: string): Promise<Pki> {
  await fs.mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caExt = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=dockd test CA',
    ...caExt,
  ]);
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'other-ca.key',
    '-out',
    'other-ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=some other CA',
    ...caExt,
  ]);
  await fs.writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await fs.writeFile(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', '127.0.0.1'],
    ['client', 'dockd test-st'],
  ] as const) {
    await openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  }
  const p = (f: string) => path.join(dir, f);
  return {
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.pem'),
  };
}

/** mosquitto with only a TLS listener: client certificate required, password file, no anonymous access. */
class TlsMosquitto {
  private proc: ChildProcess | null = null;
  port = 0;
  constructor(
    private readonly dir: string,
    private readonly pki: Pki,
    private readonly users: Record<string, string>,
  ) {}

  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const passwd = path.join(this.dir, 'passwd');
    let first = true;
    for (const [user, pass] of Object.entries(this.users)) {
      await run('mosquitto_passwd', ['-b', ...(first ? ['-c'] : []), passwd, user, pass]);
      first = false;
    }
    const conf = path.join(this.dir, 'mosquitto.conf');
    await fs.writeFile(
      conf,
      [
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'allow_anonymous false',
        `password_file ${passwd}`,
        // The files live in a root-only temp dir: do not drop to the mosquitto user.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        `listener ${this.port} 127.0.0.1`,
        `cafile ${this.pki.ca}`,
        `certfile ${this.pki.serverCert}`,
        `keyfile ${this.pki.serverKey}`,
        'require_certificate true',
        '',
      ].join('\n'),
    );
    this.proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.proc.stderr!.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<never>((_, reject) =>
      this.proc!.once('exit', (code) => reject(new Error(`mosquitto exited ${code}: ${stderr}`))),
    );
    exited.catch(() => {});
    await Promise.race([
      exited,
      waitFor(
        'mosquitto (TLS) to listen',
        () =>
          new Promise<boolean>((resolve) => {
            const s = net.connect(this.port, '127.0.0.1', () => {
              s.end();
              resolve(true);
            });
            s.on('error', () => resolve(false));
          }),
        10_000,
      ),
    ]);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}

/** A real tus server (tus 1.0) that refuses any request without the expected Authorization header, and records them. */
class AuthTusServer {
  readonly authorizations: (string | undefined)[] = [];
  readonly finished: { sha256: string; metadata: Record<string, string | null> }[] = [];
  private server: http.Server | null = null;
  port = 0;
  /** When set, a refusal echoes the credential it got (as some servers do in their error text). */
  echoRefused = false;
  constructor(
    private readonly dir: string,
    private expected: string,
  ) {}

  expect(authorization: string): void {
    this.expected = authorization;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/files/`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const tus = new Server({
      path: '/files',
      datastore: new FileStore({ directory: this.dir }),
      onUploadFinish: async (_req, upload: Upload) => {
        const sha256 = createHash('sha256')
          .update(await fs.readFile(path.join(this.dir, upload.id)))
          .digest('hex');
        if (sha256 !== upload.metadata?.sha256) throw { status_code: 460, body: 'sha256 mismatch\n' };
        this.finished.push({ sha256, metadata: upload.metadata ?? {} });
        return {};
      },
    });
    this.server = http.createServer((req, res) => {
      this.authorizations.push(req.headers.authorization);
      if (req.headers.authorization !== this.expected) {
        res.writeHead(401, { 'Tus-Resumable': '1.0.0' });
        res.end(this.echoRefused ? `invalid credentials: ${req.headers.authorization}` : 'unauthorized\n');
        return;
      }
      void tus.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

async function tlsSubscriber(
  url: string,
  pki: Pki,
  username: string,
  password: string,
  filter: string,
): Promise<{ client: MqttClient; messages: Received[] }> {
  const client = mqtt.connect(url, {
    ca: readFileSync(pki.ca),
    cert: readFileSync(pki.clientCert),
    key: readFileSync(pki.clientKey),
    username,
    password,
    reconnectPeriod: 200,
    clientId: `hq-test-${randomBytes(4).toString('hex')}`,
  });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages };
}

describe('MQTT over TLS with a client certificate and password; secrets from a file and the environment', () => {
  let dir: string;
  let pki: Pki;
  let broker: TlsMosquitto;
  let tus: AuthTusServer;
  let daemon: DaemonProcess | null = null;
  let subscriber: MqttClient | null = null;
  // Distinctive values, so that a leak anywhere is found by a plain substring search.
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const token = `tok-${randomBytes(16).toString('hex')}`;
  const hqPassword = `hq-${randomBytes(8).toString('hex')}`;

  beforeEach(async () => {
    dir = await tempDir('dockd-tls-');
    pki = await makePki(path.join(dir, 'pki'));
    broker = new TlsMosquitto(path.join(dir, 'mosquitto'), pki, { 'dockd-station': password, hq: hqPassword });
    await broker.start();
    tus = new AuthTusServer(path.join(dir, 'hq'), `Bearer ${token}`);
    await tus.start();
    process.env[TOKEN_ENV] = `Bearer ${token}`;
  });

  afterEach(async () => {
    await subscriber?.endAsync().catch(() => {});
    subscriber = null;
    await daemon?.kill9();
    daemon = null;
    delete process.env[TOKEN_ENV];
    await tus?.stop();
    await broker?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function world(ca: string) {
    const passwordFile = path.join(dir, 'secrets', 'mqtt-password');
    await fs.mkdir(path.dirname(passwordFile), { recursive: true });
    await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    return makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
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
            tls: { ca, cert: pki.clientCert, key: pki.clientKey },
          },
        },
      },
    });
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
    const w = await world(pki.ca);
    const sub = await tlsSubscriber(broker.url, pki, 'hq', hqPassword, 'dockd/test-st/#');
    subscriber = sub.client;
    daemon = new DaemonProcess(w.configFile);
    daemon.start();
    await daemon.started();

    await waitFor(
      'retained online over TLS',
      () => sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'online'),
      30_000,
    );
    const sha = await dockOneClip(w.mountRoot, 901);
    await waitFor('the upload verified by the tus server', () => tus.finished.some((u) => u.sha256 === sha), 60_000);
    // Every request carried the token from the environment (a request without it would have been refused).
    expect(tus.authorizations.length).toBeGreaterThanOrEqual(2); // creation + at least one PATCH
    expect(new Set(tus.authorizations)).toEqual(new Set([`Bearer ${token}`]));
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
    const w = await world(pki.otherCa);
    const sub = await tlsSubscriber(broker.url, pki, 'hq', hqPassword, 'dockd/test-st/#');
    subscriber = sub.client;
    daemon = new DaemonProcess(w.configFile);
    daemon.start();
    await daemon.started();

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
    await waitFor('the upload verified by the tus server', () => tus.finished.some((u) => u.sha256 === sha), 60_000);
    expect(new Set(tus.authorizations)).toEqual(new Set([`Bearer ${token}`]));
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
    tus.expect('Bearer something-else');
    tus.echoRefused = true;
    const w = await world(pki.ca);
    const sub = await tlsSubscriber(broker.url, pki, 'hq', hqPassword, 'dockd/test-st/#');
    subscriber = sub.client;
    daemon = new DaemonProcess(w.configFile);
    daemon.start();
    await daemon.started();
    await waitFor(
      'retained online over TLS',
      () => sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'online'),
      30_000,
    );
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
    expect(tus.authorizations).toContain(`Bearer ${token}`);
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
