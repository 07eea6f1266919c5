import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlFiles } from '../helpers/dockctlJson.ts';
import { eventsOf } from '../helpers/stationReports.ts';
import { sha256Of } from '../helpers/trees.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Recorder {
  name: string;
  state: string;
  safeToUndock: boolean;
  files: { settling: number; superseded: number };
}

async function rec1(configFile: string): Promise<Recorder | undefined> {
  const r = await runDockctl(configFile, ['status', '--json']);
  return (JSON.parse(r.stdout).recorders as Recorder[]).find((x) => x.name === 'REC1');
}

describe('a recording still being written when docked is one recording', () => {
  const station = useStation();

  it('copies a clip appended to every 100 ms only once it settles, is not safe before, and copies a later change again as a new version that supersedes the first', async () => {
    const world = await station.world({
      extra: { dock: { mountRoots: [path.join(station.dir, 'dock')], settleMs: 100, settleSeconds: 1.5, rescanSeconds: 0.5 } },
    });
    const sub = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    const source = await fs.readFile(await sampleMedia('video', 4, 501));
    const name = recordingName({ at: '20261128130000', seq: 1 });
    const stillName = recordingName({ at: '20261128125900', seq: 0 });
    const still = await sampleMedia('video', 2, 502);
    const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await fs.writeFile(path.join(v, name), source.subarray(0, 4096));
      await fs.copyFile(still, path.join(v, stillName));
      await fs.writeFile(
        path.join(v, stillName.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'S-0', purpose: '现场检查', place: '幸福路12号' }),
      );
      await fs.writeFile(
        path.join(v, name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'S-1', purpose: '现场检查', place: '幸福路12号' }),
      );
    });

    const clip = path.join(volume, name);
    // The recorder keeps writing its last clip for about 4 s after it is docked.
    const chunk = Math.ceil((source.length - 4096) / 40);
    let written = 4096;
    const observed: Recorder[] = [];
    const appending = (async () => {
      while (written < source.length) {
        await sleep(100);
        // On a loaded machine one dockctl run can outlast the whole write: before the last chunk, keep the clip
        // changing (its time, not its bytes) until the sampler below has seen the recorder at least twice.
        while (written + chunk >= source.length && observed.length < 2) {
          await fs.utimes(clip, new Date(), new Date());
          await sleep(100);
        }
        const next = Math.min(source.length, written + chunk);
        await fs.appendFile(clip, source.subarray(written, next));
        written = next;
      }
    })();
    // Sampled beside the writer (a dockctl run takes longer than the 100 ms between appends).
    while (written < source.length) {
      const r = await rec1(world.configFile);
      if (r && written < source.length) observed.push(r);
    }
    await appending;
    // While it was being written: never safe (the copy count below shows it was stored once, complete).
    expect(observed.length).toBeGreaterThan(0);
    for (const r of observed) expect(r.safeToUndock).toBe(false);
    expect(observed.some((r) => r.files.settling >= 1)).toBe(true);

    await waitFor(
      'safe to undock once the clip has settled',
      async () => (await rec1(world.configFile))?.safeToUndock === true,
      60_000,
    );
    let rows = (await dockctlFiles(world.configFile)).filter((f) => f.filename === name);
    expect(rows).toHaveLength(1);
    expect(rows[0].sha256).toBe(sha256Of(source));
    expect(rows[0].size).toBe(source.length);

    // The recorder changes the file after it was copied: copied again, linked to the first, and the status says so.
    await fs.appendFile(clip, Buffer.from('trailing bytes written after the copy'));
    const changed = await fs.readFile(clip);
    await waitFor(
      'the changed clip copied again',
      async () => (await dockctlFiles(world.configFile)).filter((f) => f.filename === name).length === 2,
      60_000,
    );
    rows = (await dockctlFiles(world.configFile)).filter((f) => f.filename === name).sort((a, b) => a.id - b.id);
    expect(rows[1]).toMatchObject({ sha256: sha256Of(changed), supersedes: rows[0].id, sourcePath: name });
    await waitFor('safe again', async () => (await rec1(world.configFile))?.safeToUndock === true, 60_000);
    expect((await rec1(world.configFile))!.files.superseded).toBe(1);
    // The MQTT event follows the catalog row: wait for it rather than expect it by the time dockctl sees the row.
    const ingestedEvents = () => eventsOf(sub.messages, 'file.ingested').filter((e) => e.filename === name);
    await waitFor('both file.ingested events on MQTT', () => ingestedEvents().length >= 2, 30_000);
    expect(ingestedEvents().map((e) => e.supersedes ?? null)).toEqual([null, rows[0].id]);
    expect(await sha256OfFile(path.join(volume, name))).toBe(sha256Of(changed)); // the recorder was only read
    expect(await daemon.stop()).toBe(0);
  }, 240_000);
});
