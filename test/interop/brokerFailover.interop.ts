/**
 * hq.mqtt.urls: a station with two brokers (two real mosquittos on loopback, not bridged: each HQ subscriber sees only
 * what reached its broker) connects to the first that answers, and when the one it uses is SIGKILLed in the middle of
 * a stream of events it moves to the other: every event arrives, in the order it happened (one may arrive twice at
 * the switch: delivery is at least once), and HQ's signed receipt on the new broker is applied.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { MosquittoBroker } from '../helpers/brokers.ts';
import { DaemonProcess, tempDir } from '../helpers/daemon.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { ThrottleProxy } from '../helpers/throttleProxy.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockctlJson, events, hqSubscriber, stationWorld, type FileJson, type StationEvent, type StatusJson } from './support.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const S = 'failover';
const P = `dockd/${S}`;
/** Uploads of the ~77 KB clips take a second or two each, so events keep coming while a broker dies. */
const LINK_BYTES_PER_SECOND = 48 * 1024;

describe('broker failover (hq.mqtt.urls)', () => {
  let dir: string;
  let a: MosquittoBroker;
  let b: MosquittoBroker;
  let tus: TusTestServer;
  let link: ThrottleProxy;
  let daemon: DaemonProcess | null = null;
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    dir = await tempDir('dockd-interop-failover-');
    a = new MosquittoBroker(path.join(dir, 'broker-a'));
    b = new MosquittoBroker(path.join(dir, 'broker-b'));
    await b.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    link = new ThrottleProxy({ port: tus.port }, LINK_BYTES_PER_SECOND);
    await link.start();
  });

  afterEach(async () => {
    for (const c of closers.splice(0)) await c().catch(() => {});
    await daemon?.kill9();
    daemon = null;
    await link.stop();
    await tus.stop();
    await a.stop();
    await b.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function station(urls: string[]) {
    const world = await stationWorld(dir, {
      tusEndpoint: `http://127.0.0.1:${link.port}/files/`,
      mqttUrl: urls[0],
      stationId: S,
      tus: { concurrency: 1 },
    });
    const doc = world.config as { hq: { mqtt: Record<string, unknown> } };
    delete doc.hq.mqtt.url;
    doc.hq.mqtt.urls = urls;
    await fs.writeFile(world.configFile, stringify(doc));
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    return { world, d: daemon };
  }

  async function subscribe(url: string) {
    const sub = await hqSubscriber(url, [`${P}/event`]);
    closers.push(sub.close);
    return sub;
  }

  it('the first broker dies mid-stream: the station moves to the second; no event lost, none out of order', async () => {
    await a.start();
    const hqA = await subscribe(a.url);
    const hqB = await subscribe(b.url);
    const { world, d } = await station([a.url, b.url]);
    await d.waitForLog((l) => l.msg === 'connected to broker' && l.url === a.url, 'the station on the first broker');

    const clips = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => sampleMedia('video', 1, 1100 + i)));
    const { files } = await dockRecordings(world.mountRoot, 'REC1', clips);
    await waitFor(
      'the first upload announced on broker A',
      () => events(hqA.messages, `${P}/event`).some((e) => e.type === 'file.uploaded'),
      120_000,
      20,
    );
    await a.kill();
    await d.waitForLog((l) => l.msg === 'connected to broker' && l.url === b.url, 'the station on the second broker', 60_000);

    const uploaded = () =>
      new Set(
        [...events(hqA.messages, `${P}/event`), ...events(hqB.messages, `${P}/event`)]
          .filter((e) => e.type === 'file.uploaded')
          .map((e) => e.sha256),
      );
    await waitFor('every upload announced', () => uploaded().size === files.length, 120_000);
    await waitFor(
      'the outbox drained',
      async () => (await dockctlJson<StatusJson>(world.configFile, ['status'])).queue.outbox === 0,
      60_000,
    );

    const fromA = events(hqA.messages, `${P}/event`);
    const fromB = events(hqB.messages, `${P}/event`);
    expect(fromA.some((e) => e.type === 'file.uploaded')).toBe(true);
    expect(fromB.some((e) => e.type === 'file.uploaded')).toBe(true); // the switch happened mid-stream
    // What A delivered, then what B delivered; an event in flight at the kill may come twice, one after the other.
    const merged: StationEvent[] = [];
    for (const e of [...fromA, ...fromB]) if (JSON.stringify(e) !== JSON.stringify(merged.at(-1))) merged.push(e);
    const ats = merged.map((e) => e.at);
    expect(ats).toEqual([...ats].sort());
    expect(new Set(merged.map((e) => JSON.stringify(e))).size).toBe(merged.length); // no other repeats
    const fileEvents = merged.filter((e) => e.type !== 'alarm');
    expect(fileEvents.filter((e) => e.type === 'recorder.docked')).toHaveLength(1);
    for (const t of ['file.ingested', 'file.uploaded']) {
      expect(
        fileEvents
          .filter((e) => e.type === t)
          .map((e) => e.sha256)
          .sort(),
      ).toEqual(files.map((f) => f.sha256).sort());
    }
    for (const f of files) {
      expect(merged.findIndex((e) => e.type === 'file.ingested' && e.sha256 === f.sha256)).toBeLessThan(
        merged.findIndex((e) => e.type === 'file.uploaded' && e.sha256 === f.sha256),
      );
    }

    // HQ's receipts now come through the second broker.
    await sendReceipt(b.url, S, { sha256: files[0].sha256, ok: true });
    await waitFor('archived through broker B', async () =>
      (await dockctlJson<FileJson[]>(world.configFile, ['files'])).some(
        (f) => f.sha256 === files[0].sha256 && f.state === 'archived',
      ),
    );
    expect(await d.stop()).toBe(0);
  });

  it('the first broker of the list is down at start: the station connects to the next that answers', async () => {
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const { d } = await station([dead, b.url]);
    await d.waitForLog((l) => l.msg === 'connected to broker' && l.url === b.url, 'the station on the second broker', 60_000);
    expect(d.logs.some((l) => l.msg === 'connected to broker' && l.url === dead)).toBe(false);
    const status = await hqSubscriber(b.url, [`${P}/status`]);
    closers.push(status.close);
    await waitFor('online on B', () => status.messages.some((m) => m.payload === 'online'));
    const late = await hqSubscriber(b.url, [`${P}/status`]);
    closers.push(late.close);
    await waitFor('retained online on B', () => late.messages.some((m) => m.retain && m.payload === 'online'));
    expect(await d.stop()).toBe(0);
  });
});
