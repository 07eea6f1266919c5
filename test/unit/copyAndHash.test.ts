import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, constants, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chunkFor, CopyError, copyAndHash, type CopyOptions } from '../../daemon/recorder/copyAndHash.ts';
import { CopyWorkers, copyWorkers } from '../../daemon/recorder/copyWorkers.ts';
import { alignedBuffers, createTarget, DIRECT_FROM } from '../../daemon/recorder/directTarget.ts';
import { DIGEST_THREAD_SOURCE, DigestWorkers } from '../../daemon/recorder/digestWorkers.ts';
import { PACKAGE_ROOT } from '../../daemon/packageRoot.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { mountRamfs, mountTmpfs, unmount } from '../helpers/mounts.ts';

const run = promisify(execFile);
const MiB = 1 << 20;

async function sha256sum(file: string): Promise<string> {
  const { stdout } = await run('sha256sum', ['-b', file]);
  return stdout.split(' ')[0];
}

async function copyError(p: Promise<unknown>): Promise<CopyError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CopyError) return e;
    throw e;
  }
  throw new Error('expected a CopyError, the copy succeeded');
}

const IMPLS = [
  { name: 'on the event loop', copy: copyAndHash, progressStep: 4 * MiB },
  {
    name: 'on a copy thread',
    copy: (...a: Parameters<typeof copyAndHash>) => copyWorkers.copyAndHash(...a),
    progressStep: 8 * MiB,
  },
];

describe.each(IMPLS)('copyAndHash $name', ({ name, copy, progressStep }) => {
  let dir: string;
  const fifos: string[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-copy-'));
  });

  afterEach(async () => {
    // Should a regression block in open() on a fifo, a writer lets that open return so the worker can exit.
    for (const f of fifos.splice(0)) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader waiting: fine */
      }
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function source(name: string, bytes: Buffer): Promise<string> {
    const p = path.join(dir, name);
    await fs.writeFile(p, bytes);
    return p;
  }

  it.each([
    ['empty', 0],
    ['1 byte', 1],
    ['exactly one 4 MiB chunk', 4 * MiB],
    ['one chunk and one byte', 4 * MiB + 1],
    ['about 13 MiB', 13 * MiB + 12345],
  ])('copies %s byte-for-byte and hashes exactly those bytes', async (_what, size) => {
    const bytes = randomBytes(size);
    const src = await source('src.bin', bytes);
    const dst = path.join(dir, 'dst.bin');
    const progress: number[] = [];
    const r = await copy(src, dst, { onBytes: (n) => progress.push(n) });

    const copied = await fs.readFile(dst);
    expect(copied.length).toBe(size);
    expect(copied.equals(bytes)).toBe(true);
    const expected = createHash('sha256').update(bytes).digest('hex');
    expect(r.sha256).toBe(expected);
    expect(await sha256sum(src)).toBe(expected);
    expect(r.size).toBe(size);
    expect(r.mtimeMs).toBe(Math.trunc((await fs.stat(src)).mtimeMs));
    // Progress: cumulative, increasing by at most one step (a 4 MiB chunk on the event loop), ending at the size.
    if (size === 0) expect(progress).toEqual([]);
    else expect(progress[progress.length - 1]).toBe(size);
    progress.forEach((n, i) => {
      const prev = i ? progress[i - 1] : 0;
      expect(n).toBeGreaterThan(prev);
      expect(n - prev).toBeLessThanOrEqual(progressStep);
    });
    if (progressStep === 4 * MiB) expect(progress.length).toBe(Math.ceil(size / (4 * MiB)));
    // The copy is private to the station until the store makes it read-only.
    expect((await fs.stat(dst)).mode & 0o777).toBe(0o600);
    // The source is untouched.
    expect((await fs.readFile(src)).equals(bytes)).toBe(true);
  });

  it('copies a file larger than the early-writeback interval (64 MiB) exactly, with SM3 in the same pass', async () => {
    const bytes = randomBytes(68 * MiB + 3);
    const src = await source('big.bin', bytes);
    const dst = path.join(dir, 'big.copy');
    const r = await copy(src, dst, { extraDigests: ['sm3'] });
    expect(r.sha256).toBe(await sha256sum(src));
    expect(r.digests).toEqual({ sm3: createHash('sm3').update(bytes).digest('hex') });
    expect((await fs.readFile(dst)).equals(bytes)).toBe(true);
  });

  it('copies a real recording (ffmpeg-made mp4) with the hash sha256sum gives', async () => {
    const clip = await sampleMedia('video', 2, 302);
    const dst = path.join(dir, 'clip.mp4');
    const r = await copy(clip, dst);
    expect(r.sha256).toBe(await sha256sum(clip));
    expect(r.size).toBe((await fs.stat(clip)).size);
    expect(await sha256sum(dst)).toBe(r.sha256);
    expect(r.digests).toEqual({});
  });

  it('only hashes when the target is null, writing nothing', async () => {
    const bytes = randomBytes(5 * MiB);
    const src = await source('src.bin', bytes);
    const before = await fs.readdir(dir);
    const r = await copy(src, null);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(r.size).toBe(bytes.length);
    expect(await fs.readdir(dir)).toEqual(before);
  });

  it('refuses an existing target with TARGET_IO and never overwrites it', async () => {
    const src = await source('src.bin', randomBytes(1000));
    const dst = await source('dst.bin', Buffer.from('an object that was already here'));
    const e = await copyError(copy(src, dst));
    expect(e.code).toBe('TARGET_IO');
    expect(await fs.readFile(dst, 'utf8')).toBe('an object that was already here');
  });

  it('refuses an existing target even when it is a symlink (never writes through it)', async () => {
    const src = await source('src.bin', randomBytes(100));
    const victim = await source('victim.txt', Buffer.from('keep'));
    const dst = path.join(dir, 'dst.bin');
    await fs.symlink(victim, dst);
    const e = await copyError(copy(src, dst));
    expect(e.code).toBe('TARGET_IO');
    expect(await fs.readFile(victim, 'utf8')).toBe('keep');
  });

  it('reports TARGET_IO when the target directory does not exist', async () => {
    const src = await source('src.bin', randomBytes(10));
    const e = await copyError(copy(src, path.join(dir, 'no-such-dir', 'dst.bin')));
    expect(e.code).toBe('TARGET_IO');
  });

  it('fails with TARGET_IO naming ENOSPC when the target filesystem fills mid-copy, and leaves the source as it was', async () => {
    // 13 MiB onto a 6 MiB tmpfs: the disk fills in the third of the event loop's 4 MiB chunks, the copy thread's 7th MiB.
    const bytes = randomBytes(13 * MiB + 5);
    const src = await source('src.bin', bytes);
    const small = path.join(dir, 'small');
    await mountTmpfs(small, 6);
    try {
      const dst = path.join(small, 'dst.bin');
      const e = await copyError(copy(src, dst));
      expect(e.code).toBe('TARGET_IO');
      expect(e.message).toMatch(/ENOSPC|no space/i);
      expect((await fs.readFile(src)).equals(bytes)).toBe(true);
      // Nothing is still writing once the copy has failed: the partial target stays as it was left, for the caller.
      const { size } = await fs.stat(dst);
      expect(size).toBeLessThan(bytes.length);
      await new Promise((r) => setTimeout(r, 100));
      expect((await fs.stat(dst)).size).toBe(size);
    } finally {
      await unmount(small);
    }
  });

  it('refuses a source that is a symlink (O_NOFOLLOW) and creates no target', async () => {
    const real = await source('real.mp4', randomBytes(100));
    const link = path.join(dir, 'link.mp4');
    await fs.symlink(real, link);
    const dst = path.join(dir, 'dst.bin');
    const e = await copyError(copy(link, dst));
    expect(e.code).toBe('SOURCE_IO');
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ELOOP');
    await expect(fs.access(dst)).rejects.toMatchObject({ code: 'ENOENT' });
    const hashOnly = await copyError(copy(link, null));
    expect(hashOnly.code).toBe('SOURCE_IO');
  });

  it('reports SOURCE_GONE for a missing source and creates no target', async () => {
    const dst = path.join(dir, 'dst.bin');
    const e = await copyError(copy(path.join(dir, 'unplugged.mp4'), dst));
    expect(e.code).toBe('SOURCE_GONE');
    await expect(fs.access(dst)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a directory as SOURCE_NOT_REGULAR and creates no target', async () => {
    await fs.mkdir(path.join(dir, 'folder.mp4'));
    const dst = path.join(dir, 'dst.bin');
    const e = await copyError(copy(path.join(dir, 'folder.mp4'), dst));
    expect(e.code).toBe('SOURCE_NOT_REGULAR');
    await expect(fs.access(dst)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a fifo (swapped in after discovery) as SOURCE_NOT_REGULAR instead of blocking on it', async () => {
    const fifo = path.join(dir, 'pipe.mp4');
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    const dst = path.join(dir, 'dst.bin');
    const e = await copyError(copy(fifo, dst));
    expect(e.code).toBe('SOURCE_NOT_REGULAR');
    await expect(fs.access(dst)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports SOURCE_SHORT when the source delivers other than the bytes it lists (a /proc file lists 0)', async () => {
    const dst = path.join(dir, 'dst.bin');
    const e = await copyError(copy('/proc/self/status', dst));
    expect(e.code).toBe('SOURCE_SHORT');
  });

  it('copies a file whose name is not UTF-8, opened by its bytes', async () => {
    const bytes = randomBytes(3000);
    const name = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0xb2, 0xe2, 0xca, 0xd4]), Buffer.from('.mp4')]);
    writeFileSync(name, bytes);
    const r = await copy(name, path.join(dir, 'dst.bin'));
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect((await fs.readFile(path.join(dir, 'dst.bin'))).equals(bytes)).toBe(true);
  });

  it('leaves the target open, unsynced and read-only for the caller with deferSync, the bytes already in it', async () => {
    const bytes = randomBytes(2 * MiB + 7);
    const src = await source('src.bin', bytes);
    const dst = path.join(dir, 'dst.bin');
    const fdsBefore = (await fs.readdir('/proc/self/fd')).length;
    const r = await copy(src, dst, { deferSync: true });
    expect(r.unsynced).toBeDefined();
    // Mode 0444 as its object's will be (the store renames it without a chmod); a plain copy's target stays 0600.
    expect((await fs.stat(dst)).mode & 0o777).toBe(0o444);
    await copy(src, path.join(dir, 'plain.bin'));
    expect((await fs.stat(path.join(dir, 'plain.bin'))).mode & 0o777).toBe(0o600);
    expect((await fs.readdir('/proc/self/fd')).length).toBe(fdsBefore + 1);
    await r.unsynced!.datasync();
    await r.unsynced!.close();
    expect((await fs.readdir('/proc/self/fd')).length).toBe(fdsBefore);
    expect((await fs.readFile(dst)).equals(bytes)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  if (name === 'on the event loop') {
    // These change the source from the progress callback, which a copy thread calls only after the fact.
    it('reports SOURCE_CHANGED when the source grows during the copy', async () => {
      const bytes = randomBytes(9 * MiB);
      const src = await source('growing.mp4', bytes);
      let appended = false;
      const e = await copyError(
        copy(src, path.join(dir, 'dst.bin'), {
          onBytes: () => {
            if (!appended) {
              appended = true;
              appendFileSync(src, 'more');
            }
          },
        }),
      );
      expect(appended).toBe(true);
      expect(e.code).toBe('SOURCE_CHANGED');
    });

    it('reports SOURCE_CHANGED when the source shrinks during the copy', async () => {
      const src = await source('shrinking.mp4', randomBytes(9 * MiB));
      let cut = false;
      const e = await copyError(
        copy(src, null, {
          onBytes: () => {
            if (!cut) {
              cut = true;
              truncateSync(src, 5 * MiB);
            }
          },
        }),
      );
      expect(cut).toBe(true);
      expect(e.code).toBe('SOURCE_CHANGED');
    });

    it('reports SOURCE_CHANGED when the source is rewritten in place (same size, new mtime) during the copy', async () => {
      const bytes = randomBytes(9 * MiB);
      const src = await source('rewritten.mp4', bytes);
      await fs.utimes(src, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
      let touched = false;
      const e = await copyError(
        copy(src, path.join(dir, 'dst.bin'), {
          onBytes: () => {
            if (touched) return;
            touched = true;
            const fd = openSync(src, 'r+');
            try {
              writeSync(fd, Buffer.from([bytes[0] ^ 0xff]), 0, 1, 0);
            } finally {
              closeSync(fd);
            }
          },
        }),
      );
      expect(touched).toBe(true);
      expect(e.code).toBe('SOURCE_CHANGED');
      expect((await fs.stat(src)).size).toBe(bytes.length);
    });

    it('stops with SOURCE_IO when aborted, leaving the partial target for the caller', async () => {
      const bytes = randomBytes(12 * MiB);
      const src = await source('long.mp4', bytes);
      const dst = path.join(dir, 'dst.bin');
      const ac = new AbortController();
      const e = await copyError(copy(src, dst, { signal: ac.signal, onBytes: () => ac.abort() }));
      expect(e.code).toBe('SOURCE_IO');
      expect(e.message).toMatch(/interrupted/);
      const partial = await fs.readFile(dst);
      expect(partial.length).toBeLessThan(bytes.length);
      expect(partial.equals(bytes.subarray(0, partial.length))).toBe(true);
    });
  }
});

/** Bytes of `file` in the page cache now (util-linux's fincore). */
async function cachedBytes(file: string): Promise<number> {
  const { stdout } = await run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim());
}

/** Whether an open file descriptor of this process was opened O_DIRECT (its flags, octal, in /proc/self/fdinfo). */
async function isDirect(unsynced: unknown): Promise<boolean> {
  const { fd } = unsynced as { fd: number };
  const flags = /^flags:\s+([0-7]+)$/m.exec(await fs.readFile(`/proc/self/fdinfo/${fd}`, 'utf8'))![1];
  return (Number.parseInt(flags, 8) & constants.O_DIRECT) !== 0;
}

const TMPFS_MAGIC = 0x01021994;

describe('copyAndHash of a large recording, written around the page cache (O_DIRECT)', () => {
  let dir: string;

  beforeEach(async () => {
    // On a disk, not in the temp directory: a tmpfs (/tmp on some systems) keeps every file in the page cache.
    const onDisk = path.join(PACKAGE_ROOT, '.cache', 'test-direct');
    await fs.mkdir(onDisk, { recursive: true });
    dir = await fs.mkdtemp(path.join(onDisk, 'dockd-direct-'));
    if ((await fs.statfs(dir)).type === TMPFS_MAGIC)
      throw new Error(`${dir} is on a tmpfs, which keeps every file in the page cache: these tests need a disk`);
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Copies `bytes` (from a file in `dir`) to `dst` with deferSync; the target's bytes, whether it was direct, and the fds left. */
  async function copyDeferred(bytes: Buffer, dst: string, opts: CopyOptions = {}) {
    const src = path.join(dir, 'src.bin');
    await fs.writeFile(src, bytes);
    const fdsBefore = (await fs.readdir('/proc/self/fd')).length;
    const r = await copyAndHash(src, dst, { ...opts, deferSync: true });
    const direct = await isDirect(r.unsynced);
    // Only the target is left open: a second descriptor, for a tail shorter than a block, is closed with the copy.
    const fdsOpen = (await fs.readdir('/proc/self/fd')).length - fdsBefore;
    await r.unsynced!.datasync();
    await r.unsynced!.close();
    const cached = await cachedBytes(dst);
    return { r, direct, fdsOpen, cached, copied: await fs.readFile(dst), src };
  }

  it.each([
    ['exactly the threshold (whole blocks)', DIRECT_FROM],
    ['a tail shorter than a block', 40 * MiB + 4097],
    ['a last chunk of whole blocks and a tail', 45 * MiB + 8192 + 1],
  ])('writes %s direct, byte-for-byte, hashing exactly those bytes', async (_what, size) => {
    const bytes = randomBytes(size);
    const dst = path.join(dir, 'dst.bin');
    const { r, direct, fdsOpen, cached, copied, src } = await copyDeferred(bytes, dst);
    expect(direct).toBe(true);
    expect(fdsOpen).toBe(1);
    // Only the tail shorter than a block went through the page cache (one page at most), none of the rest.
    expect(cached).toBeLessThanOrEqual(size % 4096 ? 4096 : 0);
    expect(copied.equals(bytes)).toBe(true);
    expect(r.size).toBe(size);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(await sha256sum(dst)).toBe(r.sha256);
    expect((await fs.stat(dst)).mode & 0o777).toBe(0o444);
    expect((await fs.readFile(src)).equals(bytes)).toBe(true);
  });

  it('with 16 bays copying large recordings at once, each copy reads and writes direct in 1 MiB chunks, exactly', async () => {
    const size = 40 * MiB + 4097;
    const bytes = randomBytes(size);
    const progress: number[] = [];
    const { r, direct, copied } = await copyDeferred(bytes, path.join(dir, 'dst.bin'), {
      copiesAtOnce: 16,
      onBytes: (n) => progress.push(n),
    });
    expect(direct).toBe(true);
    expect(progress.length).toBe(Math.ceil(size / MiB));
    expect(progress.slice(0, 3)).toEqual([MiB, 2 * MiB, 3 * MiB]);
    expect(progress.at(-1)).toBe(size);
    expect(copied.equals(bytes)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('with SM3 too at 16 bays, half that (512 KiB: its thread holds chunks of its own), both digests exact', async () => {
    const size = 40 * MiB + 4097;
    const bytes = randomBytes(size);
    const progress: number[] = [];
    const { r, direct, copied, src } = await copyDeferred(bytes, path.join(dir, 'dst.bin'), {
      copiesAtOnce: 16,
      extraDigests: ['sm3'],
      onBytes: (n) => progress.push(n),
    });
    expect(direct).toBe(true);
    expect(progress.length).toBe(Math.ceil(size / (MiB / 2)));
    expect(progress[0]).toBe(MiB / 2);
    expect(copied.equals(bytes)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const { stdout } = await run('openssl', ['dgst', '-sm3', '-r', src]);
    expect(r.digests.sm3).toBe(stdout.split(' ')[0]);
  });

  it('the buffers of every large copy at once stay within 32 MiB together, in whole 64 KiB chunks of 256 KiB to 4 MiB', () => {
    expect(chunkFor(1)).toBe(4 * MiB);
    expect(chunkFor(2)).toBe(4 * MiB);
    expect(chunkFor(16)).toBe(MiB);
    for (let n = 1; n <= 64; n++) {
      expect(chunkFor(n) % (64 << 10)).toBe(0);
      expect(chunkFor(n)).toBeGreaterThanOrEqual(256 << 10);
      expect(2 * n * chunkFor(n)).toBeLessThanOrEqual(32 * MiB);
    }
  });

  it('writes a file just under the threshold through the cache, as before', async () => {
    const bytes = randomBytes(DIRECT_FROM - 1);
    const { r, direct, cached, copied } = await copyDeferred(bytes, path.join(dir, 'dst.bin'));
    expect(direct).toBe(false);
    expect(cached).toBeGreaterThan(DIRECT_FROM / 2);
    expect(copied.equals(bytes)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('with SM3 too: both digests of exactly the bytes written direct', async () => {
    const bytes = randomBytes(36 * MiB + 333);
    const { r, direct, copied } = await copyDeferred(bytes, path.join(dir, 'dst.bin'), { extraDigests: ['sm3'] });
    expect(direct).toBe(true);
    expect(copied.equals(bytes)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(r.digests).toEqual({ sm3: createHash('sm3').update(bytes).digest('hex') });
  });

  it('on a filesystem without direct writes (ramfs) writes through the cache instead, exactly, and leaves no other file', async () => {
    const bytes = randomBytes(40 * MiB + 5);
    const ram = path.join(dir, 'ram');
    await mountRamfs(ram);
    try {
      const dst = path.join(ram, 'dst.bin');
      const { r, direct, fdsOpen, copied } = await copyDeferred(bytes, dst);
      expect(direct).toBe(false);
      expect(fdsOpen).toBe(1);
      expect(copied.equals(bytes)).toBe(true);
      expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect((await fs.stat(dst)).mode & 0o777).toBe(0o444);
      expect(await fs.readdir(ram)).toEqual(['dst.bin']);
    } finally {
      await unmount(ram);
    }
  });

  it('a direct write the device refuses (EINVAL: here an offset off its blocks) goes through the cache, and so does the rest', async () => {
    const target = path.join(dir, 'w.bin');
    const writer = await createTarget(target, true);
    expect(writer.direct).toBe(true);
    const dst = writer.file;
    const [buf] = alignedBuffers(1 << 20)!;
    randomBytes(3 * 8192).copy(buf);
    try {
      await writer.write(buf.subarray(0, 8192), 0); // direct
      await writer.write(buf.subarray(8192, 16384), 8192 + 100); // refused direct: buffered, at its offset
      await writer.write(buf.subarray(16384, 24576), 16384 + 100); // buffered from now on
      await dst.datasync();
    } finally {
      await writer.close();
      await dst.close();
    }
    const want = Buffer.concat([buf.subarray(0, 8192), Buffer.alloc(100), buf.subarray(8192, 24576)]);
    expect((await fs.readFile(target)).equals(want)).toBe(true);
  });

  it('fails with TARGET_IO naming ENOSPC when the disk fills mid-copy, the source as it was', async () => {
    const bytes = randomBytes(40 * MiB + 5);
    const src = path.join(dir, 'src.bin');
    await fs.writeFile(src, bytes);
    const small = path.join(dir, 'small');
    await mountTmpfs(small, 20);
    try {
      const e = await copyError(copyAndHash(src, path.join(small, 'dst.bin')));
      expect(e.code).toBe('TARGET_IO');
      expect(e.message).toMatch(/ENOSPC|no space/i);
      expect((await fs.readFile(src)).equals(bytes)).toBe(true);
    } finally {
      await unmount(small);
    }
  });
});

describe('copy threads', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-copies-'));
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('an abort stops a copy waiting for a free thread: SOURCE_IO "copy interrupted", no target made', async () => {
    const one = new CopyWorkers(1);
    const big = path.join(dir, 'big');
    await fs.writeFile(big, randomBytes(20 * MiB));
    await fs.writeFile(path.join(dir, 'small'), randomBytes(1000));
    const first = one.copyAndHash(big, path.join(dir, 'big.copy'));
    const ac = new AbortController();
    // Queued behind the first: the only thread cannot take it before this turn of the event loop ends.
    const second = copyError(one.copyAndHash(path.join(dir, 'small'), path.join(dir, 'small.copy'), { signal: ac.signal }));
    ac.abort();
    const e = await second;
    expect(e.code).toBe('SOURCE_IO');
    expect(e.message).toMatch(/interrupted/);
    await expect(fs.access(path.join(dir, 'small.copy'))).rejects.toMatchObject({ code: 'ENOENT' });
    // The copy that was under way is not affected.
    expect((await first).size).toBe(20 * MiB);
    const after = await one.copyAndHash(path.join(dir, 'small'), path.join(dir, 'small.again'));
    expect(after.size).toBe(1000);
  });

  it('a thread that dies mid-copy: the files it held open are closed, and the copy is made again on the event loop', async () => {
    const one = new CopyWorkers(1);
    const big = path.join(dir, 'big');
    // Sparse: 1 GiB to read, so the copy is still under way when its thread is stopped.
    closeSync(openSync(big, 'w'));
    truncateSync(big, 1024 * MiB);
    const openOn = async (p: string) => {
      const fds = await fs.readdir('/proc/self/fd');
      const targets = await Promise.all(fds.map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((t) => t.startsWith(p));
    };
    let underWay!: () => void;
    const started = new Promise<void>((r) => {
      underWay = r;
    });
    const target = path.join(dir, 'big.copy');
    const progress: number[] = [];
    const onBytes = (n: number) => {
      progress.push(n);
      underWay();
    };
    const copying = one.copyAndHash(big, target, { onBytes, deferSync: true });
    await started;
    expect(await openOn(dir)).toHaveLength(2);
    const threads = (one as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads;
    await threads[0].worker.terminate();
    const copied = await copying;
    await copied.unsynced!.close();
    expect(copied.size).toBe(1024 * MiB);
    expect((await fs.stat(target)).size).toBe(1024 * MiB);
    expect(copied.sha256).toBe(await sha256sum(target));
    // Progress never went back, though the copy started again.
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(new Set(progress).size).toBe(progress.length);
    expect(progress.at(-1)).toBe(1024 * MiB);
    // Nothing is left open: neither what the dead thread held nor the copy made after it.
    expect(await openOn(dir)).toEqual([]);
    // A new thread takes the next copy.
    await fs.writeFile(path.join(dir, 'small'), 'x');
    expect((await one.copyAndHash(path.join(dir, 'small'), path.join(dir, 'small.copy'))).size).toBe(1);
  });

  it('threads that cannot start: every copy is still made, on the event loop; after three deaths threads rest (1 min, then 2), and the trouble is told', async () => {
    const starts = path.join(dir, 'starts');
    let now = 1_700_000_000_000;
    const broken = new CopyWorkers(
      1,
      `require('node:fs').appendFileSync(${JSON.stringify(starts)}, 'x'); throw new Error('broken on purpose');`,
      () => now,
    );
    const troubles: (string | null)[] = [];
    broken.onTrouble((t) => troubles.push(t));
    let deaths = 0;
    broken.onDeath(() => deaths++);
    const files = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const src = path.join(dir, `src${i}`);
        const bytes = randomBytes(1000 + i * 4096);
        await fs.writeFile(src, bytes);
        return { src, dst: path.join(dir, `dst${i}`), sha256: createHash('sha256').update(bytes).digest('hex') };
      }),
    );
    const copyAll = () =>
      Promise.all(files.map((f) => fs.rm(f.dst, { force: true }).then(() => broken.copyAndHash(f.src, f.dst))));
    const first = await copyAll();
    for (const [i, f] of files.entries()) {
      expect(first[i].sha256).toBe(f.sha256);
      expect(await sha256sum(f.dst)).toBe(f.sha256);
    }
    expect(await fs.readFile(starts, 'utf8')).toBe('xxx');
    expect(deaths).toBe(3);
    expect(troubles).toEqual([
      expect.stringMatching(/^3 copy threads in a row failed \(the last: copy thread failed: broken on purpose\).* after 1 min$/),
    ]);
    // While they rest, copies start no thread.
    now += 59_000;
    expect((await copyAll()).map((r) => r.sha256)).toEqual(files.map((f) => f.sha256));
    expect(await fs.readFile(starts, 'utf8')).toBe('xxx');
    // After the rest one thread is tried again; it dies too, and the next rest is twice as long.
    now += 2_000;
    expect((await copyAll()).map((r) => r.sha256)).toEqual(files.map((f) => f.sha256));
    expect(await fs.readFile(starts, 'utf8')).toBe('xxxx');
    expect(troubles).toHaveLength(2);
    expect(troubles[1]).toMatch(/^4 copy threads in a row failed .* after 2 min$/);
  });

  it('an already aborted signal copies nothing', async () => {
    await fs.writeFile(path.join(dir, 'src'), 'x');
    const e = await copyError(
      copyWorkers.copyAndHash(path.join(dir, 'src'), path.join(dir, 'dst'), { signal: AbortSignal.abort() }),
    );
    expect(e.code).toBe('SOURCE_IO');
    await expect(fs.access(path.join(dir, 'dst'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('copy many files at once, each exactly, none mixed up with another', async () => {
    const files = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const bytes = randomBytes(1000 + i * 37_001);
        const src = path.join(dir, `src-${i}`);
        await fs.writeFile(src, bytes);
        return { src, dst: path.join(dir, `dst-${i}`), bytes };
      }),
    );
    const results = await Promise.all(files.map((f) => copyWorkers.copyAndHash(f.src, f.dst, { extraDigests: ['sm3'] })));
    for (const [i, f] of files.entries()) {
      expect(results[i].sha256).toBe(createHash('sha256').update(f.bytes).digest('hex'));
      expect(results[i].digests.sm3).toBe(createHash('sm3').update(f.bytes).digest('hex'));
      expect((await fs.readFile(f.dst)).equals(f.bytes)).toBe(true);
    }
  });

  it('reports a digest the platform does not have as an error, and copies nothing', async () => {
    await fs.writeFile(path.join(dir, 'src'), 'x');
    await expect(
      copyWorkers.copyAndHash(path.join(dir, 'src'), path.join(dir, 'dst'), { extraDigests: ['no-such-hash'] }),
    ).rejects.toThrow(/cannot compute the digests/);
    await expect(fs.access(path.join(dir, 'dst'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('digest threads (SM3 beside the copy on the event loop)', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-digests-'));
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a digest thread that dies mid-copy: the copy is made again, its SM3 computed on the event loop, progress never going back', async () => {
    // A digest thread that takes two chunks and dies at the third (as a thread killed by a fault would).
    const dying = new DigestWorkers(
      1,
      `const { parentPort } = require('node:worker_threads');
      let updates = 0;
      parentPort.on('message', (m) => {
        if (m.op !== 'update') return;
        if (++updates === 3) process.exit(7);
        parentPort.postMessage({ op: 'hashed', id: m.id, buffer: m.buffer }, [m.buffer]);
      });`,
    );
    const deaths: string[] = [];
    dying.onDeath((e) => deaths.push(e.message));
    const bytes = randomBytes(68 * MiB + 5);
    const src = path.join(dir, 'clip.mp4');
    await fs.writeFile(src, bytes);
    const dst = path.join(dir, 'clip.copy');
    const progress: number[] = [];
    const r = await copyAndHash(src, dst, { extraDigests: ['sm3'], digestWorkers: dying, onBytes: (n) => progress.push(n) });
    expect(r.sha256).toBe(await sha256sum(src));
    expect(r.digests).toEqual({ sm3: createHash('sm3').update(bytes).digest('hex') });
    expect((await fs.readFile(dst)).equals(bytes)).toBe(true);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(new Set(progress).size).toBe(progress.length);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(deaths).toEqual(['digest thread exited (code 7)']);
  });

  it('threads that cannot start: every digest is still computed, on the event loop; after three deaths threads rest (1 min, then 2), and a thread that works ends the trouble', async () => {
    const starts = path.join(dir, 'starts');
    const broken = path.join(dir, 'broken');
    await fs.writeFile(broken, '');
    let now = 1_700_000_000_000;
    // The real digest thread's code, unless the flag file exists: then it dies as it starts.
    const workers = new DigestWorkers(
      1,
      `{
        const fs = require('node:fs');
        fs.appendFileSync(${JSON.stringify(starts)}, 'x');
        if (fs.existsSync(${JSON.stringify(broken)})) throw new Error('broken on purpose');
      }
      ${DIGEST_THREAD_SOURCE}`,
      () => now,
    );
    const troubles: (string | null)[] = [];
    workers.onTrouble((t) => troubles.push(t));
    let deaths = 0;
    workers.onDeath(() => deaths++);
    const bytes = randomBytes(3 * MiB + 7);
    const src = path.join(dir, 'src');
    await fs.writeFile(src, bytes);
    const sm3 = createHash('sm3').update(bytes).digest('hex');
    // One after the other: each copy opens a stream, so each may start a thread.
    const copyTimes = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const dst = path.join(dir, 'dst');
        await fs.rm(dst, { force: true });
        const r = await copyAndHash(src, dst, { extraDigests: ['sm3'], digestWorkers: workers });
        expect(r.digests).toEqual({ sm3 });
        expect(r.sha256).toBe(await sha256sum(dst));
      }
    };
    await copyTimes(6);
    expect(await fs.readFile(starts, 'utf8')).toBe('xxx');
    expect(deaths).toBe(3);
    expect(troubles).toEqual([
      expect.stringMatching(
        /^3 digest threads in a row failed \(the last: digest thread failed: broken on purpose\); digests run on the main thread, more slowly; .* after 1 min$/,
      ),
    ]);
    // While they rest, copies start no thread.
    now += 59_000;
    await copyTimes(3);
    expect(await fs.readFile(starts, 'utf8')).toBe('xxx');
    // After the rest one thread is tried again; it dies too, and the next rest is twice as long.
    now += 2_000;
    await copyTimes(3);
    expect(await fs.readFile(starts, 'utf8')).toBe('xxxx');
    expect(troubles).toHaveLength(2);
    expect(troubles[1]).toMatch(/^4 digest threads in a row failed .* after 2 min$/);
    // Mended: after the rest a thread starts, computes the digest, and the trouble is over.
    await fs.rm(broken);
    now += 121_000;
    await copyTimes(2);
    expect(await fs.readFile(starts, 'utf8')).toBe('xxxxx');
    expect(troubles).toEqual([expect.any(String), expect.any(String), null]);
  });
});
