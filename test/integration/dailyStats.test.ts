/**
 * HQ's daily summary (event `stats.daily`) on a station run in-process with a clock the test moves: a real mosquitto
 * carries the event, a real @tus/server receives the uploads. Two officers dock recordings of one day; just after
 * midnight (station time) that day's figures go out once, per officer and per recorder; a restart sends nothing again;
 * after days without a check, the days missed are sent.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../daemon/config.ts';
import { defaultHost } from '../../daemon/host.ts';
import { instantInZone, zonedIso } from '../../daemon/media/zonedTime.ts';
import { addDays } from '../../daemon/stats/dailySummary.ts';
import { recordingName, sampleMedia } from '../../scripts/media.ts';
import { type Device, type LinkWorld, TIME_ZONE } from '../helpers/linkWorld.ts';
import { MovedClock, useInProcessStation } from '../helpers/inProcessStation.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';

const HOUR_MS = 3_600_000;
const A: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };
const B: Device = { serial: 'BCT0002', officerId: '054321', officerName: '李四' };

/** The station-time day of an instant, YYYY-MM-DD. */
const dayOf = (at: Date) => instantInZone(at, TIME_ZONE).slice(0, 10);
/** The instant of a station-time wall clock. */
const wall = (day: string, time: string) => Date.parse(zonedIso(`${day}T${time}`, TIME_ZONE));
/** A GA/T 947 name time (YYYYMMDDhhmmss) of a station-time day and time. */
const stamp = (day: string, time: string) => `${day}${time}`.replace(/[-:]/g, '');

const station = useInProcessStation();

interface Clip {
  device: Device;
  source: string;
  at: string;
  seq: number;
  important?: boolean;
  sidecar: boolean;
}

async function dock(w: LinkWorld, name: string, clips: Clip[]): Promise<void> {
  await dockVolume(w.mountRoot, name, async (v) => {
    for (const c of clips) {
      const file = recordingName({
        officerId: c.device.officerId,
        serial: c.device.serial,
        at: c.at,
        seq: c.seq,
        important: c.important,
      });
      await fs.copyFile(c.source, path.join(v, file));
      if (c.sidecar)
        await fs.writeFile(
          path.join(v, file.replace(/\.mp4$/, '.meta.json')),
          JSON.stringify({ caseNo: `C-${c.seq}`, purpose: '现场检查', place: '幸福路12号' }),
        );
    }
  });
}

describe('stats.daily: the day summary HQ receives', () => {
  it('just after midnight the finished day goes to HQ once, per officer and recorder; a restart sends nothing again; missed days are sent', async () => {
    const w = await station.world({ devices: [A, B] });
    const clock = new MovedClock();
    // Noon, station time, of today or tomorrow: the whole test day lies between its recordings and the next midnight.
    const today = dayOf(clock.now());
    const noon = wall(today, '12:00:00') > clock.ms() ? wall(today, '12:00:00') : wall(addDays(today, 1), '12:00:00');
    clock.advance(noon - clock.ms());
    const day = dayOf(clock.now());
    const loaded = loadConfig(w.configFile);
    loaded.config.rules.offloadWithinHours = 24;
    let c = await station.start(loaded, { ...defaultHost(), clock });
    const summaries = () => w.events('stats.daily') as unknown as DailyEvent[];
    const queuedInCatalog = () => c.catalog.auditEntries().filter((e) => e.type === 'stats.daily').length;
    // The first start sends nothing for the days before it.
    expect(queuedInCatalog()).toBe(0);

    // A: an important recording with its sidecar and one without (held for annotation); B: one of the day and one of
    // the day before (not in this day's figures).
    const [a1, a2, b1, b0] = await Promise.all([1, 2, 3, 4].map((n) => sampleMedia('video', 1, 9300 + n)));
    await dock(w, 'A-1', [
      { device: A, source: a1, at: stamp(day, '08:00:00'), seq: 1, important: true, sidecar: true },
      { device: A, source: a2, at: stamp(day, '09:30:00'), seq: 2, sidecar: false },
    ]);
    await dock(w, 'B-1', [
      { device: B, source: b1, at: stamp(day, '10:15:00'), seq: 3, sidecar: true },
      { device: B, source: b0, at: stamp(addDays(day, -1), '20:00:00'), seq: 4, sidecar: true },
    ]);
    await waitFor(
      'three uploaded, one held',
      () => c.catalog.list('uploaded').length === 3 && c.catalog.list('needs-annotation').length === 1,
      90_000,
    );
    const sizes = new Map(c.catalog.list().map((f) => [f.filename, f.size]));
    const size = (seq: number) => [...sizes].find(([name]) => name.includes(`_${String(seq).padStart(4, '0')}`))![1];

    // The day is not over: nothing yet.
    expect(c.daily.check()).toEqual([]);
    // One minute after midnight, station time.
    clock.advance(wall(addDays(day, 1), '00:01:00') - clock.ms());
    expect(c.daily.check()).toEqual([day]);
    const [summary] = await waitFor('stats.daily on MQTT', () => (summaries().length ? summaries() : null), 30_000);
    expect(summary).toMatchObject({
      type: 'stats.daily',
      day,
      from: `${day}T00:00:00+08:00`,
      to: `${addDays(day, 1)}T00:00:00+08:00`,
      timeZone: TIME_ZONE,
      offloadWithinHours: 24,
    });
    const counts = (recordings: number, bytes: number, important: number, awaiting: number, atHq: number) => ({
      recordings,
      bytes,
      durationSeconds: expect.any(Number),
      important,
      late: 0,
      awaitingAnnotation: awaiting,
      atHq,
      medianDockToHqSeconds: expect.any(Number),
    });
    expect(summary.officers).toEqual([
      { key: A.officerId, name: A.officerName, ...counts(2, size(1) + size(2), 1, 1, 1) },
      { key: B.officerId, name: B.officerName, ...counts(1, size(3), 0, 0, 1) },
    ]);
    expect(summary.devices).toEqual([
      { key: A.serial, name: A.officerName, ...counts(2, size(1) + size(2), 1, 1, 1) },
      { key: B.serial, name: B.officerName, ...counts(1, size(3), 0, 0, 1) },
    ]);
    expect(summary.totals).toEqual(counts(3, size(1) + size(2) + size(3), 1, 1, 2));
    expect(summary.totals.durationSeconds).toBeGreaterThan(2);

    // Checked again, and after a restart the same night: the day is not sent twice.
    expect(c.daily.check()).toEqual([]);
    await c.stop();
    c = await station.start(loadConfig(w.configFile), { ...defaultHost(), clock });
    expect(c.daily.check()).toEqual([]);
    expect(queuedInCatalog()).toBe(1);

    // Three days on without a check (a station switched off): the days missed are sent, oldest first.
    clock.advance(3 * 24 * HOUR_MS);
    const missed = [1, 2, 3].map((n) => addDays(day, n));
    expect(c.daily.check()).toEqual(missed);
    await waitFor('the missed days on MQTT', () => summaries().length === 4, 30_000);
    expect(summaries().map((s) => [s.day, s.totals.recordings])).toEqual([[day, 3], ...missed.map((d) => [d, 0])]);
    expect(queuedInCatalog()).toBe(4);

    // The clock set back five days (it was wrong when those days were sent): nothing is sent again, and the summary goes
    // on from the corrected clock, not from the last day sent (which would stop it for five days).
    clock.advance(-5 * 24 * HOUR_MS);
    expect(c.daily.check()).toEqual([]);
    clock.advance(24 * HOUR_MS);
    expect(c.daily.check()).toEqual([addDays(day, -1)]);
    expect(queuedInCatalog()).toBe(5);
  }, 240_000);
});

interface DailyCounts {
  recordings: number;
  durationSeconds: number;
}
interface DailyEvent {
  type: 'stats.daily';
  day: string;
  officers: (DailyCounts & { key: string; name: string | null })[];
  devices: (DailyCounts & { key: string; name: string | null })[];
  totals: DailyCounts;
}
