import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyAndHash } from '../../daemon/recorder/copyAndHash.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { GroupCommit, type StagedCopy } from '../../daemon/store/groupCommit.ts';
import { ObjectStore } from '../../daemon/store/objects.ts';

describe('GroupCommit (real files, real SQLite)', () => {
  let dir: string;
  let storeDir: string;
  let store: ObjectStore;
  let catalog: Catalog;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-group-'));
    storeDir = path.join(dir, 'store');
    store = new ObjectStore(storeDir);
    await store.init();
    catalog = Catalog.open(storeDir);
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A recording on the "recorder", copied and hashed into a temp file of the store, its row `copying`: not yet committed. */
  async function stage(name: string, bytes: Buffer): Promise<StagedCopy & { fileId: number }> {
    const src = path.join(dir, name);
    await fs.writeFile(src, bytes);
    const fileId = catalog.beginCopyUnsynced({ size: bytes.length, kind: 'video', filename: name, source_path: name });
    const tempPath = store.tempPath();
    const r = await copyAndHash(src, tempPath, { deferSync: true });
    expect(r.unsynced).toBeDefined();
    return {
      tempPath,
      file: r.unsynced!,
      size: r.size,
      fileId,
      sha256: r.sha256,
      sighting: { sessionId: null, deviceSerial: null, sourcePath: name, size: r.size, mtimeMs: r.mtimeMs },
      digests: {},
    };
  }

  /** Counts `staged`'s syncs and sees it closed; `datasync` stands in for the real one (a failing disk). */
  function watchFile(staged: StagedCopy, datasync?: () => Promise<void>): { syncs: number; closed: boolean } {
    const file = staged.file;
    const seen = { syncs: 0, closed: false };
    staged.file = {
      datasync: () => {
        seen.syncs++;
        return datasync ? datasync() : file.datasync();
      },
      close: async () => {
        seen.closed = true;
        await file.close();
      },
    };
    return seen;
  }

  /** What the controller does at start after a crash: a fresh catalog connection, interrupted copies and temp files gone. */
  async function restart(): Promise<{ rows: number; tempFiles: number }> {
    catalog.close();
    catalog = Catalog.open(storeDir);
    const found = { rows: catalog.recoverInterruptedCopies(), tempFiles: await store.sweepTemp() };
    await store.syncFilesystem();
    return found;
  }

  it('stores a batch at once: objects read-only at their address, rows stored, a second copy of one content a duplicate', async () => {
    const a = randomBytes(300_000);
    const b = randomBytes(700_000);
    const commits = new GroupCommit(store, catalog, { files: 3, bytes: 1 << 30 });
    const staged = [await stage('a.mp4', a), await stage('b.mp4', b), await stage('a-again.mp4', a)];
    const results = await Promise.all(staged.map((s) => commits.commit(s)));
    expect(results.map((r) => r.duplicate)).toEqual([false, false, true]);
    expect(results[2].fileId).toBe(results[0].fileId);
    for (const [i, bytes] of [a, b].entries()) {
      const f = catalog.get(results[i].fileId)!;
      expect(f.state).toBe('stored');
      const object = store.pathOf(f.sha256!);
      expect((await fs.stat(object)).mode & 0o777).toBe(0o444);
      expect((await fs.readFile(object)).equals(bytes)).toBe(true);
    }
    expect(catalog.get(staged[2].fileId)).toBeUndefined();
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
  });

  it('holds copies until the batch is full, or until it is flushed (the last copy of a recorder goes at once)', async () => {
    const commits = new GroupCommit(store, catalog, { files: 3, bytes: 1 << 30 });
    const first = await stage('one.mp4', randomBytes(1000));
    let settled = false;
    const done = commits.commit(first).finally(() => {
      settled = true;
    });
    // Real IO meanwhile (another copy staged, never committed): the lone copy is not committed on its own.
    await (await stage('unrelated.mp4', randomBytes(1000))).file.close();
    expect(settled).toBe(false);
    expect(catalog.get(first.fileId)!.state).toBe('copying');
    commits.flush();
    expect((await done).duplicate).toBe(false);
    expect(catalog.get(first.fileId)!.state).toBe('stored');
  });

  it('the next batch syncs its data while the one before is placed and catalogued; batches reach the catalog in order', async () => {
    const order: string[] = [];
    const commits = new GroupCommit(
      store,
      {
        finishCopies: (copies) => {
          order.push(`catalogued ${copies.map((c) => c.sighting.sourcePath).join(',')}`);
          return catalog.finishCopies(copies);
        },
      },
      { files: 1, bytes: 1 << 30 },
    );
    const traced = async (name: string) => {
      const staged = await stage(name, randomBytes(200_000));
      const file = staged.file;
      staged.file = {
        datasync: () => {
          order.push(`sync ${name}`);
          return file.datasync();
        },
        close: () => file.close(),
      };
      return staged;
    };
    const [a, b, c] = [await traced('a.mp4'), await traced('b.mp4'), await traced('c.mp4')];
    const results = await Promise.all([a, b, c].map((s) => commits.commit(s)));
    // b and c, which came while a's data was synced, form the next batch: their data goes to disk before a is
    // catalogued (before, only after a's batch was done), and a still reaches the catalog first.
    expect(order).toEqual(['sync a.mp4', 'sync b.mp4', 'sync c.mp4', 'catalogued a.mp4', 'catalogued b.mp4,c.mp4']);
    expect(results.map((r) => catalog.get(r.fileId)!.state)).toEqual(['stored', 'stored', 'stored']);
  });

  it("a copy's data starts for the disk when it is staged, while its batch is still filling", async () => {
    const commits = new GroupCommit(store, catalog, { files: 3, bytes: 1 << 30 });
    const staged = await stage('early.mp4', randomBytes(50_000));
    const seen = watchFile(staged);
    let settled = false;
    const done = commits.commit(staged).finally(() => {
      settled = true;
    });
    // At once, not when the batch is formed: at the end of a dock only the last copies' data is left to write.
    expect(seen.syncs).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.closed).toBe(true);
    expect(settled).toBe(false);
    expect(catalog.get(staged.fileId)!.state).toBe('copying');
    commits.flush();
    expect((await done).duplicate).toBe(false);
    expect(seen.syncs).toBe(1);
    expect(catalog.get(staged.fileId)!.state).toBe('stored');
  });

  it('a copy whose data cannot be synced fails alone, its temp file closed and left to the caller; the rest of its batch is stored', async () => {
    const good = await stage('good.mp4', randomBytes(10_000));
    const bad = await stage('bad.mp4', randomBytes(20_000));
    const seen = watchFile(bad, async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    });
    const commits = new GroupCommit(store, catalog, { files: 2, bytes: 1 << 30 });
    const [g, b] = await Promise.allSettled([commits.commit(good), commits.commit(bad)]);
    expect(g.status).toBe('fulfilled');
    expect(catalog.get(good.fileId)!.state).toBe('stored');
    expect(b.status).toBe('rejected');
    expect((b as PromiseRejectedResult).reason).toMatchObject({ code: 'OBJECT_IO' });
    expect(seen.closed).toBe(true);
    expect(catalog.get(bad.fileId)!.state).toBe('copying');
    expect(await store.exists(bad.sha256)).toBe(false);
    expect(await fs.readdir(store.tmpDir)).toEqual([path.basename(bad.tempPath)]);
  });

  it('a crash before the batch commits leaves nothing taken as stored; the recording is copied again and stored', async () => {
    const bytes = randomBytes(2_000_000);
    const staged = [await stage('clip.mp4', bytes), await stage('photo.jpg', randomBytes(50_000))];
    // The process dies: its temp files are never synced nor renamed, their rows stay `copying`.
    for (const s of staged) await s.file.close();
    expect(await restart()).toEqual({ rows: 2, tempFiles: 2 });
    for (const s of staged) {
      expect(catalog.get(s.fileId)).toBeUndefined();
      expect(await store.exists(s.sha256)).toBe(false);
    }
    expect(catalog.findKnownSource(staged[0].sighting)).toBeUndefined();

    // The next dock: copied again, this time committed.
    const again = await stage('clip.mp4', bytes);
    const commits = new GroupCommit(store, catalog);
    const pending = commits.commit(again);
    commits.flush();
    const r = await pending;
    expect(r.duplicate).toBe(false);
    expect(catalog.get(r.fileId)!.state).toBe('stored');
    expect(await store.rehash(again.sha256)).toEqual({ sha256: again.sha256, size: bytes.length });
  });

  it('a copy without a copying row (a small recording) is catalogued by its batch; a crash before leaves only its temp file', async () => {
    const rowless = async (name: string, bytes: Buffer): Promise<StagedCopy> => {
      const { fileId, ...staged } = await stage(name, bytes);
      catalog.abortCopy(fileId);
      const begun = { size: bytes.length, kind: 'photo', filename: name, source_path: name, at: '2026-12-02T01:00:00.000Z' };
      return { ...staged, fileId: null, begun };
    };
    const lost = await rowless('lost.jpg', randomBytes(30_000));
    await lost.file.close();
    expect(await restart()).toEqual({ rows: 0, tempFiles: 1 });

    const bytes = randomBytes(40_000);
    const commits = new GroupCommit(store, catalog);
    const pending = commits.commit(await rowless('kept.jpg', bytes));
    commits.flush();
    const r = await pending;
    expect(r.duplicate).toBe(false);
    expect(catalog.get(r.fileId)).toMatchObject({
      state: 'stored',
      filename: 'kept.jpg',
      created_at: '2026-12-02T01:00:00.000Z',
    });
    expect(catalog.historyOf(r.fileId).map((h) => h.to_state)).toEqual(['copying', 'stored']);
    expect(await store.rehash(catalog.get(r.fileId)!.sha256!)).toEqual({
      sha256: catalog.get(r.fileId)!.sha256,
      size: bytes.length,
    });
  });

  it('a crash after the renames but before the catalog: the object is whole, the row is discarded, the next copy keeps it', async () => {
    const bytes = randomBytes(1_500_000);
    const staged = await stage('clip.mp4', bytes);
    // The catalog transaction never happens (the process dies just before it).
    const dying = new GroupCommit(store, {
      finishCopies: () => {
        throw new Error('killed before the catalog commit');
      },
    });
    const pending = dying.commit(staged);
    dying.flush();
    await expect(pending).rejects.toThrow('killed before the catalog commit');
    const object = store.pathOf(staged.sha256);
    const inode = (await fs.stat(object)).ino;
    expect(catalog.get(staged.fileId)!.state).toBe('copying');

    expect(await restart()).toEqual({ rows: 1, tempFiles: 0 });
    expect(catalog.get(staged.fileId)).toBeUndefined();
    // Named only after its bytes were synced: the object left behind is whole, so a later copy of it may keep it.
    expect(await store.rehash(staged.sha256)).toEqual({ sha256: staged.sha256, size: bytes.length });

    const again = await stage('clip.mp4', bytes);
    const commits = new GroupCommit(store, catalog);
    const next = commits.commit(again);
    commits.flush();
    const r = await next;
    expect(r.duplicate).toBe(false);
    expect(catalog.get(r.fileId)!.state).toBe('stored');
    expect((await fs.stat(object)).ino).toBe(inode);
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
  });

  it('a copy that cannot be placed fails alone; the rest of its batch is stored', async () => {
    const good = await stage('good.mp4', randomBytes(10_000));
    const bad = await stage('bad.mp4', randomBytes(20_000));
    // An object of another size already holds the bad copy's address: OBJECT_CONFLICT for that copy only.
    await fs.mkdir(path.dirname(store.pathOf(bad.sha256)), { recursive: true });
    await fs.writeFile(store.pathOf(bad.sha256), 'not the same size');
    const commits = new GroupCommit(store, catalog, { files: 2, bytes: 1 << 30 });
    const [g, b] = await Promise.allSettled([commits.commit(good), commits.commit(bad)]);
    expect(g.status).toBe('fulfilled');
    expect(catalog.get(good.fileId)!.state).toBe('stored');
    expect(b.status).toBe('rejected');
    expect((b as PromiseRejectedResult).reason).toMatchObject({ code: 'OBJECT_CONFLICT' });
    expect(catalog.get(bad.fileId)!.state).toBe('copying');
  });
});
