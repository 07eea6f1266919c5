/**
 * Recorders with a control channel, end to end against the real daemon process, a real mosquitto and a real
 * @tus/server: an emulated recorder (drivers/emulator) on a socat pty whose station end appears in dock.serialDir →
 * BC handshake (login, identity, clock drift measured and fixed, battery, mass storage) → its volume appears in the
 * mount root → ingest → upload. Faults end that recorder's session with the right alarm while another recorder docked
 * at the same time is ingested normally; an unplug mid-copy followed by a re-dock delivers every file exactly once; a
 * recorder whose tty vanishes before its UDISKEN acknowledgement is read is still paired with its storage.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EmulatorFaults } from '../../drivers/emulator/index.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { recordTopics } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { type LinkWorld, STATION, loopedClip, type Device, type LinkWorldOptions, type Recording } from '../helpers/linkWorld.ts';
import { useLinkWorld } from '../helpers/station.ts';

/** The recorder keeps whole seconds, and the reading takes a round trip over the pty on a loaded machine. */
const DRIFT_TOLERANCE_MS = 3000;
const OFFSET_MS = 90_000;

const HEALTHY: Device = { serial: 'BCH0001', officerId: '012345', officerName: '张三' };
const OTHER: Device = { serial: 'BCF0002', officerId: '054321', officerName: '李四' };
const STRANGER = { serial: 'BCU0003', officerId: '077777', officerName: '王五' };

/** Small distinct clips (cached): 1 s videos, each variant its own content. */
const clip = (n: number) => sampleMedia('video', 1, 3300 + n);

const worlds = useLinkWorld();

async function station(o: LinkWorldOptions): Promise<LinkWorld> {
  const world = await worlds.create(o);
  await world.startDaemon();
  return world;
}

const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

/** A measured value (a number, or its decimal string in upload metadata) within `tolerance` of `expected`. */
function near(actual: unknown, expected: number, tolerance = DRIFT_TOLERANCE_MS): void {
  const ok = typeof actual === 'number' || (typeof actual === 'string' && /^-?\d+$/.test(actual));
  expect(ok, `${JSON.stringify(actual)} should be a measurement`).toBe(true);
  expect(
    Math.abs(Number(actual) - expected),
    `${String(actual)} should be within ${tolerance} ms of ${expected}`,
  ).toBeLessThanOrEqual(tolerance);
}

/** The `recorder.docked` event of a serial (waited for). */
function docked(w: LinkWorld, serial: string): Promise<Record<string, unknown>> {
  return waitFor(
    `recorder.docked for ${serial}`,
    () => w.events('recorder.docked').find((e) => e.deviceSerial === serial),
    60_000,
  );
}

/** The retained state snapshot as a new subscriber receives it, once `pred` holds for it (re-subscribing until then). */
async function retainedState(
  w: LinkWorld,
  pred: (snap: { recorders: Record<string, unknown>[] }) => boolean,
): Promise<{ recorders: Record<string, unknown>[] }> {
  return waitFor(
    'a retained state snapshot',
    async () => {
      const sub = await recordTopics(w.broker.url, `dockd/${STATION}/state`);
      try {
        const first = await waitFor('the retained state', () => sub.messages[0], 10_000);
        expect(first.retain).toBe(true);
        const snap = JSON.parse(first.payload) as { recorders: Record<string, unknown>[] };
        return pred(snap) ? snap : null;
      } finally {
        await sub.close();
      }
    },
    60_000,
    500,
  );
}

/** Every upload carries the identity and the files' own names and capture times. */
function expectUploadsOf(
  uploads: LinkWorld['tus']['finished'],
  recordings: Recording[],
  who: { serial: string; officerId: string },
): void {
  expect(uploads.map((u) => u.sha256).sort()).toEqual(recordings.map((r) => r.sha256).sort());
  for (const r of recordings) {
    const u = uploads.find((x) => x.sha256 === r.sha256)!;
    expect(u.metadata).toMatchObject({
      filename: r.name,
      sha256: r.sha256,
      size: String(r.size),
      stationId: STATION,
      deviceSerial: who.serial,
      officerId: who.officerId,
    });
  }
}

describe('a recorder docked over its control channel (dock.serialDir)', () => {
  it('handshake → drift recorded and the clock set → volume exposed at <mountRoot>/<serial> → ingest → upload with drift and recorder time', async () => {
    const w = await station({ devices: [HEALTHY] });
    const a = await w.recorder({ ...HEALTHY, battery: 66, clockOffsetMs: OFFSET_MS, media: [await clip(1), await clip(2)] });
    // Before docking, the recorder's clock really is 90 s ahead (so the checks below can fail).
    near(a.rec.clock().getTime() - Date.now(), OFFSET_MS, 1000);
    await a.rec.plugIn();
    expect(await exists(w.linkOf(HEALTHY.serial))).toBe(true);

    const uploads = await w.uploaded(a.recordings);

    // The handshake, in order: login, serial, officer, read the clock, set it, battery, mass storage.
    expect(a.heard.map((l) => l.replace(/\d{14}$/, 'T'))).toEqual([
      'BC+LOGIN=admin:***',
      'BC+DID?',
      'BC+UID?',
      'BC+SYSTIME?',
      'BC+SYSTIME=T',
      'BC+BATVAL?',
      'BC+UDISKEN=1',
    ]);
    // The recorder's clock was set: it now reads the station's time (to the second), no longer 90 s ahead.
    near(a.rec.clock().getTime() - Date.now(), 0);
    // Its volume appeared where dockd looks, under its serial; the control tty went away.
    const volume = path.join(w.mountRoot, HEALTHY.serial);
    expect(a.rec.state).toBe('storage');
    expect(a.rec.exposedPath).toBe(volume);
    expect(await exists(volume)).toBe(true);
    expect(await exists(w.linkOf(HEALTHY.serial))).toBe(false);

    // MQTT recorder.docked: the identity from the protocol, battery and the measured drift.
    const ev = await docked(w, HEALTHY.serial);
    expect(ev).toMatchObject({
      volume,
      deviceSerial: HEALTHY.serial,
      officerId: HEALTHY.officerId,
      officerName: '张三',
      battery: 66,
      files: 2,
    });
    near(ev.clockDriftMs, OFFSET_MS);
    const drift = ev.clockDriftMs as number;

    // Upload metadata: the same drift on each file, and the capture time exactly as the recorder wrote it.
    expectUploadsOf(uploads, a.recordings, HEALTHY);
    for (const r of a.recordings) {
      const u = uploads.find((x) => x.sha256 === r.sha256)!;
      expect(u.metadata).toMatchObject({
        clockDriftMs: String(drift),
        recorderTime: r.localTime,
        capturedAt: `${r.localTime}+08:00`,
        collector: '张三',
      });
    }
    expect(w.tus.refused).toEqual([]);

    // The retained state snapshot (as a newcomer sees it): the recorder with its battery and drift, done.
    const snap = await retainedState(w, (s) =>
      s.recorders.some((r) => r.serial === HEALTHY.serial && r.safeToUndock === true && r.state === 'done'),
    );
    expect(snap.recorders.find((r) => r.serial === HEALTHY.serial)).toMatchObject({
      volume,
      officerId: HEALTHY.officerId,
      battery: 66,
      driftMs: drift,
      state: 'done',
    });

    // dockctl: the same recorder, both files uploaded, no alarm.
    const status = await waitFor(
      'dockctl status with both files uploaded',
      async () => {
        const s = await w.status();
        return s.queue.uploaded === 2 && s.recorders.some((r) => r.serial === HEALTHY.serial && r.state === 'done') ? s : null;
      },
      60_000,
    );
    expect(status.daemon).toBe('running');
    expect(status.recorders.find((r) => r.serial === HEALTHY.serial)).toMatchObject({ battery: 66, driftMs: drift });
    expect(status.alarms).toEqual([]);
    const files = await w.files();
    expect(files.map((f) => [f.deviceSerial, f.officerId, f.state]).sort()).toEqual([
      [HEALTHY.serial, HEALTHY.officerId, 'uploaded'],
      [HEALTHY.serial, HEALTHY.officerId, 'uploaded'],
    ]);
    expect(files.map((f) => f.recorderTime).sort()).toEqual(a.recordings.map((r) => r.localTime).sort());

    expect(await w.daemon!.stop()).toBe(0);
  }, 240_000);

  it('firmware answering +LOGIN:Sucess, with its own device password, is docked and ingested end to end', async () => {
    const device = { ...OTHER, password: 'dev-pw-9' };
    const w = await station({ devices: [device] });
    const b = await w.recorder({
      ...OTHER,
      password: 'dev-pw-9',
      loginWord: 'Sucess',
      clockOffsetMs: -30_000,
      media: [await clip(3), await clip(4)],
    });
    await b.rec.plugIn();
    const uploads = await w.uploaded(b.recordings);
    expectUploadsOf(uploads, b.recordings, OTHER);
    const ev = await docked(w, OTHER.serial);
    expect(ev).toMatchObject({ deviceSerial: OTHER.serial, officerId: OTHER.officerId, officerName: '李四', battery: 87 });
    near(ev.clockDriftMs, -30_000);
    // One login (with the device's own password) was enough.
    expect(b.heard.filter((l) => l.startsWith('BC+LOGIN')).length).toBe(1);
    expect(b.heard.at(-1)).toBe('BC+UDISKEN=1');
    expect((await w.status()).alarms).toEqual([]);
  }, 240_000);
});

interface FaultCase {
  name: string;
  code: 'WRONG_PASSWORD' | 'RECORDER_HANDSHAKE_FAILED' | 'RECORDER_NO_STORAGE' | 'UNKNOWN_RECORDER';
  faults?: EmulatorFaults;
  /** The faulty recorder is in `devices` (default true). */
  known?: boolean;
  dock?: Record<string, unknown>;
  /** Whether it was switched to mass storage. */
  switched: boolean;
  /** Commands it heard, exactly (when that is part of the point). */
  heard?: string[];
  /** What the alarm says, besides the recorder's serial. */
  says?: string;
}

const FAULTS: FaultCase[] = [
  // Refused at once: one login, nothing beyond it.
  {
    name: 'wrongPassword',
    code: 'WRONG_PASSWORD',
    faults: { wrongPassword: true },
    switched: false,
    heard: ['BC+LOGIN=admin:***'],
    says: 'wrong password',
  },
  // Nothing but logins (dockd tries the login of a fresh tty more than once before giving up).
  { name: 'silence', code: 'RECORDER_HANDSHAKE_FAILED', faults: { silence: true }, switched: false, says: 'does not answer' },
  {
    name: 'garbage',
    code: 'RECORDER_HANDSHAKE_FAILED',
    faults: { garbage: true },
    switched: false,
    heard: ['BC+LOGIN=admin:***'],
    says: 'garbage',
  },
  {
    name: 'neverReturnsAsStorage',
    code: 'RECORDER_NO_STORAGE',
    faults: { neverReturnsAsStorage: true },
    dock: { storageTimeoutSeconds: 3 },
    switched: true,
    says: 'did not return as storage',
  },
  {
    name: 'an unknown serial with dock.allowUnknown false',
    code: 'UNKNOWN_RECORDER',
    known: false,
    dock: { allowUnknown: false },
    switched: false,
    says: 'unknown recorder',
  },
];

describe("faults end that recorder's session with an alarm, and never block a healthy recorder docked at the same time", () => {
  for (const c of FAULTS) {
    it(`${c.name} → ${c.code}; nothing of it ingested; the healthy one is`, async () => {
      const faulty = c.known === false ? STRANGER : OTHER;
      const w = await station({
        devices: c.known === false ? [HEALTHY] : [HEALTHY, OTHER],
        dock: { commandTimeoutMs: 800, ...c.dock },
      });
      const h = await w.recorder({ ...HEALTHY, clockOffsetMs: 5_000, media: [await clip(1), await clip(2)] });
      const f = await w.recorder({ ...faulty, faults: c.faults, media: [await clip(3), await clip(4)] });
      await Promise.all([h.rec.plugIn(), f.rec.plugIn()]);

      // The alarm on MQTT, naming the recorder.
      const alarm = await waitFor(`alarm ${c.code}`, () => w.alarmEvent(c.code), 60_000);
      expect(String(alarm.message)).toContain(faulty.serial);
      if (c.says) expect(String(alarm.message)).toContain(c.says);
      // The healthy recorder was ingested and uploaded normally.
      const uploads = await w.uploaded(h.recordings);
      expectUploadsOf(uploads, h.recordings, HEALTHY);
      near((await docked(w, HEALTHY.serial)).clockDriftMs, 5_000);

      // The alarm in dockctl status, the daemon still running.
      const status = await waitFor(
        `${c.code} in dockctl status`,
        async () => {
          const s = await w.status();
          return s.alarms.some((a) => a.code === c.code) && s.queue.uploaded === 2 ? s : null;
        },
        60_000,
      );
      expect(status.daemon).toBe('running');
      expect(status.alarms.find((a) => a.code === c.code)!.message).toContain(faulty.serial);
      expect(w.daemon!.proc!.exitCode).toBeNull();
      // No other alarm than this one.
      expect(
        w
          .events('alarm')
          .filter((e) => e.active)
          .map((e) => e.code),
      ).toEqual([c.code]);

      // Nothing of the faulty recorder was ingested: the server has exactly the healthy recorder's files, so does the catalog.
      expect(w.tus.finished.map((u) => u.sha256).sort()).toEqual(h.recordings.map((r) => r.sha256).sort());
      const files = await w.files();
      expect(files.map((x) => x.deviceSerial)).toEqual([HEALTHY.serial, HEALTHY.serial]);
      expect(w.events('recorder.docked').map((e) => e.deviceSerial)).toEqual([HEALTHY.serial]);
      expect(await exists(path.join(w.mountRoot, faulty.serial))).toBe(false);
      expect(f.heard.includes('BC+UDISKEN=1')).toBe(c.switched);
      if (c.heard) expect(f.heard).toEqual(c.heard);
      else if (!c.switched && c.known !== false)
        expect(f.heard.length > 0 && f.heard.every((l) => l === 'BC+LOGIN=admin:***')).toBe(true);
      if (c.code === 'RECORDER_NO_STORAGE') expect(f.rec.state).toBe('no-storage');
      else expect(f.rec.state).toBe('command');

      expect(await w.daemon!.stop()).toBe(0);
    }, 240_000);
  }

  it('an unknown serial with dock.allowUnknown true is ingested with the identity it reports', async () => {
    const w = await station({ devices: [HEALTHY], dock: { commandTimeoutMs: 800, allowUnknown: true } });
    const h = await w.recorder({ ...HEALTHY, media: [await clip(1), await clip(2)] });
    // Two GA/T 947 names, and one name that carries no identity at all: only the protocol says whose it is.
    const u = await w.recorder({
      ...STRANGER,
      clockOffsetMs: -7_000,
      media: [await clip(3), await clip(4)],
      odd: [{ name: 'VID_0005.mp4', source: await clip(5) }],
    });
    await Promise.all([h.rec.plugIn(), u.rec.plugIn()]);

    const uploads = await w.uploaded([...h.recordings, ...u.recordings]);
    expectUploadsOf(
      uploads.filter((x) => h.recordings.some((r) => r.sha256 === x.sha256)),
      h.recordings,
      HEALTHY,
    );
    const strangers = uploads.filter((x) => u.recordings.some((r) => r.sha256 === x.sha256));
    expectUploadsOf(strangers, u.recordings, STRANGER);
    // The officer name is known only from the recorder's own answer (+UID), not from `devices`.
    for (const x of strangers) expect(x.metadata.collector).toBe(STRANGER.officerName);
    const odd = strangers.find((x) => x.metadata.filename === 'VID_0005.mp4')!;
    expect(odd.metadata).toMatchObject({ deviceSerial: STRANGER.serial, officerId: STRANGER.officerId });
    const ev = await docked(w, STRANGER.serial);
    expect(ev).toMatchObject({
      deviceSerial: STRANGER.serial,
      officerId: STRANGER.officerId,
      officerName: STRANGER.officerName,
      files: 3,
    });
    near(ev.clockDriftMs, -7_000);
    for (const s of strangers) near(s.metadata.clockDriftMs, -7_000);

    expect(
      w
        .events('alarm')
        .filter((e) => e.active)
        .map((e) => e.code),
    ).toEqual([]);
    const status = await w.status();
    expect(status.daemon).toBe('running');
    expect(status.alarms).toEqual([]);
    expect(w.tus.finished.length).toBe(5);
  }, 240_000);
});

describe('docked again after its storage never came', () => {
  it('the new dock supersedes the old wait: no RECORDER_NO_STORAGE from the old one, and the new identity is paired', async () => {
    const timeoutS = 8;
    const w = await station({ devices: [HEALTHY], dock: { storageTimeoutSeconds: timeoutS } });
    // Its storage takes 5 s to appear after each switch (a slow mount), and the first time it never does.
    const a = await w.recorder({
      ...HEALTHY,
      clockOffsetMs: OFFSET_MS,
      storageDelayMs: 5000,
      faults: { neverReturnsAsStorage: true },
      media: [await clip(1)],
    });
    let storageAt = 0;
    a.rec.on('storage', () => {
      storageAt = Date.now();
    });
    await a.rec.plugIn();
    await waitFor('the first switch, with no storage', () => a.rec.state === 'no-storage', 60_000);
    const first = await w.daemon!.waitForLog(
      (l) => l.msg === 'recorder identified; switched to mass storage',
      'the first handshake',
    );
    const firstDeadline = Date.parse(String(first.time)) + timeoutS * 1000;
    // Re-docked 2 s before the first wait would give up, so that the new storage appears after that moment.
    await a.rec.unplug();
    a.rec.faults.neverReturnsAsStorage = false;
    await waitFor('2 s before the first deadline', () => Date.now() >= firstDeadline - 2000, 30_000);
    await a.rec.plugIn();
    const uploads = await w.uploaded(a.recordings);
    expectUploadsOf(uploads, a.recordings, HEALTHY);
    // The scenario held: the new storage appeared after the first wait's deadline.
    expect(storageAt).toBeGreaterThan(firstDeadline);
    // The second handshake's identity was paired with the volume (the clock was set by the first: no drift now).
    const ev = await docked(w, HEALTHY.serial);
    near(ev.clockDriftMs, 0);
    expect(ev).toMatchObject({ battery: 87, officerName: '张三' });
    near(uploads[0].metadata.clockDriftMs, 0);
    // Neither wait raised an alarm: the first was superseded, the second was met.
    await waitFor('the second deadline to pass', () => Date.now() > storageAt + timeoutS * 1000, 30_000);
    expect(w.events('alarm').map((e) => e.code)).toEqual([]);
    expect((await w.status()).alarms).toEqual([]);
  }, 240_000);
});

describe('its tty vanishes before the UDISKEN acknowledgement is read (it re-enumerates as storage)', () => {
  it('no reply and no close, but the tty is gone: the switch counts, the storage is paired with the identity, no alarm', async () => {
    const w = await station({ devices: [HEALTHY] });
    // Its storage appears after dockd's wait for the acknowledgement has run out (dock.commandTimeoutMs), as on the bench.
    const a = await w.recorder({
      ...HEALTHY,
      faults: { vanishesBeforeUdiskReply: true },
      storageDelayMs: 2500,
      media: [await clip(5), await clip(6)],
    });
    await a.rec.plugIn();

    const uploads = await w.uploaded(a.recordings);
    expect(a.heard.at(-1)).toBe('BC+UDISKEN=1');
    expect(a.rec.state).toBe('storage');
    // dockd saw silence, not a close, and took the vanished tty for the switch.
    const taken = await w.daemon!.waitForLog(
      (l) => l.msg === 'switch to mass storage taken as done',
      'the switch to be taken as done',
    );
    expect(taken).toMatchObject({ serial: HEALTHY.serial, seen: 'tty gone without a reply' });

    // The storage under its serial was paired with the identity read in the handshake: serial, officer and name.
    const volume = path.join(w.mountRoot, HEALTHY.serial);
    expect(await docked(w, HEALTHY.serial)).toMatchObject({
      volume,
      deviceSerial: HEALTHY.serial,
      officerId: HEALTHY.officerId,
      officerName: '张三',
      battery: 87,
      files: 2,
    });
    expectUploadsOf(uploads, a.recordings, HEALTHY);
    for (const u of uploads) expect(u.metadata.collector).toBe('张三');
    const files = await w.files();
    expect(files.map((f) => [f.deviceSerial, f.officerId]).sort()).toEqual([
      [HEALTHY.serial, HEALTHY.officerId],
      [HEALTHY.serial, HEALTHY.officerId],
    ]);

    // No RECORDER_HANDSHAKE_FAILED (nor any other alarm).
    expect(w.alarmEvent('RECORDER_HANDSHAKE_FAILED')).toBeUndefined();
    expect(
      w
        .events('alarm')
        .filter((e) => e.active)
        .map((e) => e.code),
    ).toEqual([]);
    const status = await w.status();
    expect(status.alarms).toEqual([]);
    expect(await w.daemon!.stop()).toBe(0);
  }, 240_000);
});

describe('unplugged mid-copy, then docked again', () => {
  it('every file arrives at the tus server exactly once and intact', async () => {
    // Three ~20 MB clips: long enough to copy that the cable can be pulled while they are read.
    const big = await Promise.all([1, 2, 3].map((n) => loopedClip(3320 + n, 140)));
    for (const b of big) expect((await fs.stat(b)).size).toBeGreaterThan(19 << 20);
    const w = await station({ devices: [HEALTHY] });
    const a = await w.recorder({ ...HEALTHY, clockOffsetMs: OFFSET_MS, media: big });
    const volume = path.join(w.mountRoot, HEALTHY.serial);
    const interrupted = () =>
      w.daemon!.logs.filter((l) => l.msg === 'recorder ingest finished' && l.state === 'unplugged' && l.volume === volume);

    // Dock, and pull the cable the moment dockd's first partial copy appears in the store's tmp folder: dockd is then
    // copying the first clip (a fixed delay after the storage appears missed the copy on a fast or a busy machine).
    // An open file keeps reading after the pull, so the first clip may still be stored; the rest cannot be.
    const tmpDir = path.join(w.storeDir, 'tmp');
    const copying = async () => (await fs.readdir(tmpDir).catch(() => [])).length > 0;
    let docks = 0;
    while (!interrupted().length) {
      expect(docks, 'the pull never caught dockd copying').toBeLessThan(5);
      await a.rec.plugIn();
      docks++;
      await waitFor('dockd to start copying', copying, 60_000, 2);
      await a.rec.unplug();
      // Let dockd notice the pull and end that session before looking at its logs.
      const count = (msg: string) => w.daemon!.logs.filter((l) => l.msg === msg && l.volume === volume).length;
      await waitFor(
        'dockd to end the session',
        () => count('recorder undocked') >= docks && count('recorder ingest finished') >= count('recorder docked'),
        20_000,
      ).catch(() => null);
    }
    // Caught mid-copy: not every file was stored before the pull.
    const cut = interrupted()[0];
    expect(Number(cut.copied) + Number(cut.alreadyStored)).toBeLessThan(3);
    expect(w.tus.finished.length).toBeLessThan(3);

    // Docked again, left in: the rest is taken.
    await waitFor('the last pull to settle', () => a.rec.state === 'unplugged');
    await a.rec.plugIn();
    docks++;
    const uploads = await w.uploaded(a.recordings, 180_000);
    expectUploadsOf(uploads, a.recordings, HEALTHY);

    // Exactly once each, intact (the server re-hashed every upload and refused none).
    await waitFor(
      'dockd done with the last dock',
      async () => (await w.status()).recorders.some((r) => r.serial === HEALTHY.serial && r.state === 'done'),
      120_000,
    );
    expect(w.tus.refused).toEqual([]);
    expect(w.tus.finished.map((x) => x.sha256).sort()).toEqual(a.recordings.map((r) => r.sha256).sort());
    for (const r of a.recordings) expect(w.tus.finished.find((x) => x.sha256 === r.sha256)!.size).toBe(r.size);
    const files = await w.files();
    expect(files.map((f) => [f.sha256, f.state]).sort()).toEqual(a.recordings.map((r) => [r.sha256, 'uploaded']).sort());
    // The re-dock took what the cut-off dock had stored as already stored, and copied only the rest.
    const last = w.daemon!.logs.filter((l) => l.msg === 'recorder ingest finished' && l.volume === volume).at(-1)!;
    expect(last).toMatchObject({ state: 'done', leftBehind: 0, safeToUndock: true });
    expect(Number(last.copied) + Number(last.alreadyStored)).toBe(3);
    expect(Number(last.alreadyStored)).toBeGreaterThanOrEqual(Number(cut.copied));
    // The store holds exactly the three objects, intact, and no partial copy was left behind.
    const objects = (
      await fs.readdir(path.join(w.storeDir, 'objects', 'sha256'), { recursive: true, withFileTypes: true })
    ).filter((d) => d.isFile());
    expect(objects.map((d) => d.name).sort()).toEqual(a.recordings.map((r) => r.sha256).sort());
    expect(await fs.readdir(path.join(w.storeDir, 'tmp'))).toEqual([]);
    // Each dock was a handshake of its own.
    expect(a.heard.filter((l) => l === 'BC+UDISKEN=1').length).toBe(docks);
    expect(w.events('recorder.docked').length).toBeGreaterThanOrEqual(2);
    expect(
      w
        .events('alarm')
        .filter((e) => e.active && e.code !== 'RECORDER_UNPLUGGED')
        .map((e) => e.code),
    ).toEqual([]);
    expect(await w.daemon!.stop()).toBe(0);
  }, 600_000);
});
