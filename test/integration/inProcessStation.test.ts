/**
 * The daemon run in-process (the Controller, not the dockd command) against the recorder emulator on a real socat
 * pty, a real mosquitto and a real @tus/server, with the station's clock handed in through the host: the test moves
 * it 400 days ahead, and everything the station stamps follows it — the recorder's measured drift, the time it sets
 * on the recorder, and the `at` of the MQTT events and the catalog's created/uploaded times. And a service that
 * cannot start (USB hotplug without libusb) is contained: an alarm, and the daemon goes on; so are digest threads that
 * cannot start (the host's, handed in): SM3 is computed on the event loop meanwhile.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../daemon/config.ts';
import { defaultHost } from '../../daemon/host.ts';
import { copyWorkers, SMALL_FILE } from '../../daemon/recorder/copyWorkers.ts';
import { DIGEST_THREAD_SOURCE, DigestWorkers } from '../../daemon/recorder/digestWorkers.ts';
import { LibusbHotplug, loadUsbModule } from '../../drivers/usb/hotplug.ts';
import { cachedFixture, remux, sampleMedia } from '../../scripts/media.ts';
import { MovedClock, useInProcessStation } from '../helpers/inProcessStation.ts';
import type { Device } from '../helpers/linkWorld.ts';
import { waitFor } from '../helpers/ports.ts';

const DAY_MS = 86_400_000;
const MOVED_DAYS = 400;
const OFFICER: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };

const days = (ms: number) => Math.round(ms / DAY_MS);

describe('the station in-process, on a clock the test moves', () => {
  const station = useInProcessStation();

  it('drift, the recorder clock it sets, event times and catalog times all follow the moved clock', async () => {
    const w = await station.world({ devices: [OFFICER] });
    const clock = new MovedClock();
    const controller = await station.start(loadConfig(w.configFile), { ...defaultHost(), clock });

    clock.advance(MOVED_DAYS * DAY_MS);
    const movedFrom = clock.now().toISOString();
    const a = await w.recorder({ ...OFFICER, media: [await sampleMedia('video', 1, 4400)] });
    await a.rec.plugIn();
    await w.uploaded(a.recordings);
    const uploadedEvent = await waitFor('file.uploaded', () => w.events('file.uploaded')[0], 60_000);
    const movedTo = clock.now().toISOString();

    // The recorder runs on real time: against the moved station clock it is 400 days behind, and the handshake set it
    // to the station's time.
    const docked = await waitFor('recorder.docked', () => w.events('recorder.docked')[0], 60_000);
    expect(days(docked.clockDriftMs as number)).toBe(-MOVED_DAYS);
    expect(days(a.rec.clock().getTime() - Date.now())).toBe(MOVED_DAYS);

    // Events are stamped on the moved clock.
    for (const e of [docked, uploadedEvent, ...w.events('file.ingested')]) {
      const at = String(e.at);
      expect(at >= movedFrom && at <= movedTo, `${String(e.type)} at ${at} within [${movedFrom}, ${movedTo}]`).toBe(true);
    }
    // So are the catalog's times.
    const row = controller.catalog.list('uploaded')[0];
    expect(row.sha256).toBe(a.recordings[0].sha256);
    for (const t of [row.created_at, row.uploaded_at]) {
      expect(t! >= movedFrom && t! <= movedTo, `${t} within [${movedFrom}, ${movedTo}]`).toBe(true);
    }
  }, 240_000);

  it('a service that cannot start is contained: SERVICE_FAILED names it, and the station goes on ingesting', async () => {
    const w = await station.world({ devices: [OFFICER] });
    const loaded = loadConfig(w.configFile);
    // USB hotplug through libusb only, on a station whose native usb module is missing: the usb service cannot start.
    loaded.config.usb.enabled = true;
    loaded.config.usb.hotplug = 'libusb';
    const host = defaultHost();
    const noLibusb = () => loadUsbModule(() => import('usb-native-module-that-is-not-installed' as string));
    host.usb = { ...host.usb, hotplug: () => new LibusbHotplug({ load: noLibusb }) };
    const controller = await station.start(loaded, host);
    const { lines } = station;

    const alarm = await waitFor('the SERVICE_FAILED alarm event', () => w.alarmEvent('SERVICE_FAILED'), 60_000);
    expect(alarm).toMatchObject({ key: 'service:usb', active: true });
    expect(alarm.message).toMatch(/^usb could not start \(.*native 'usb' module could not be loaded/);
    const failed = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'service failed to start; dockd goes on without it');
    expect(failed).toMatchObject({ service: 'usb', err: { type: 'UsbError', code: 'LIBUSB_UNAVAILABLE' } });
    expect(lines.some((l) => JSON.parse(l).msg === 'dockd started')).toBe(true);

    // The other intake paths still work: a recorder on its control channel is identified, ingested and uploaded.
    const a = await w.recorder({ ...OFFICER, media: [await sampleMedia('video', 1, 4401)] });
    await a.rec.plugIn();
    await w.uploaded(a.recordings);
    expect([...controller.board.alarms.values()].map((x) => x.code)).toEqual(['SERVICE_FAILED']);
  }, 240_000);

  it('digest threads that cannot start: SM3 is still computed for every recording, SERVICE_FAILED service:digest threads says so, and clears once a thread works again', async () => {
    const serials = ['BCT0001', 'BCT0002', 'BCT0003', 'BCT0004'];
    const w = await station.world({ devices: serials.map((serial) => ({ ...OFFICER, serial })) });
    const loaded = loadConfig(w.configFile);
    loaded.config.integrity.algorithms = ['sha256', 'sm3'];
    const clock = new MovedClock();
    // The real digest thread's code behind a gate: while the flag file exists, a thread dies as it starts.
    const broken = path.join(w.dir, 'digest-threads-broken');
    await fs.writeFile(broken, '');
    const digest = new DigestWorkers(
      1,
      `if (require('node:fs').existsSync(${JSON.stringify(broken)})) throw new Error('broken on purpose');
      ${DIGEST_THREAD_SOURCE}`,
      () => clock.ms(),
    );
    const controller = await station.start(loaded, { ...defaultHost(), clock, threads: { copy: copyWorkers, digest } });
    const { lines } = station;
    const logged = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

    // Clips above SMALL_FILE are copied on the event loop with SM3 on a digest thread: one valid MP4 remuxed into
    // variants (each its own bytes). One recorder after another, so that each copy starts a thread of its own.
    const base = await sampleMedia('video-big', 22, 0);
    const clip = (v: number) =>
      cachedFixture(`video-big-22s-remux-v${v}.mp4`, (tmp) => remux(base, tmp, { comment: `sm3 ${v}` }));
    const dock = async (serial: string, v: number) => {
      const source = await clip(v);
      const r = await w.recorder({ ...OFFICER, serial, media: [source] });
      expect(r.recordings[0].size).toBeGreaterThan(SMALL_FILE);
      await r.rec.plugIn();
      await w.uploaded(r.recordings);
      return {
        sha256: r.recordings[0].sha256,
        sm3: createHash('sm3')
          .update(await fs.readFile(source))
          .digest('hex'),
      };
    };
    const docked = [];
    for (const [i, serial] of serials.slice(0, 3).entries()) docked.push(await dock(serial, i + 1));

    // Three deaths in a row: the threads rest, and the board says so.
    const alarm = await waitFor('the digest threads alarm', () => w.alarmEvent('SERVICE_FAILED'), 60_000);
    expect(alarm).toMatchObject({ key: 'service:digest threads', active: true });
    expect(alarm.message).toMatch(/3 digest threads in a row failed.*after 1 min/);
    expect(logged().filter((l) => String(l.msg).startsWith('one of the digest threads died')).length).toBe(3);
    // Every recording has its SM3, exact, computed again on the event loop after its thread died.
    const sm3Of = (sha256: string) => controller.catalog.list('uploaded').find((f) => f.sha256 === sha256)?.sm3;
    for (const r of docked) expect(sm3Of(r.sha256)).toBe(r.sm3);

    // Mended, and the rest over: the next copy starts a thread, which computes its digest, and the alarm clears.
    await fs.rm(broken);
    clock.advance(61_000);
    docked.push(await dock(serials[3], 4));
    const cleared = await waitFor(
      'the digest threads alarm cleared',
      () => w.events('alarm').find((e) => e.key === 'service:digest threads' && e.active === false),
      60_000,
    );
    expect(cleared).toMatchObject({ code: 'SERVICE_FAILED' });
    expect(controller.board.alarms.has('service:digest threads')).toBe(false);
    expect(logged().some((l) => l.msg === 'digest threads work again')).toBe(true);
    expect(sm3Of(docked[3].sha256)).toBe(docked[3].sm3);
    expect(logged().filter((l) => String(l.msg).startsWith('one of the digest threads died')).length).toBe(3);
  }, 300_000);
});
