import { watch } from 'node:fs';
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

/** Resolves with the name of the `n`th `.part` file created in `dir` (the `n`th copy has begun, the ones before it are stored). */
function nthTempFile(dir: string, n: number): { created: Promise<string>; close: () => void } {
  let close = () => {};
  const seen = new Set<string>();
  const created = new Promise<string>((resolve) => {
    const w = watch(dir, (_event, name) => {
      if (!name || !String(name).endsWith('.part')) return;
      seen.add(String(name));
      if (seen.size === n) {
        w.close();
        resolve(String(name));
      }
    });
    close = () => w.close();
  });
  return { created, close };
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
    const watcher = nthTempFile(tmpDir, 3);
    station.onCleanup(watcher.close);
    const { volume, files } = await dockRecordings(world.mountRoot, 'REC1', clips);
    const recorderContent = await listing(volume);

    // Unplug while a copy is under way: the daemon is frozen the moment the third copy begins (two recordings are
    // copied by then, waiting in tmp/ for their batch to be stored, three are not), the volume leaves the mount root,
    // and the daemon carries on: the two are stored, the third is discarded.
    const partial = await watcher.created;
    d.proc!.kill('SIGSTOP');
    const unplugged = path.join(station.dir, 'unplugged-REC1');
    try {
      // The precondition of this test: frozen with that copy still in progress.
      expect(await fs.readdir(tmpDir)).toContain(partial);
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
    expect(rows.length).toBeGreaterThanOrEqual(2);
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
