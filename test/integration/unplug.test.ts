import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bigClip } from '../helpers/bigMedia.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockRecordings, storedObjects } from '../helpers/recordings.ts';

const P = 'dockd/test-st';

interface CatalogFile {
  id: number;
  sha256: string | null;
  state: string;
  sourcePath: string;
}
interface Status {
  daemon: string;
  recorders: { volume: string; state: string; safeToUndock: boolean }[];
  queue: Record<string, number>;
  alarms: { code: string; key: string; message: string }[];
}

async function dockctlJson<T>(configFile: string, args: string[]): Promise<T> {
  const r = await runDockctl(configFile, [...args, '--json']);
  if (r.code !== 0) throw new Error(`dockctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Every file under `root` with its size and mtime (cheap: the clips are large): to show the recorder was not touched. */
async function listing(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    const abs = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const st = await fs.lstat(abs);
    out[path.relative(root, abs)] = `${e.isFile() ? 'file' : 'other'} ${st.size} ${st.mode} ${st.mtimeMs}`;
  }
  return out;
}

/** The copies in the store's tmp/ now: how many hold a whole recording (their size is one of `sizes`), and the others. */
async function copiesInTmp(dir: string, sizes: Set<number>): Promise<{ whole: string[]; partial: string[] }> {
  const whole: string[] = [];
  const partial: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [])) {
    const size = await fs.stat(path.join(dir, name)).then(
      (st) => st.size,
      () => null,
    );
    if (size === null || !name.endsWith('.part')) continue;
    (sizes.has(size) ? whole : partial).push(name);
  }
  return { whole, partial };
}

describe('a recorder unplugged mid-copy', () => {
  const station = useStation();

  it('leaves no partial copy behind, keeps running, raises an alarm, and a re-dock delivers every file exactly once', async () => {
    const clips = await Promise.all([0, 1, 2, 3, 4].map((v) => bigClip(v)));
    const world = await station.world();
    const sub = await station.subscribe(`${P}/event`);
    const daemon = await station.startDaemon(world.configFile);
    const d = daemon;

    const tmpDir = path.join(world.storeDir, 'tmp');
    const { volume, files } = await dockRecordings(world.mountRoot, 'REC1', clips);
    const recorderContent = await listing(volume);

    // Unplug while copies are under way (several small recordings are copied at once): the daemon is frozen the
    // moment tmp/ holds a whole copy waiting for its batch and another still being written; the volume leaves the
    // mount root, and the daemon carries on: the whole ones are stored, the unfinished ones are discarded.
    const sizes = new Set(files.map((f) => f.size));
    await waitFor(
      'a whole copy and one under way in tmp/',
      async () => {
        const now = await copiesInTmp(tmpDir, sizes);
        return now.whole.length && now.partial.length;
      },
      60_000,
      2,
    );
    d.proc!.kill('SIGSTOP');
    const unplugged = path.join(station.dir, 'unplugged-REC1');
    let atFreeze: { whole: string[]; partial: string[] };
    try {
      // The precondition of this test, read while frozen: a copy still in progress (and the count of whole ones).
      atFreeze = await copiesInTmp(tmpDir, sizes);
      expect(atFreeze.partial.length).toBeGreaterThan(0);
      await fs.rename(volume, unplugged);
    } finally {
      d.proc!.kill('SIGCONT');
    }

    await d.waitForLog((l) => l.msg === 'recorder undocked' && l.volume === volume, 'the undock to be noticed');
    const ended = await d.waitForLog(
      (l) => l.msg === 'recorder ingest finished' && l.volume === volume,
      'the interrupted session to wind down',
    );
    // Whether a read failed first or the undock was seen first, the session ends as an unplug (not a stop of dockd).
    expect(ended.state).toBe('unplugged');
    const undockedEvent = await waitFor(
      'a recorder.undocked event',
      () => sub.messages.map((m) => JSON.parse(m.payload)).find((e) => e.type === 'recorder.undocked'),
      10_000,
    );
    expect(undockedEvent).toMatchObject({ volume, complete: false, deviceSerial: '1234567' });

    // The daemon is alive and answers.
    expect(d.proc!.exitCode).toBeNull();
    const status = await waitFor(
      'status to show the unplug alarm and no copy in progress',
      async () => {
        const s = await dockctlJson<Status>(world.configFile, ['status']);
        return s.alarms.some((a) => a.code === 'RECORDER_UNPLUGGED') && !s.recorders.some((r) => r.state === 'copying')
          ? s
          : null;
      },
      15_000,
    );
    expect(status.daemon).toBe('running');
    expect(status.alarms.find((a) => a.code === 'RECORDER_UNPLUGGED')!.message).toMatch(/removed before all files were stored/);
    // The recorder is gone from the station's list (or, briefly, shown unplugged).
    expect(status.recorders.filter((r) => r.volume === volume).every((r) => r.state === 'unplugged')).toBe(true);

    // No half-copied file anywhere: no `copying` rows, no temp files, every object is exactly its name's content.
    const rows = await dockctlJson<CatalogFile[]>(world.configFile, ['files']);
    expect(rows.filter((f) => f.state === 'copying')).toEqual([]);
    // Every copy that was whole at the unplug is kept (a copy ends well once its last byte is written).
    expect(rows.length).toBeGreaterThanOrEqual(Math.max(1, atFreeze.whole.length));
    expect(rows.length).toBeLessThan(files.length);
    expect(await fs.readdir(tmpDir)).toEqual([]);
    const objects = await storedObjects(world.storeDir);
    for (const o of objects) expect(o.sha256).toBe(o.name);
    expect(objects.map((o) => o.name).sort()).toEqual(rows.map((f) => f.sha256).sort());
    const sources = new Set(files.map((f) => f.sha256));
    expect(objects.every((o) => sources.has(o.name))).toBe(true);
    // The recorder itself was only read: every file still there, unchanged.
    expect(await listing(unplugged)).toEqual(recorderContent);

    // Dock the same recorder again: the rest is taken, and every recording reaches HQ exactly once, intact.
    await fs.rename(unplugged, volume);
    await waitFor('HQ to receive every recording', () => station.tus.finished.length >= files.length, 90_000);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(files.map((f) => f.sha256).sort());
    for (const u of station.tus.finished) expect(u.size).toBe(files.find((f) => f.sha256 === u.sha256)!.size);
    expect(station.tus.refused).toEqual([]);

    const final = await waitFor(
      'the catalog to show every recording uploaded once and the alarm cleared',
      async () => {
        const s = await dockctlJson<Status>(world.configFile, ['status']);
        return s.queue.uploaded === files.length && !s.alarms.some((a) => a.code === 'RECORDER_UNPLUGGED') ? s : null;
      },
      30_000,
    );
    expect(final.recorders.find((r) => r.volume === volume)?.safeToUndock).toBe(true);
    const after = await dockctlJson<CatalogFile[]>(world.configFile, ['files']);
    expect(after.map((f) => f.sha256).sort()).toEqual(files.map((f) => f.sha256).sort());
    // The re-dock recognised what was already stored (hashed again, not copied again) and copied only the rest.
    const redock = d.logs.filter((l) => l.msg === 'recorder ingest finished' && l.volume === volume).at(-1)!;
    expect(redock).toMatchObject({ state: 'done', alreadyStored: rows.length, copied: files.length - rows.length });
    const verify = await runDockctl(world.configFile, ['verify']);
    expect(verify.code).toBe(0);
    expect(d.proc!.exitCode).toBeNull();
  });
});
