import { beforeEach, describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import type { Received } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings, type PlacedRecording } from '../helpers/recordings.ts';
import { useStation } from '../helpers/station.ts';
import { ThrottleProxy } from '../helpers/throttleProxy.ts';

const P = 'dockd/test-st';

interface StationEvent {
  type: string;
  at: string;
  sha256?: string;
  code?: string;
  active?: boolean;
  message?: string;
  [k: string]: unknown;
}
interface Status {
  daemon: string;
  queue: Record<string, number>;
  alarms: { code: string; key: string; message: string }[];
  links: { tus: string; mqtt: string } | null;
}

async function dockctlStatus(configFile: string): Promise<Status> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}

function eventsOf(messages: Received[]): StationEvent[] {
  return messages.filter((m) => m.topic === `${P}/event`).map((m) => JSON.parse(m.payload) as StationEvent);
}

/**
 * The events of one docking, as received: exactly one recorder.docked, and for every recording exactly one
 * file.ingested and one file.uploaded; everything in the order it happened (by `at`), each file ingested before uploaded.
 */
function expectDockingEvents(events: StationEvent[], files: PlacedRecording[]): void {
  const ofType = (t: string) => events.filter((e) => e.type === t);
  expect(ofType('recorder.docked')).toHaveLength(1);
  expect(
    ofType('file.ingested')
      .map((e) => e.sha256)
      .sort(),
  ).toEqual(files.map((f) => f.sha256).sort());
  expect(
    ofType('file.uploaded')
      .map((e) => e.sha256)
      .sort(),
  ).toEqual(files.map((f) => f.sha256).sort());
  // Delivered in order of occurrence: `at` never goes backwards along the arrival order.
  const ats = events.map((e) => e.at);
  expect(ats.every((a) => !Number.isNaN(Date.parse(a)))).toBe(true);
  expect(ats).toEqual([...ats].sort());
  const index = (t: string, sha?: string) => events.findIndex((e) => e.type === t && (sha === undefined || e.sha256 === sha));
  for (const f of files) {
    expect(index('recorder.docked')).toBeLessThan(index('file.ingested', f.sha256));
    expect(index('file.ingested', f.sha256)).toBeLessThan(index('file.uploaded', f.sha256));
  }
}

describe('outages: MQTT broker down, HQ upload server down, daemon killed', () => {
  const station = useStation();
  /** The daemon reaches the broker through this, so a test can keep it away until its own subscriber is ready. */
  let mqttLink: ThrottleProxy;

  beforeEach(async () => {
    mqttLink = new ThrottleProxy({ port: station.broker.port });
    await mqttLink.start();
    station.onCleanup(() => mqttLink.stop());
  });

  /** A world whose daemon reaches the broker through mqttLink. */
  const linkedWorld = () => station.world({ mqttUrl: `mqtt://127.0.0.1:${mqttLink.port}` });

  /** A daemon on a linked world, connected; then the broker stops, and the daemon raises its alarm. */
  async function daemonThenBrokerDown() {
    const world = await linkedWorld();
    const daemon = await station.startDaemon(world.configFile);
    await daemon.waitForLog((l) => l.msg === 'connected to broker', 'the daemon to connect to the broker');
    await station.broker.stop();
    await daemon.waitForLog(
      (l) => l.msg === 'alarm raised' && l.code === 'MQTT_UNREACHABLE',
      'the daemon to notice the broker is gone',
    );
    return { world, daemon };
  }

  async function clips(n: number, firstVariant: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await sampleMedia('video', 2, firstVariant + i));
    return out;
  }

  it('broker down while recordings are ingested and uploaded: every event arrives when it returns, in order, none missing', async () => {
    const { world } = await daemonThenBrokerDown();
    const { files } = await dockRecordings(world.mountRoot, 'REC1', await clips(3, 41));
    await waitFor('HQ to receive all three recordings', () => station.tus.finished.length === 3, 60_000);
    const queued = await waitFor('dockctl to show the uploads done and the events queued', async () => {
      const s = await dockctlStatus(world.configFile);
      return s.queue.uploaded === 3 ? s : null;
    });
    // docked + 3 ingested + 3 uploaded (+ the broker alarm) wait in the outbox.
    expect(queued.queue.outbox).toBeGreaterThanOrEqual(7);
    expect(queued.links?.mqtt).toBe('disconnected');
    expect(queued.alarms.map((a) => a.code)).toContain('MQTT_UNREACHABLE');

    // The broker returns on the same port; our subscriber is in place before the daemon may reconnect.
    mqttLink.refuse(true);
    await station.broker.start(station.broker.port);
    const sub = await station.subscribe(`${P}/event`);
    mqttLink.refuse(false);

    await waitFor(
      'every queued event to arrive',
      () => eventsOf(sub.messages).filter((e) => e.type === 'file.uploaded').length >= 3,
      30_000,
    );
    await waitFor(
      'the broker alarm to clear',
      () => eventsOf(sub.messages).some((e) => e.type === 'alarm' && e.code === 'MQTT_UNREACHABLE' && e.active === false),
      30_000,
    );
    const events = eventsOf(sub.messages);
    expectDockingEvents(events, files);
    // The alarm raised while the broker was away is delivered too, before the files (it happened first).
    const raised = events.findIndex((e) => e.type === 'alarm' && e.code === 'MQTT_UNREACHABLE' && e.active === true);
    expect(raised).toBeGreaterThanOrEqual(0);
    expect(raised).toBeLessThan(events.findIndex((e) => e.type === 'recorder.docked'));
    await waitFor('the outbox to drain', async () => (await dockctlStatus(world.configFile)).queue.outbox === 0);
  });

  it('events queued while the broker is down survive a clean restart of the daemon', async () => {
    const { world, daemon: first } = await daemonThenBrokerDown();

    const { files } = await dockRecordings(world.mountRoot, 'REC1', await clips(2, 46));
    await waitFor('HQ to receive both recordings', () => station.tus.finished.length === 2, 60_000);
    await waitFor(
      'the uploads recorded in the catalog',
      async () => (await dockctlStatus(world.configFile)).queue.uploaded === 2,
    );
    expect(await first.stop()).toBe(0);

    const stopped = await dockctlStatus(world.configFile);
    expect(stopped.daemon).toBe('not running');
    expect(stopped.queue.outbox).toBeGreaterThanOrEqual(5);

    await station.broker.start(station.broker.port);
    const sub = await station.subscribe(`${P}/event`);
    // The recorder is still docked, so the restarted daemon opens a new session (its own recorder.docked): the events
    // that must have survived are those from before the restart.
    const restartedAt = new Date().toISOString();
    const second = await station.startDaemon(world.configFile);
    const queuedBefore = () => eventsOf(sub.messages).filter((e) => e.at < restartedAt);
    await waitFor(
      'the events queued before the restart to arrive',
      () => queuedBefore().filter((e) => e.type === 'file.uploaded').length >= 2,
      30_000,
    );
    expectDockingEvents(queuedBefore(), files);
    // They came first, ahead of anything the new run reported.
    const all = eventsOf(sub.messages);
    expect(all.slice(0, queuedBefore().length)).toEqual(queuedBefore());
    await waitFor('the outbox to drain', async () => (await dockctlStatus(world.configFile)).queue.outbox === 0);
    // Nothing was uploaded twice because of the restart.
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(files.map((f) => f.sha256).sort());
    expect(second.logs.some((l) => l.msg === 'starting upload' || l.msg === 'resuming upload')).toBe(false);
  });

  it('HQ upload server down: an HQ alarm in events and state; when it returns the uploads complete and the alarm clears', async () => {
    // HQ is down from the start: nothing listens on the endpoint until the server starts there again.
    const tusPort = station.tus.port;
    await station.tus.stop();
    const world = await station.world();
    const sub = await station.subscribe(`${P}/#`);
    const d = await station.startDaemon(world.configFile);

    const { files } = await dockRecordings(world.mountRoot, 'REC1', await clips(2, 48));
    const alarm = await waitFor(
      'an HQ alarm event',
      () => eventsOf(sub.messages).find((e) => e.type === 'alarm' && e.active === true && /HQ/.test(e.message ?? '')),
      30_000,
    );
    expect(alarm.code).toBe('HQ_UNREACHABLE');
    const down = await waitFor('dockctl status to show the HQ alarm', async () => {
      const s = await dockctlStatus(world.configFile);
      return s.alarms.some((a) => a.code === 'HQ_UNREACHABLE') ? s : null;
    });
    expect(down.alarms.find((a) => a.code === 'HQ_UNREACHABLE')!.message).toMatch(/HQ/);
    expect(down.links?.tus).toBe('failing');
    expect(down.queue.uploaded).toBe(0);
    await waitFor(
      'a retained state with the HQ alarm',
      () =>
        sub.messages.some(
          (m) =>
            m.topic === `${P}/state` &&
            (JSON.parse(m.payload) as { alarms: { code: string }[] }).alarms.some((a) => a.code === 'HQ_UNREACHABLE'),
        ),
      10_000,
    );
    expect(d.logs.some((l) => l.msg === 'upload failed; will retry')).toBe(true);

    await station.tus.start(tusPort);
    await waitFor('HQ to receive both recordings', () => station.tus.finished.length === 2, 60_000);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(files.map((f) => f.sha256).sort());
    const cleared = await waitFor(
      'the HQ alarm to clear',
      () => eventsOf(sub.messages).find((e) => e.type === 'alarm' && e.code === 'HQ_UNREACHABLE' && e.active === false),
      30_000,
    );
    expect(cleared.at >= alarm.at).toBe(true);
    await waitFor('dockctl status to show both uploaded, the link ok and no HQ alarm', async () => {
      const s = await dockctlStatus(world.configFile);
      return s.queue.uploaded === 2 && s.links?.tus === 'ok' && !s.alarms.some((a) => a.code === 'HQ_UNREACHABLE');
    });
    await waitFor('a retained state without the alarm', () => {
      const states = sub.messages.filter((m) => m.topic === `${P}/state`);
      const last = states.length
        ? (JSON.parse(states[states.length - 1].payload) as { alarms: { code: string }[]; queue: { uploaded: number } })
        : null;
      return last && last.queue.uploaded === 2 && !last.alarms.some((a) => a.code === 'HQ_UNREACHABLE');
    });
  });

  it('kill -9 of the daemon: the retained status becomes offline (last will), as a fresh subscriber sees it', async () => {
    const world = await linkedWorld();
    const d = await station.startDaemon(world.configFile);
    await d.waitForLog((l) => l.msg === 'connected to broker', 'the daemon to connect to the broker');
    const before = await station.subscribe(`${P}/status`);
    // (retained, or live if this subscription beat the daemon's publish)
    await waitFor('the status online', () => before.messages.some((m) => m.payload === 'online'), 10_000);

    await d.kill9();
    // The broker publishes the will: live to the subscriber it already had...
    await waitFor(
      'offline to the connected subscriber',
      () => before.messages.some((m) => !m.retain && m.payload === 'offline'),
      30_000,
    );
    // ...and retained, so a subscriber that comes later learns the station is offline.
    const fresh = await station.subscribe(`${P}/status`);
    const retained = await waitFor(
      'the retained status for a fresh subscriber',
      () => fresh.messages.find((m) => m.retain),
      10_000,
    );
    expect(retained.payload).toBe('offline');
  });
});
