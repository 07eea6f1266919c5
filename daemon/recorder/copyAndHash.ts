import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import { type Digester, DigestThreadGone, type DigestWorkers, digestWorkers, inProcessDigest } from './digestWorkers.ts';
import { alignedBuffers, createTarget, DIRECT_FROM, type TargetWriter } from './directTarget.ts';
import { escapeName } from './rawName.ts';
import { CodedError } from '../../drivers/errors.ts';

const CHUNK = 4 << 20;
const MIN_CHUNK = 64 << 10;
const SYNC_EVERY = 64 << 20;
/**
 * What the buffers of every large copy running at once may take together: two chunks each, and two more with an extra
 * digest such as SM3 (the chunks handed to its thread). Each recorder copies one large recording at a time, so as many
 * run at once as dock.concurrency lets recorders copy. 16 copies with 4 MiB chunks took a daemon to 316 MB.
 */
const LARGE_COPIES_BUFFERS = 32 << 20;

/**
 * The chunk of a large copy when up to `copiesAtOnce` run at once (counted twice each with an extra digest): CHUNK for
 * one or two, less for more (1 MiB each at 16 bays, 512 KiB with SM3), in whole 64 KiB (direct writes need aligned
 * buffers), never under 256 KiB.
 */
export function chunkFor(copiesAtOnce: number): number {
  const share = Math.floor(LARGE_COPIES_BUFFERS / (2 * Math.max(1, copiesAtOnce)) / MIN_CHUNK) * MIN_CHUNK;
  return Math.min(CHUNK, Math.max(4 * MIN_CHUNK, share));
}

export type CopyErrorCode = 'SOURCE_GONE' | 'SOURCE_CHANGED' | 'SOURCE_SHORT' | 'SOURCE_NOT_REGULAR' | 'SOURCE_IO' | 'TARGET_IO';

/** Errors of the copy, by code: SOURCE_GONE (unplugged) ends the session; the others affect one file. */
export class CopyError extends CodedError<CopyErrorCode> {
  constructor(code: CopyErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

const GONE = new Set(['ENOENT', 'ENODEV', 'ENXIO', 'EIO', 'ESTALE', 'ENOTCONN']);

/**
 * Whether a read error of a file found on the volume means the volume went away. A pulled device reads EIO, or ENOENT
 * on vfat once the mount has lost it: either way it is the same as unplugged.
 */
export const isVolumeGoneCode = (code: string | undefined): boolean => GONE.has(code ?? '');

/** A source's read error as the copy reports it: SOURCE_GONE when the volume went away, else SOURCE_IO. */
export function sourceError(e: unknown, what: string): CopyError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (e instanceof CopyError) return e;
  return GONE.has(code)
    ? new CopyError('SOURCE_GONE', `${what}: recorder volume went away (${code})`, e)
    : new CopyError('SOURCE_IO', `${what}: ${(e as Error).message}`, e);
}

/** A copy's target still open, its data not yet known to be on disk. */
export interface UnsyncedTarget {
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export interface CopyResult {
  sha256: string;
  size: number;
  mtimeMs: number /** Extra digests asked for (e.g. sm3), hex. */;
  digests: Record<string, string>;
  /** With `deferSync`: the target, still open and not yet fdatasynced; the caller syncs and closes it. */
  unsynced?: UnsyncedTarget;
}

export interface CopyOptions {
  /** Called with the byte count after each chunk (progress). */
  onBytes?: (n: number) => void;
  /** Stop early (e.g. shutdown); the partial target is left for the caller to remove. */
  signal?: AbortSignal;
  /**
   * Digests to compute besides SHA-256 in the same pass (OpenSSL names, e.g. 'sm3'), on a worker thread: the copy hands
   * each chunk over and goes on (see DigestStream), so a slower hash does not add its time to the copy's. While those
   * threads rest, or after one died under this copy, they are computed here (see DigestWorkers).
   */
  extraDigests?: string[];
  /**
   * Leave the final fdatasync to the caller (group commit syncs many targets at once): the target is returned open in
   * `unsynced`, its mode already 0444 as its object's will be (the store then has no chmod to do). A writeback error
   * seen during the copy still fails it here.
   */
  deferSync?: boolean;
  /** The digest threads for `extraDigests` (default: the process's). */
  digestWorkers?: DigestWorkers;
  /** How many large copies may run at once in this process (dock.concurrency; default 2): see chunkFor. */
  copiesAtOnce?: number;
}

/** `onBytes` as a copy made again from the start reports it: never below what was already reported. */
export function forwardOnly(onBytes: ((n: number) => void) | undefined): (n: number) => void {
  let reported = 0;
  return (n) => {
    if (n <= reported) return;
    reported = n;
    onBytes?.(n);
  };
}

/**
 * Reads `source` once, hashing exactly the bytes written to `target` (created new, never overwritten), then
 * fdatasyncs the target. With `target` null the source is only hashed. The source must keep the size and mtime it
 * had when opened and deliver exactly that many bytes.
 */
export async function copyAndHash(
  sourcePath: string | Buffer,
  target: string | null,
  opts: CopyOptions = {},
): Promise<CopyResult> {
  if (!opts.extraDigests?.length) return copyOnce(sourcePath, target, opts, null);
  const workers = opts.digestWorkers ?? digestWorkers;
  const onBytes = forwardOnly(opts.onBytes);
  try {
    return await copyOnce(sourcePath, target, { ...opts, onBytes }, (a) => workers.open(a));
  } catch (e) {
    if (!(e instanceof DigestThreadGone) || opts.signal?.aborted) throw e;
    // The digest thread died, not the recording: the copy is made again from the first byte, on a new target, with
    // its digests computed here.
    if (target !== null) await removeForRedo(target, e);
    return copyOnce(sourcePath, target, { ...opts, onBytes }, inProcessDigest);
  }
}

/**
 * Removes the target of a copy that is to be made again because a thread died (`why`), so that the copy can create it
 * anew; a failure to remove it fails the copy with TARGET_IO, naming both.
 */
export async function removeForRedo(target: string, why: Error): Promise<void> {
  try {
    await fs.rm(target, { force: true });
  } catch (e) {
    throw new CopyError('TARGET_IO', `cannot remove ${target} to copy it again (${why.message}): ${(e as Error).message}`, e);
  }
}

/** copyAndHash, once: the extra digests (if any) from `openDigest`. */
async function copyOnce(
  sourcePath: string | Buffer,
  target: string | null,
  opts: CopyOptions,
  openDigest: ((algorithms: string[]) => Digester) | null,
): Promise<CopyResult> {
  // A name that is not clean UTF-8 is opened by its bytes and named escaped in errors.
  const source = typeof sourcePath === 'string' ? sourcePath : escapeName(sourcePath).text;
  let src: fs.FileHandle;
  // O_NONBLOCK: a fifo or device swapped in after discovery must not block the open (it is refused below).
  try {
    src = await fs.open(sourcePath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw sourceError(e, source);
  }
  let dst: fs.FileHandle | null = null;
  let syncing = null as Promise<void> | null;
  let extra: Digester | null = null;
  let writer: TargetWriter | null = null;
  try {
    const before = await src.stat().catch((e) => {
      throw sourceError(e, source);
    });
    if (!before.isFile()) throw new CopyError('SOURCE_NOT_REGULAR', `${source} is not a regular file`);
    // A file smaller than a chunk gets buffers its size (a day's photos and short clips: memory stays flat with many
    // recorders copying at once); reading to the end still takes one more read, which returns 0.
    const buffersOf = (opts.copiesAtOnce ?? 2) * (opts.extraDigests?.length ? 2 : 1);
    const chunk = Math.min(chunkFor(buffersOf), Math.max(MIN_CHUNK, before.size));
    // A large file is written direct (see directTarget.ts), from buffers aligned for it.
    const aligned = target && before.size >= DIRECT_FROM ? alignedBuffers(chunk) : null;
    if (target) {
      try {
        writer = await createTarget(target, aligned !== null);
      } catch (e) {
        throw new CopyError('TARGET_IO', `cannot create ${target}: ${(e as Error).message}`, e);
      }
      dst = writer.file;
    }
    const hash: Hash = createHash('sha256');
    if (openDigest && opts.extraDigests?.length) extra = openDigest(opts.extraDigests);
    const bufs = aligned ?? [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
    // Direct writes need whole chunks: a read that returns less than asked before the end is continued.
    const read = async (i: number) => {
      const buf = bufs[i % 2];
      let n = 0;
      try {
        do {
          const { bytesRead } = await src.read(buf, n, chunk - n, null);
          if (bytesRead === 0) break;
          n += bytesRead;
        } while (writer?.direct && n < chunk);
      } catch (e) {
        throw sourceError(e, source);
      }
      return n;
    };
    let total = 0;
    let synced = 0;
    // A writeback error must not be lost: Linux reports it to one fsync only.
    let syncError: unknown = null;
    let i = 0;
    let pending = read(i);
    pending.catch(() => {});
    for (;;) {
      const n = await pending;
      if (n === 0) break;
      if (opts.signal?.aborted) throw new CopyError('SOURCE_IO', `${source}: copy interrupted`);
      const cur = bufs[i % 2];
      i++;
      // Read the next chunk into the other buffer while this one is hashed and written.
      pending = read(i);
      pending.catch(() => {}); // awaited next turn; this only keeps an early exit from leaving it unhandled
      const bytes = cur.subarray(0, n);
      // The write runs on libuv's pool while this thread hashes the same (unchanging) buffer.
      const written = writer
        ? writer.write(bytes, total).catch((e) => {
            throw new CopyError('TARGET_IO', `writing ${target}: ${(e as Error).message}`, e);
          })
        : null;
      written?.catch(() => {});
      hash.update(bytes);
      // Copied out before the next read may fill this buffer again.
      if (extra) await extra.update(bytes);
      if (written) await written;
      if (dst && !writer!.direct && total + n - synced >= SYNC_EVERY && !syncing) {
        // Start writeback early (without waiting) so the final fdatasync has little left to flush (a direct copy's
        // bytes are on the disk already).
        synced = total + n;
        syncing = dst
          .datasync()
          .catch((e) => {
            syncError ??= e;
          })
          .finally(() => {
            syncing = null;
          });
      }
      total += n;
      opts.onBytes?.(total);
    }
    const after = await src.stat().catch((e) => {
      throw sourceError(e, source);
    });
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs)
      throw new CopyError('SOURCE_CHANGED', `${source} changed while it was copied`);
    if (total !== before.size)
      throw new CopyError('SOURCE_SHORT', `${source}: read ${total} bytes, the volume lists ${before.size}`);
    if (dst) {
      await syncing;
      try {
        if (syncError) throw syncError;
        if (!opts.deferSync) await dst.datasync();
      } catch (e) {
        throw new CopyError('TARGET_IO', `syncing ${target}: ${(e as Error).message}`, e);
      }
      if (opts.deferSync)
        await dst.chmod(0o444).catch((e: Error) => {
          throw new CopyError('TARGET_IO', `making ${target} read-only: ${e.message}`, e);
        });
    }
    const digests = extra ? await extra.digest() : {};
    const result: CopyResult = { sha256: hash.digest('hex'), size: total, mtimeMs: Math.trunc(before.mtimeMs), digests };
    if (dst && opts.deferSync) {
      result.unsynced = dst;
      dst = null;
    }
    return result;
  } finally {
    extra?.close();
    await syncing?.catch(() => {});
    await writer?.close().catch(() => {});
    await src.close().catch(() => {});
    await dst?.close().catch(() => {});
  }
}
