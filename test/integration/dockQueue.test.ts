import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';
import { useStation } from '../helpers/station.ts';
import { eventsOf } from '../helpers/stationReports.ts';

interface Recorder {
  name: string;
  state: string;
  safeToUndock: boolean;
  serial: string | null;
  files: { total: number; done: number };
}

async function recorders(configFile: string): Promise<Recorder[]> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout).recorders as Recorder[];
}

describe('recorders beyond dock.concurrency are announced at once; only their copying waits', () => {
  const station = useStation();

  it('with one copy slot held by a recorder, a second one docked is announced (tile, recorder.docked, file count) and copied once the slot frees', async () => {
    const world = await station.world({
      extra: { log: { level: 'info' }, dock: { mountRoots: [path.join(station.dir, 'dock')], settleMs: 100, concurrency: 1 } },
    });
    const sub = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    // REC1 holds the only copy slot for as long as the test wants: its one recording (sparse) is larger than the
    // store's free space, so its copy waits for room (paused) without giving the slot up.
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      const h = await fs.open(path.join(v, recordingName({ seq: 1 })), 'w');
      await h.truncate(4 * 2 ** 40);
      await h.close();
    });
    await waitFor(
      'REC1 to hold the slot, paused for room',
      async () => (await recorders(world.configFile)).find((r) => r.name === 'REC1')?.state === 'paused',
      60_000,
    );

    const clip = await sampleMedia('video', 2, 710);
    await dockVolume(world.mountRoot, 'REC2', async (v) => {
      for (const seq of [1, 2, 3]) await fs.copyFile(clip, path.join(v, recordingName({ at: '20261128100000', seq })));
    });
    const docked = await waitFor(
      'REC2 to be announced',
      () => eventsOf(sub.messages, 'recorder.docked').find((e) => e.volume === path.join(world.mountRoot, 'REC2')),
      60_000,
    );
    expect(docked).toMatchObject({ deviceSerial: '1234567', officerId: '012345', files: 3 });
    // Its tile, from the daemon's state snapshot, which may lag the MQTT event by a moment (it failed once in CI so).
    const rec2 = await waitFor(
      "REC2's tile with its recorder and files",
      async () => (await recorders(world.configFile)).find((r) => r.name === 'REC2' && r.serial !== null),
      10_000,
    );
    expect(rec2).toMatchObject({ serial: '1234567', safeToUndock: false, files: { total: 3, done: 0 } });
    expect((await recorders(world.configFile)).find((r) => r.name === 'REC1')?.state).toBe('paused');
    expect(eventsOf(sub.messages, 'recorder.safe-to-undock')).toEqual([]);

    // REC1 taken away: the slot frees and REC2 is copied.
    await fs.rename(path.join(world.mountRoot, 'REC1'), path.join(station.dir, 'REC1-away'));
    const safe = await waitFor(
      'REC2 safe to undock',
      () => eventsOf(sub.messages, 'recorder.safe-to-undock').find((e) => e.volume === path.join(world.mountRoot, 'REC2')),
      120_000,
    );
    expect(safe).toMatchObject({ files: 3 });
    expect(daemon.logs.filter((l) => l.msg === 'recorder docked').map((l) => path.basename(String(l.volume)))).toEqual([
      'REC1',
      'REC2',
    ]);
  });
});
