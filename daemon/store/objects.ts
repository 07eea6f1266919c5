import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CodedError } from '../../drivers/errors.ts';

const run = promisify(execFile);

export class ObjectStoreError extends CodedError<'OBJECT_CONFLICT' | 'OBJECT_MISSING' | 'OBJECT_IO'> {}

/** Write-once, content-addressed objects: <dir>/objects/sha256/ab/cd/<hash>, mode 0444. */
export class ObjectStore {
  readonly objectsDir: string;
  readonly tmpDir: string;
  /** Temp names: random per store opened, then counted (a random draw per file cost more than the name is worth). */
  private readonly tempPrefix = randomBytes(8).toString('hex');
  private tempCount = 0;

  constructor(readonly dir: string) {
    this.objectsDir = path.join(dir, 'objects', 'sha256');
    this.tmpDir = path.join(dir, 'tmp');
  }

  async init(): Promise<void> {
    await fs.mkdir(this.objectsDir, { recursive: true });
    await fs.mkdir(this.tmpDir, { recursive: true });
  }

  pathOf(sha256: string): string {
    return path.join(this.objectsDir, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /** A fresh temp path inside the store (same filesystem, so the final rename is atomic). */
  tempPath(): string {
    return path.join(this.tmpDir, `${this.tempPrefix}-${++this.tempCount}.part`);
  }

  /** Removes temp files left by a crash; returns how many. */
  async sweepTemp(): Promise<number> {
    const names = await fs.readdir(this.tmpDir).catch(() => [] as string[]);
    await Promise.all(names.map((n) => fs.rm(path.join(this.tmpDir, n), { force: true })));
    return names.length;
  }

  /**
   * After a crash: makes what the stopped process left in the page cache durable (syncfs of the store's filesystem),
   * so that a name it gave an object, its directory not yet fsynced, is on disk before a new copy counts on it.
   */
  async syncFilesystem(): Promise<void> {
    await run('sync', ['-f', this.objectsDir]);
  }

  async exists(sha256: string): Promise<boolean> {
    return fs.access(this.pathOf(sha256), constants.F_OK).then(
      () => true,
      () => false,
    );
  }

  /**
   * Moves a fully written, fsynced temp file to its content address, durably (see `place`).
   */
  async commit(tempPath: string, sha256: string, size: number): Promise<string> {
    await Promise.all((await this.place(tempPath, sha256, size)).map(fsyncDir));
    return this.pathOf(sha256);
  }

  /**
   * Moves a fully written, fdatasynced temp file to its content address, and returns the directories to fsync before
   * the object may be called stored: its own and those above it, up to the objects directory. When the object is already there (the same
   * content seen before, or a crash before the catalog row) the existing object is kept, checked by size, and the temp
   * file dropped; its directory is still returned, as its name may not be durable yet. `readOnly`: the temp file's mode
   * is 0444 already (a copy's deferred target), so no chmod.
   */
  async place(tempPath: string, sha256: string, size: number, opts: { readOnly?: boolean } = {}): Promise<string[]> {
    const target = this.pathOf(sha256);
    const parent = path.dirname(target);
    await fs.mkdir(parent, { recursive: true });
    // The whole chain up to the objects directory, whoever created it: a placement that created a directory and then
    // failed must not leave that directory's own name unsynced for the others placed in it (batches place side by side).
    const dirs = [parent, path.dirname(parent), this.objectsDir];
    const existing = await fs.stat(target).catch(() => null);
    if (existing) {
      await fs.rm(tempPath, { force: true });
      if (existing.size !== size)
        throw new ObjectStoreError('OBJECT_CONFLICT', `object ${sha256} exists with size ${existing.size}, expected ${size}`);
      return dirs;
    }
    if (!opts.readOnly) await fs.chmod(tempPath, 0o444);
    await fs.rename(tempPath, target);
    return dirs;
  }

  /** Re-hashes a stored object. */
  async rehash(sha256: string): Promise<{ sha256: string; size: number }> {
    const p = this.pathOf(sha256);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ObjectStoreError('OBJECT_MISSING', `object ${sha256} is missing`);
      throw e;
    }
    return { sha256: hash.digest('hex'), size };
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
