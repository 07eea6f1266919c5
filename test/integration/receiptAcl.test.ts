/**
 * The mosquitto ACL the README documents (config/mosquitto-dockd.acl), on a real mosquitto with passwords: the station
 * publishes its status, state, events and audit head and receives its receipts; only HQ can publish a receipt. Even a
 * validly signed receipt (a replay of HQ's own) sent by another station, by a client with the station's own
 * credentials, or by any other user never reaches the station; HQ's does.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { DaemonProcess, makeWorld, tempDir } from '../helpers/daemon.ts';
import { signedReceipt, TEST_HQ_PUBLIC_PEM } from '../helpers/hqKeys.ts';
import type { Received } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockctlAudit, dockctlFiles } from '../helpers/dockctlJson.ts';
import { eventsOf } from '../helpers/stationReports.ts';

const run = promisify(execFile);
const MOSQUITTO = '/usr/sbin/mosquitto';
const ACL = path.join(PACKAGE_ROOT, 'config', 'mosquitto-dockd.acl');
const ST = 'test-st';
const USERS: Record<string, string> = {
  hq: 'hq-pw-31415926',
  [ST]: 'st-pw-27182818',
  'other-st': 'other-pw-1414213',
  intruder: 'intruder-pw-1732',
};

/** mosquitto with password authentication and the documented ACL file, as is. */
class AclBroker {
  private proc: ChildProcess | null = null;
  port = 0;
  constructor(private readonly dir: string) {}
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const passwd = path.join(this.dir, 'passwd');
    for (const [i, [user, pass]] of Object.entries(USERS).entries())
      await run('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), passwd, user, pass]);
    const conf = path.join(this.dir, 'mosquitto.conf');
    await fs.writeFile(
      conf,
      [
        `listener ${this.port} 127.0.0.1`,
        'allow_anonymous false',
        `password_file ${passwd}`,
        `acl_file ${ACL}`,
        'persistence false',
        'log_dest stderr',
        'log_type error',
        ...(process.getuid?.() === 0 ? ['user root'] : []),
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
        'mosquitto to listen',
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

async function publishAs(url: string, user: string, topic: string, payload: string): Promise<void> {
  const client = await mqtt.connectAsync(url, {
    username: user,
    password: USERS[user],
    clientId: `${user}-${Math.random().toString(16).slice(2, 8)}`,
    reconnectPeriod: 0,
  });
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

async function subscribeAs(
  url: string,
  user: string,
  filter: string,
): Promise<{ messages: Received[]; close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { username: user, password: USERS[user], reconnectPeriod: 0 });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { messages, close: () => client.endAsync() };
}

describe('the documented mosquitto ACL: only HQ publishes receipts', () => {
  let dir: string;
  let broker: AclBroker;
  let tus: TusTestServer;
  let daemon: DaemonProcess | null = null;
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    dir = await tempDir('dockd-acl-');
    broker = new AclBroker(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
  });

  afterEach(async () => {
    for (const c of closers.splice(0)) await c().catch(() => {});
    await daemon?.kill9();
    daemon = null;
    await tus.stop();
    await broker.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("the station works under it; receipts from anyone but HQ never reach it, even signed ones; HQ's do", async () => {
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: {
        hq: {
          embedded: false,
          tus: { endpoint: tus.endpoint, stallTimeoutSeconds: 5, maxRetryDelaySeconds: 2 },
          mqtt: { url: broker.url, topicPrefix: 'dockd', username: ST, password: USERS[ST] },
          receiptKey: TEST_HQ_PUBLIC_PEM,
        },
      },
    });
    const hq = await subscribeAs(broker.url, 'hq', 'dockd/#');
    closers.push(hq.close);
    const intruder = await subscribeAs(broker.url, 'intruder', 'dockd/#');
    closers.push(intruder.close);
    const otherStation = await subscribeAs(broker.url, 'other-st', `dockd/${ST}/#`);
    closers.push(otherStation.close);
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const {
      files: [a, b],
    } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 671), await sampleMedia('video', 1, 672)]);
    await waitFor(
      'both uploaded',
      async () => (await dockctlFiles(world.configFile)).filter((f) => f.state === 'uploaded').length === 2,
      90_000,
    );

    // The station's own topics pass: HQ sees its status, events and signed audit head.
    await waitFor(
      'HQ to see the station online, its events and its audit head',
      () =>
        hq.messages.some((m) => m.topic === `dockd/${ST}/status` && m.payload === 'online') &&
        eventsOf(hq.messages, 'file.uploaded').length === 2 &&
        hq.messages.some((m) => m.topic === `dockd/${ST}/audit`),
      60_000,
    );

    // A genuine HQ receipt for a, replayed by everyone who is not HQ: the broker drops them all.
    const replayed = JSON.stringify(signedReceipt(ST, a.sha256, true));
    await publishAs(broker.url, 'intruder', `dockd/${ST}/receipt`, replayed);
    await publishAs(broker.url, 'other-st', `dockd/${ST}/receipt`, replayed);
    await publishAs(broker.url, ST, `dockd/${ST}/receipt`, replayed); // the station's own credentials, another client
    // HQ's receipt for b, after them: once b is archived, the station has had every message published before it.
    await publishAs(broker.url, 'hq', `dockd/${ST}/receipt`, JSON.stringify(signedReceipt(ST, b.sha256, true)));
    await waitFor(
      "b archived on HQ's receipt",
      async () => (await dockctlFiles(world.configFile)).some((f) => f.sha256 === b.sha256 && f.state === 'archived'),
      60_000,
    );
    expect((await dockctlFiles(world.configFile)).find((f) => f.sha256 === a.sha256)!.state).toBe('uploaded');
    const receiptEntries = (await dockctlAudit(world.configFile)).filter((e) => e.type.startsWith('receipt.'));
    expect(receiptEntries).toEqual([]); // the replays never arrived (had they, a would be archived)
    expect(hq.messages.filter((m) => m.topic.endsWith('/receipt')).map((m) => JSON.parse(m.payload).sha256)).toEqual([b.sha256]);

    // No one but HQ and the station itself reads the station's topics.
    expect(intruder.messages).toEqual([]);
    expect(otherStation.messages).toEqual([]);

    await publishAs(broker.url, 'hq', `dockd/${ST}/receipt`, replayed);
    await waitFor(
      "a archived on HQ's receipt",
      async () => (await dockctlFiles(world.configFile)).every((f) => f.state === 'archived'),
      60_000,
    );
    expect(await daemon.stop()).toBe(0);
    // The last will and the clean offline are the station's to write.
    expect(
      hq.messages
        .filter((m) => m.topic === `dockd/${ST}/status`)
        .map((m) => m.payload)
        .at(-1),
    ).toBe('offline');
  }, 300_000);
});
