import type { Catalog, CopyToFinish } from './catalog.ts';
import { fsyncDir, ObjectStoreError, type ObjectStore } from './objects.ts';

/** A recording copied into a temp file of the store and hashed, its data not yet known to be on disk. */
export interface StagedCopy extends CopyToFinish {
  tempPath: string;
  /** The temp file, still open and mode 0444 already (CopyOptions.deferSync): its fdatasync is the batch's. */
  file: { datasync(): Promise<void>; close(): Promise<void> };
  size: number;
}

export interface Committed {
  fileId: number;
  duplicate: boolean;
}

interface Waiting {
  copy: StagedCopy;
  resolve: (c: Committed) => void;
  reject: (e: Error) => void;
  /** Step 1 for this copy, begun when it was staged: whether its data is on disk (else it was rejected). */
  synced: Promise<boolean>;
}

/** A batch is written once it holds this many files or bytes, or when a recorder has nothing more to copy (flush). */
export const BATCH_FILES = 64;
export const BATCH_BYTES = 64 << 20;

/**
 * Group commit for copies into the store. A copy is `stored` only once its bytes and its name are durable and its
 * hash is in the catalog; doing that per file (fdatasync, rename, directory fsync, a catalog commit) costs more than
 * copying a small clip. Copies that finish together are committed as one batch, in this order:
 * 1. every temp file fdatasynced: each one's begins when it is staged, while the batch fills, so that the batch waits
 *    only for the last ones (the fdatasyncs under way share a journal commit: bin/dockd.js gives libuv's pool 64
 *    threads; with 4, a journalled ext4 committed 4 at a time, and the renames of step 2 waited behind them);
 * 2. each renamed to its content address (an object's name is only ever given to bytes already on disk, so after a
 *    crash at any instant any object file is whole: a later copy of that content may keep it);
 * 3. every directory touched (and those created) fsynced once;
 * 4. one catalog transaction marks the whole batch stored.
 * Only then are the copies' promises resolved. Copies arriving meanwhile form the next batch, which starts its step 1
 * once this one is past it: its data goes to disk while this one is renamed, synced and catalogued (steps 2–4 of one
 * batch after another's, in order). Before, a batch waited for the whole of the one before; at the end of a dock the
 * last copies then waited ≈ 0.1 s for a batch they had no part in. A flushed batch (a recorder has nothing more to
 * copy) starts its step 1 at once, beside any batch still syncing.
 */
export class GroupCommit {
  private pending: Waiting[] = [];
  private pendingBytes = 0;
  private flushWanted = false;
  /** Batches in step 1 (their data synced): the next batch starts once none is, unless it is flushed. */
  private syncing = 0;
  /** Batches past step 1 and not yet done: at most one waits while another is in steps 2–4 (more, when flushed). */
  private placing = 0;
  /** Steps 2–4 of the batches, one after the other in the order they were formed. */
  private placed: Promise<void> = Promise.resolve();

  constructor(
    private readonly objects: ObjectStore,
    private readonly catalog: Pick<Catalog, 'finishCopies'>,
    private readonly limits = { files: BATCH_FILES, bytes: BATCH_BYTES },
  ) {}

  /** Resolves once `copy` is durable and catalogued (or rejects: its temp file is then the caller's to remove). */
  commit(copy: StagedCopy): Promise<Committed> {
    return new Promise<Committed>((resolve, reject) => {
      this.pending.push({ copy, resolve, reject, synced: this.syncOne(copy, reject) });
      this.pendingBytes += copy.size;
      this.kick();
    });
  }

  /** Commits what is pending without waiting for a full batch (a recorder's copy queue is empty, or it waits). */
  flush(): void {
    if (!this.pending.length) return;
    this.flushWanted = true;
    this.kick();
  }

  private kick(): void {
    if (!this.pending.length) return;
    // A flushed batch starts at once: nothing more is coming for it to wait for (at the end of a dock, the last
    // copies are what the officer waits for). Else a batch waits for the one syncing and fills meanwhile.
    if (!this.flushWanted) {
      if (this.syncing || this.placing > 1) return;
      if (this.pending.length < this.limits.files && this.pendingBytes < this.limits.bytes) return;
    }
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushWanted = false;
    this.syncing++;
    const synced = this.sync(batch).finally(() => {
      this.syncing--;
      this.placing++;
      this.kick();
    });
    this.placed = Promise.all([synced, this.placed.catch(() => {})])
      .then(([ok]) => this.place(batch, ok))
      // place() settles each copy itself; should it throw, none of them is left waiting (a settled one ignores this)
      .catch((e: Error) => {
        for (const w of batch) w.reject(e);
      })
      .finally(() => {
        this.placing--;
        this.kick();
      });
  }

  /** Step 1 for one copy: its data on disk, and its temp file closed; false (and the copy rejected) when it failed. */
  private async syncOne(copy: StagedCopy, reject: (e: Error) => void): Promise<boolean> {
    try {
      await copy.file.datasync();
      return true;
    } catch (e) {
      reject(new ObjectStoreError('OBJECT_IO', `syncing ${copy.tempPath}: ${(e as Error).message}`, { cause: e }));
      return false;
    } finally {
      await copy.file.close().catch(() => {});
    }
  }

  /** Step 1: every copy's data on disk; which of them were. */
  private sync(batch: Waiting[]): Promise<boolean[]> {
    return Promise.all(batch.map((w) => w.synced));
  }

  /** Steps 2–4 for the copies whose data is on disk (`synced`). */
  private async place(batch: Waiting[], synced: boolean[]): Promise<void> {
    const placed: Waiting[] = [];
    const dirs = new Set<string>();
    // Copies of different content are placed side by side (each a few file-system round trips); two copies of the
    // same content in a batch meet at one name, so they go one after the other and the second keeps the first.
    const byContent = new Map<string, Waiting[]>();
    for (const [i, w] of batch.entries()) {
      if (!synced[i]) continue;
      const same = byContent.get(w.copy.sha256);
      if (same) same.push(w);
      else byContent.set(w.copy.sha256, [w]);
    }
    await Promise.all(
      [...byContent.values()].map(async (same) => {
        for (const w of same) {
          try {
            for (const d of await this.objects.place(w.copy.tempPath, w.copy.sha256, w.copy.size, { readOnly: true }))
              dirs.add(d);
            placed.push(w);
          } catch (e) {
            w.reject(e as Error);
          }
        }
      }),
    );
    // The catalog gets the batch in the order its copies reached it, whatever order they were placed in.
    placed.sort((a, b) => batch.indexOf(a) - batch.indexOf(b));
    if (!placed.length) return;
    try {
      await Promise.all([...dirs].map(fsyncDir));
    } catch (e) {
      for (const w of placed)
        w.reject(new ObjectStoreError('OBJECT_IO', `syncing the store: ${(e as Error).message}`, { cause: e }));
      return;
    }
    let results: Committed[];
    try {
      results = this.catalog.finishCopies(placed.map((w) => w.copy));
    } catch (e) {
      for (const w of placed) w.reject(e as Error);
      return;
    }
    for (const [i, w] of placed.entries()) w.resolve(results[i]);
  }
}
