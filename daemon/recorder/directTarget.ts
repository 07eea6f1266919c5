import { constants } from 'node:fs';
import fs from 'node:fs/promises';

/**
 * A large recording's copy is written around the page cache (O_DIRECT): its bytes go from the copy's buffer to the
 * disk, not first into new pages of the cache. The copy is fdatasynced before it counts anyway, so the cache only
 * costs time: on the development machine (a VM whose host takes back memory the guest has not touched lately),
 * writing 1 GiB into the cache took 3.0–3.4 s of system time and the whole copy 3.4–3.5 s, against 0.3 s and
 * 1.9–2.2 s written direct (see the README, Performance). Small files stay buffered: written direct, 270 clips took
 * longer (separate new files, each written and allocated on its own, where writeback merges them).
 */
export const DIRECT_FROM = 32 << 20;

/**
 * Direct writes must start and end on the device's logical blocks (512 or 4096 bytes), from memory aligned the same
 * way: every write but a copy's last is a whole chunk (a multiple of this), and the last one's tail, shorter than a
 * block, goes through the page cache (see TargetWriter).
 */
const ALIGN = 4096;

/**
 * Two chunk buffers whose memory starts on a page (a WebAssembly memory's always does; a Buffer's does not), or null
 * when the runtime cannot give one now (the copy is then written through the cache).
 */
export function alignedBuffers(chunk: number): [Buffer, Buffer] | null {
  if (chunk % 65536) return null;
  try {
    const pages = (2 * chunk) / 65536;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    return [Buffer.from(memory.buffer, 0, chunk), Buffer.from(memory.buffer, chunk, chunk)];
  } catch {
    return null;
  }
}

/**
 * Creates `target` new (O_EXCL, 0600), for direct writes when `direct` and its filesystem has them. One without them
 * (ramfs, some FUSE) refuses the open with EINVAL once it has created the file, which O_EXCL proves was this call's
 * own: it is removed and created again for buffered writes. Other errors are thrown as they are.
 */
export async function createTarget(target: string, direct: boolean): Promise<TargetWriter> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  if (direct) {
    try {
      return new TargetWriter(await fs.open(target, flags | constants.O_DIRECT, 0o600), target, true);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      await fs.rm(target, { force: true });
    }
  }
  return new TargetWriter(await fs.open(target, flags, 0o600), target, false);
}

/**
 * Writes a copy's chunks at their offsets: direct through `file` while it is direct, and otherwise (a last chunk's
 * tail shorter than a block, or a device that refuses a direct write with EINVAL) through a second, buffered
 * descriptor of the same file, opened when first needed. Both write the same file: `file`'s fdatasync makes all of it
 * durable.
 */
export class TargetWriter {
  /** Where what is not written direct goes: `file` itself when it was opened buffered, else a second descriptor. */
  private buffered: fs.FileHandle | null;

  constructor(
    /** The target, the caller's to sync and close. */
    readonly file: fs.FileHandle,
    private readonly target: string,
    private isDirect: boolean,
  ) {
    this.buffered = isDirect ? null : file;
  }

  /** Whether chunks still go direct (false once a direct write was refused): they must then be whole. */
  get direct(): boolean {
    return this.isDirect;
  }

  async write(bytes: Buffer, position: number): Promise<void> {
    let done = 0;
    if (this.isDirect) {
      try {
        done = await writeAt(this.file, bytes.subarray(0, bytes.length - (bytes.length % ALIGN)), position);
      } catch (e) {
        // Any other error is the disk's (ENOSPC, EIO), reported as it is. EINVAL: the device wants another alignment;
        // this chunk and the rest go through the cache.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        this.isDirect = false;
        done = 0;
      }
    }
    if (done < bytes.length) {
      this.buffered ??= await fs.open(this.target, constants.O_WRONLY | constants.O_NOFOLLOW);
      await writeAt(this.buffered, bytes.subarray(done), position + done);
    }
  }

  /** Closes the second descriptor, if one was opened (`file` stays the caller's). */
  async close(): Promise<void> {
    const b = this.buffered;
    this.buffered = null;
    if (b && b !== this.file) await b.close();
  }
}

/** Writes all of `bytes` at `position` (a short write is continued); returns how many were written. */
async function writeAt(fh: fs.FileHandle, bytes: Buffer, position: number): Promise<number> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, position + off);
    if (bytesWritten === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    off += bytesWritten;
  }
  return off;
}
