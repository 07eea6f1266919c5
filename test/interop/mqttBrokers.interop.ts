/**
 * The MQTT half of the chain against the brokers an HQ may already run: mosquitto (MQTT 3.1.1 and 5) and RabbitMQ's
 * MQTT plugin (Debian's rabbitmq-server, MQTT 3.1.1 only), each a real broker on loopback ports of its own, with the
 * daemon as a child process, a real @tus/server and receipts signed by the test HQ's key:
 * retained status/state/audit on exact topics, QoS 1 events in order, receipts sent while the station is away, the
 * last will, and a broker outage with everything delivered in order when it returns.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { MosquittoBroker, RabbitMqBroker, type TestBroker } from '../helpers/brokers.ts';
import { signedReceipt } from '../helpers/hqKeys.ts';
import { DaemonProcess, tempDir } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings, type PlacedRecording } from '../helpers/recordings.ts';
import { ThrottleProxy } from '../helpers/throttleProxy.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockctlJson, events, hqSubscriber, stationWorld, type FileJson, type StationEvent, type StatusJson } from './support.ts';
import { sendReceipt } from '../helpers/receipts.ts';

interface Suite {
  title: string;
  kind: 'mosquitto' | 'rabbitmq';
  protocolVersion: 4 | 5;
}
const SUITES: Suite[] = [
  { title: 'mosquitto, MQTT 3.1.1', kind: 'mosquitto', protocolVersion: 4 },
  { title: 'mosquitto, MQTT 5', kind: 'mosquitto', protocolVersion: 5 },
  { title: 'RabbitMQ 3.10 rabbitmq_mqtt, MQTT 3.1.1', kind: 'rabbitmq', protocolVersion: 4 },
];

let root: string;
let rabbit: Promise<RabbitMqBroker> | null = null;
const clips = (first: number, n: number) => Promise.all(Array.from({ length: n }, (_, i) => sampleMedia('video', 1, first + i)));

/** One RabbitMQ node for the whole file (a cold start costs some 20 s), started on first use. */
function rabbitBroker(): Promise<RabbitMqBroker> {
  rabbit ??= (async () => {
    const b = new RabbitMqBroker(path.join(root, 'rabbitmq'));
    await b.start();
    return b;
  })();
  return rabbit;
}

beforeAll(async () => {
  root = await tempDir('dockd-interop-mqtt-');
});
afterAll(async () => {
  if (rabbit) await (await rabbit.catch(() => null))?.stop();
  await fs.rm(root, { recursive: true, force: true });
});

/** Events of one docking as HQ received them: each once, in the order they happened, each file ingested before uploaded. */
function expectDocking(evs: StationEvent[], files: PlacedRecording[]): void {
  const shas = (t: string) =>
    evs
      .filter((e) => e.type === t)
      .map((e) => e.sha256)
      .sort();
  expect(evs.filter((e) => e.type === 'recorder.docked')).toHaveLength(1);
  expect(shas('file.ingested')).toEqual(files.map((f) => f.sha256).sort());
  expect(shas('file.uploaded')).toEqual(files.map((f) => f.sha256).sort());
  const ats = evs.map((e) => e.at);
  expect(ats).toEqual([...ats].sort());
  const at = (t: string, sha?: string) => evs.findIndex((e) => e.type === t && (sha === undefined || e.sha256 === sha));
  for (const f of files) {
    expect(at('recorder.docked')).toBeLessThan(at('file.ingested', f.sha256));
    expect(at('file.ingested', f.sha256)).toBeLessThan(at('file.uploaded', f.sha256));
  }
}

describe.each(SUITES)('$title', ({ kind, protocolVersion }) => {
  let dir: string;
  let broker: TestBroker;
  let tus: TusTestServer;
  const daemons: DaemonProcess[] = [];
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    dir = await tempDir(`dockd-interop-${kind}-${protocolVersion}-`);
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    if (kind === 'rabbitmq') broker = await rabbitBroker();
    else {
      broker = new MosquittoBroker(path.join(dir, 'mosquitto'));
      await broker.start();
    }
  });

  afterAll(async () => {
    for (const c of closers.splice(0)) await c().catch(() => {});
    for (const d of daemons) await d.kill9();
    await tus.stop();
    if (kind === 'mosquitto') await broker.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function startDaemon(configFile: string): Promise<DaemonProcess> {
    const d = new DaemonProcess(configFile);
    daemons.push(d);
    d.start();
    await d.started();
    await d.waitForLog((l) => l.msg === 'connected to broker', 'the daemon to connect to the broker', 60_000);
    return d;
  }

  async function subscribe(url: string, topics: string[]) {
    const sub = await hqSubscriber(url, topics);
    closers.push(sub.close);
    return sub;
  }

  it('retained status, state and audit head on exact topics; QoS 1 events in order; receipts sent while away; the last will', async () => {
    const S = `chain-${protocolVersion}`;
    const P = `dockd/${S}`;
    const world = await stationWorld(path.join(dir, S), {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      stationId: S,
      mqtt: { protocolVersion },
    });
    const first = await startDaemon(world.configFile);

    const hq = await subscribe(broker.url, [`${P}/status`, `${P}/state`, `${P}/audit`, `${P}/event`]);
    await waitFor('online, state and audit head', () =>
      ['status', 'state', 'audit'].every((t) => hq.messages.some((m) => m.topic === `${P}/${t}`)),
    );
    // A subscriber that comes after they were published: the retained messages reach it on their exact topics.
    const late = await subscribe(broker.url, [`${P}/status`, `${P}/state`, `${P}/audit`]);
    await waitFor('retained online, state and audit head', () =>
      ['status', 'state', 'audit'].every((t) => late.messages.some((m) => m.topic === `${P}/${t}` && m.retain)),
    );
    expect(late.messages.find((m) => m.topic === `${P}/status` && m.retain)!.payload).toBe('online');
    expect(JSON.parse(late.messages.find((m) => m.topic === `${P}/state` && m.retain)!.payload)).toMatchObject({ stationId: S });
    expect(JSON.parse(late.messages.find((m) => m.topic === `${P}/audit` && m.retain)!.payload)).toMatchObject({
      stationId: S,
      seq: expect.any(Number),
    });

    const { files } = await dockRecordings(
      world.mountRoot,
      'REC1',
      await clips(protocolVersion * 10 + (kind === 'rabbitmq' ? 900 : 800), 2),
    );
    await waitFor(
      'both uploads announced on MQTT',
      () => events(hq.messages, `${P}/event`).filter((e) => e.type === 'file.uploaded').length === 2,
      120_000,
    );
    expectDocking(events(hq.messages, `${P}/event`), files);

    // The station stops; HQ's signed receipts wait for it in its persistent session.
    expect(await first.stop()).toBe(0);
    await waitFor(
      'offline on a clean stop',
      () => hq.messages.filter((m) => m.topic === `${P}/status`).at(-1)?.payload === 'offline',
    );
    for (const f of files) await sendReceipt(broker.url, S, { sha256: f.sha256, ok: true });
    const again = await startDaemon(world.configFile);
    await waitFor(
      'both recordings archived on the receipts sent while away',
      async () => {
        const rows = await dockctlJson<FileJson[]>(world.configFile, ['files']);
        return files.every((f) => rows.some((r) => r.sha256 === f.sha256 && r.state === 'archived'));
      },
      60_000,
    );
    await waitFor(
      'file.archived events',
      () => events(hq.messages, `${P}/event`).filter((e) => e.type === 'file.archived').length === 2,
    );
    await waitFor('online again', () => hq.messages.filter((m) => m.topic === `${P}/status`).at(-1)?.payload === 'online');

    // Killed: no goodbye from the station, the broker publishes its last will.
    const beforeKill = hq.messages.filter((m) => m.topic === `${P}/status`).length;
    await again.kill9();
    await waitFor(
      'the last will',
      () =>
        hq.messages
          .filter((m) => m.topic === `${P}/status`)
          .slice(beforeKill)
          .some((m) => m.payload === 'offline'),
      90_000,
    );
    const later = await subscribe(broker.url, [`${P}/status`]);
    await waitFor('retained offline for a late subscriber', () =>
      later.messages.some((m) => m.retain && m.payload === 'offline'),
    );
  });

  it('broker outage: events are kept while it is down and delivered in order, none missing, when it returns', async () => {
    const S = `outage-${protocolVersion}`;
    const P = `dockd/${S}`;
    // The station reaches the broker through a proxy, so the test's HQ can subscribe before the station returns.
    const link = new ThrottleProxy({ port: broker.port });
    await link.start();
    closers.push(() => link.stop());
    const world = await stationWorld(path.join(dir, S), {
      tusEndpoint: tus.endpoint,
      mqttUrl: `mqtt://127.0.0.1:${link.port}`,
      stationId: S,
      mqtt: { protocolVersion },
    });
    const d = await startDaemon(world.configFile);

    await broker.stop();
    await d.waitForLog(
      (l) => l.msg === 'alarm raised' && l.code === 'MQTT_UNREACHABLE',
      'the daemon to notice the broker is gone',
    );
    const { files } = await dockRecordings(
      world.mountRoot,
      'REC1',
      await clips(protocolVersion * 10 + (kind === 'rabbitmq' ? 950 : 850), 3),
    );
    const held = await waitFor(
      'all uploaded, their events held',
      async () => {
        const s = await dockctlJson<StatusJson>(world.configFile, ['status']);
        return s.queue.uploaded === 3 ? s : null;
      },
      120_000,
    );
    expect(held.queue.outbox).toBeGreaterThanOrEqual(7); // docked + 3 ingested + 3 uploaded (+ the alarm)

    link.refuse(true);
    await broker.start();
    const hq = await subscribe(broker.url, [`${P}/event`]);
    link.refuse(false);
    await waitFor(
      'every held event',
      () => events(hq.messages, `${P}/event`).filter((e) => e.type === 'file.uploaded').length === 3,
      60_000,
    );
    await waitFor(
      'the outbox drained',
      async () => (await dockctlJson<StatusJson>(world.configFile, ['status'])).queue.outbox === 0,
      60_000,
    );
    const evs = events(hq.messages, `${P}/event`);
    expectDocking(
      evs.filter((e) => e.type !== 'alarm'),
      files,
    );
    const raised = evs.findIndex((e) => e.type === 'alarm' && e.code === 'MQTT_UNREACHABLE' && e.active === true);
    expect(raised).toBeGreaterThanOrEqual(0);
    expect(raised).toBeLessThan(evs.findIndex((e) => e.type === 'recorder.docked')); // it happened first
    expect(evs.map((e) => e.at)).toEqual(evs.map((e) => e.at).sort());
    expect(await d.stop()).toBe(0);
  });

  it(`a '.' in a topic name: ${kind === 'rabbitmq' ? 'rewritten to /' : 'kept'} (why station ids and prefixes may not hold one)`, async () => {
    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    closers.push(() => client.endAsync());
    const got: string[] = [];
    client.on('message', (topic) => got.push(topic));
    await client.subscribeAsync('dotted/st.01/receipt', { qos: 1 });
    await client.publishAsync('dotted/st.01/receipt', 'x', { qos: 1 });
    await waitFor('the message back', () => got.length > 0);
    expect(got).toEqual([kind === 'rabbitmq' ? 'dotted/st/01/receipt' : 'dotted/st.01/receipt']);
  });
});

/** The README's RabbitMQ permissions ("Connecting to your HQ") for a station user and for HQ. */
async function grantAsReadme(broker: RabbitMqBroker, stations: string[]): Promise<void> {
  for (const u of stations) {
    const q = `mqtt-subscription-dockd-${u}qos[01]`;
    await broker.ctl('add_user', u, `${u}-pw`);
    await broker.ctl('set_permissions', '-p', '/', u, `^${q}$`, `^(amq\\.topic|${q})$`, `^(amq\\.topic|${q})$`);
    await broker.ctl(
      'set_topic_permissions',
      '-p',
      '/',
      u,
      'amq.topic',
      '^dockd\\.{username}\\.(status|state|event|audit)$',
      '^dockd\\.{username}\\.receipt$',
    );
  }
  await broker.ctl('add_user', 'hq', 'hq-pw');
  await broker.ctl(
    'set_permissions',
    '-p',
    '/',
    'hq',
    '^mqtt-subscription-hq.*$',
    '^(amq\\.topic|mqtt-subscription-hq.*)$',
    '^(amq\\.topic|mqtt-subscription-hq.*)$',
  );
  await broker.ctl('set_topic_permissions', '-p', '/', 'hq', 'amq.topic', '^dockd\\.[^.]+\\.receipt$', '^dockd\\..*$');
}

/** Connects as `user` and does `act`; resolves to 'ok' or 'closed' (RabbitMQ closes the connection on a refusal). */
async function asUser(
  url: string,
  user: string,
  clientId: string,
  act: (c: mqtt.MqttClient) => Promise<unknown>,
): Promise<'ok' | 'closed'> {
  let c: mqtt.MqttClient;
  try {
    c = await mqtt.connectAsync(url, {
      username: user,
      password: `${user}-pw`,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
  } catch {
    return 'closed';
  }
  const closed = new Promise<'closed'>((r) => c.once('close', () => r('closed')));
  try {
    return await Promise.race([
      act(c).then(
        () => 'ok' as const,
        () => 'closed' as const,
      ),
      closed,
    ]);
  } finally {
    c.end(true); // a QoS 1 publish the broker never acknowledged would hold a graceful end for ever
  }
}

describe('RabbitMQ 3.10 permissions as the README gives them', () => {
  it('a station writes only its own topics and reads only its own receipts; only HQ publishes receipts', async () => {
    const broker = await rabbitBroker();
    const ST = 'acl-st';
    await grantAsReadme(broker, [ST, 'acl-other']);
    const dir = await tempDir('dockd-interop-rabbit-acl-');
    const world = await stationWorld(dir, {
      tusEndpoint: 'http://127.0.0.1:9/files/',
      mqttUrl: broker.url,
      stationId: ST,
      mqtt: { username: ST, password: `${ST}-pw` },
    });
    const d = new DaemonProcess(world.configFile);
    try {
      d.start();
      await d.started();
      await d.waitForLog((l) => l.msg === 'connected to broker', 'the station to connect with its own user', 60_000);
      const hq = await mqtt.connectAsync(broker.url, {
        username: 'hq',
        password: 'hq-pw',
        clientId: 'hq-acl',
        reconnectPeriod: 0,
      });
      const seen: { topic: string; payload: string; retain: boolean }[] = [];
      hq.on('message', (topic, payload, p) => seen.push({ topic, payload: payload.toString(), retain: p.retain }));
      await hq.subscribeAsync([`dockd/${ST}/status`, `dockd/${ST}/audit`], { qos: 1 });
      await waitFor(
        'the retained online and audit head, read by HQ',
        () => seen.some((m) => m.retain && m.payload === 'online') && seen.some((m) => m.topic.endsWith('/audit')),
      );

      // With the station's own credentials, or as another station: no receipt gets in, no one else's receipts come out.
      const forged = 'ef'.repeat(32);
      const receipt = (sha: string) => JSON.stringify(signedReceipt(ST, sha, true));
      expect(
        await asUser(broker.url, ST, 'forger', (c) => c.publishAsync(`dockd/${ST}/receipt`, receipt(forged), { qos: 1 })),
      ).toBe('closed');
      expect(await asUser(broker.url, ST, 'forger', (c) => c.publishAsync('dockd/acl-other/status', 'offline', { qos: 1 }))).toBe(
        'closed',
      );
      expect(
        await asUser(broker.url, 'acl-other', 'dockd-acl-other', (c) => c.subscribeAsync(`dockd/${ST}/receipt`, { qos: 1 })),
      ).toBe('closed');
      expect(
        await asUser(broker.url, 'hq', 'hq-forger', (c) => c.publishAsync(`dockd/${ST}/status`, 'offline', { qos: 1 })),
      ).toBe('closed');
      // HQ's receipt arrives (an unknown sha256: audited as ignored); the forged one never did.
      const real = 'fe'.repeat(32);
      await hq.publishAsync(`dockd/${ST}/receipt`, receipt(real), { qos: 1 });
      const audit = await waitFor("HQ's receipt applied", async () => {
        const rows = await dockctlJson<{ type: string; subject: string | null }[]>(world.configFile, ['audit']);
        return rows.some((e) => e.type === 'receipt.ignored' && e.subject === real) ? rows : null;
      });
      expect(audit.filter((e) => e.subject === forged)).toEqual([]);
      await hq.endAsync();
      expect(await d.stop()).toBe(0);
    } finally {
      await d.kill9();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('RabbitMQ 3.10 and MQTT 5', () => {
  it('hangs up on an MQTT 5 CONNECT: dockd says to use hq.mqtt.protocolVersion 4, in its log and an alarm', async () => {
    const broker = await rabbitBroker();
    const dir = await tempDir('dockd-interop-rabbit5-');
    const world = await stationWorld(dir, {
      tusEndpoint: 'http://127.0.0.1:9/files/',
      mqttUrl: broker.url,
      stationId: 'v5',
      mqtt: { protocolVersion: 5 },
    });
    const d = new DaemonProcess(world.configFile);
    try {
      d.start();
      await d.started();
      const line = await d.waitForLog(
        (l) => String(l.msg).startsWith('the broker closed the connection without answering our MQTT CONNECT'),
        'the hint in the log',
      );
      expect(line.msg).toContain('set hq.mqtt.protocolVersion: 4');
      const s = await waitFor('the alarm', async () => {
        const st = await dockctlJson<StatusJson>(world.configFile, ['status']);
        return st.alarms.find((a) => a.code === 'MQTT_UNREACHABLE' && a.message.includes('hq.mqtt.protocolVersion: 4'));
      });
      expect(s.message).toContain('MQTT 5 CONNECT');
      expect(d.logs.some((l) => l.msg === 'connected to broker')).toBe(false);
      expect(await d.stop()).toBe(0);
    } finally {
      await d.kill9();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
