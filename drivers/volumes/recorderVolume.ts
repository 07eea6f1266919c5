import fs from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '../errors.ts';

/** How deletions reach a recorder's storage (named in logs, audit entries and `recorder.file-deleted` events). */
export type WipeMethod = 'directory' | 'control-channel' | 'remount';

/** A recording on the volume, as the walk found it: its path inside the volume, and what to open (raw bytes for odd names). */
export interface VolumeEntry {
  relPath: string;
  absPath: string | Buffer;
  /** The path's raw bytes in hex when `relPath` had to escape them (a name that is not clean UTF-8). */
  relPathHex?: string | null;
}

/**
 * What dockd may do to a recorder's storage besides reading it. Deleting is the only write, used by the wipe gate
 * after HQ's receipt. The first remove() takes whatever write access the method needs (a read-write remount, a login
 * on the control channel); close() flushes the deletions to the medium and gives that access back.
 */
export interface RecorderVolume {
  readonly root: string;
  readonly method: WipeMethod;
  /** Deletes one recording; never follows links, never leaves the volume. Throws VolumeWriteError. */
  remove(entry: VolumeEntry): Promise<void>;
  /** Ends a wipe: flush, then give back the access remove() took. Idempotent; harmless when nothing was removed. */
  close(): Promise<void>;
}

/**
 * Why a deletion did not happen. NO_ACCESS: write access to the whole volume could not be had (the remount or the
 * control channel failed): no other file on it will fare better in this session.
 */
export type VolumeWriteErrorCode = 'OUTSIDE_VOLUME' | 'NOT_A_FILE' | 'BAD_NAME' | 'READ_ONLY' | 'REFUSED' | 'NO_ACCESS' | 'IO';

export class VolumeWriteError extends CodedError<VolumeWriteErrorCode> {
  constructor(code: VolumeWriteErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'VolumeWriteError';
  }
}

const asBuffer = (p: string | Buffer) => (typeof p === 'string' ? Buffer.from(p) : p);

/** `entry.absPath`, checked to lie inside `root` (byte-wise, so raw names work) and to be a regular file, not a link. */
async function regularFileInside(root: string, entry: VolumeEntry): Promise<string | Buffer> {
  let abs = entry.absPath;
  if (typeof abs === 'string') {
    abs = path.resolve(abs);
    if (!abs.startsWith(path.resolve(root) + path.sep))
      throw new VolumeWriteError('OUTSIDE_VOLUME', `${entry.relPath} is outside the volume`);
  } else {
    const prefix = Buffer.from(`${root.replace(/\/+$/, '')}/`);
    const rest = abs.subarray(prefix.length).toString('latin1');
    if (
      !abs.subarray(0, prefix.length).equals(prefix) ||
      !rest ||
      rest.split('/').some((p) => p === '..' || p === '.' || p === '')
    ) {
      throw new VolumeWriteError('OUTSIDE_VOLUME', `${entry.relPath} is outside the volume`);
    }
  }
  const absBytes = asBuffer(abs);
  // A directory on the way that is a link could point anywhere: the parent must really be where the path says.
  const parent = typeof abs === 'string' ? path.dirname(abs) : absBytes.subarray(0, absBytes.lastIndexOf(0x2f));
  const realParent = await fs.realpath(parent, { encoding: 'buffer' }).catch(() => null);
  const realRoot = Buffer.from(await fs.realpath(root));
  if (
    !realParent ||
    !(
      realParent.equals(realRoot) ||
      realParent.subarray(0, realRoot.length + 1).equals(Buffer.concat([realRoot, Buffer.from('/')]))
    )
  ) {
    throw new VolumeWriteError('OUTSIDE_VOLUME', `${entry.relPath} is not inside the volume (a link on the way?)`);
  }
  const st = await fs.lstat(abs).catch((e: NodeJS.ErrnoException) => {
    throw new VolumeWriteError('IO', `cannot see ${entry.relPath}: ${e.code ?? e.message}`, { cause: e });
  });
  if (!st.isFile()) throw new VolumeWriteError('NOT_A_FILE', `${entry.relPath} is not a regular file`);
  return abs;
}

/** Unlinks a checked recording and returns its parent directory (to be fsynced). */
export async function unlinkInside(root: string, entry: VolumeEntry): Promise<string | Buffer> {
  const abs = await regularFileInside(root, entry);
  try {
    await fs.unlink(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VolumeWriteError(
      code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? 'READ_ONLY' : 'IO',
      `cannot delete ${entry.relPath}: ${code ?? (e as Error).message}`,
      { cause: e },
    );
  }
  return typeof abs === 'string' ? path.dirname(abs) : abs.subarray(0, abs.lastIndexOf(0x2f));
}

/** fsyncs directories, so that the deletions in them reach the medium (an unlink is only a directory change). */
export async function syncDirectories(dirs: Iterable<string | Buffer>): Promise<void> {
  for (const dir of dirs) {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }
}

/**
 * A recorder volume that is a plain writable directory: a mount root's entry mounted by someone else, a test's
 * directory, the emulator's exposed copy. Deletions are unlinks, made durable by fsyncing their directories on close().
 */
export class DirectoryVolume implements RecorderVolume {
  readonly method = 'directory' as const;
  private readonly touched = new Map<string, string | Buffer>();

  constructor(readonly root: string) {}

  async remove(entry: VolumeEntry): Promise<void> {
    const dir = await unlinkInside(this.root, entry);
    this.touched.set(asBuffer(dir).toString('hex'), dir);
  }

  async close(): Promise<void> {
    const dirs = [...this.touched.values()];
    this.touched.clear();
    try {
      await syncDirectories(dirs);
    } catch (e) {
      throw new VolumeWriteError('IO', `syncing the deletions on ${this.root}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** A session on a recorder's control channel that can delete files on it (see daemon/dock/recorderLinks.ts). */
export interface DeleteChannel {
  /** Deletes `relPath` (`/`-separated, inside the recorder's storage) on the recorder itself. */
  deleteFile(relPath: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A recorder that deletes its own files when asked on its control channel (`BC+DEL=<path>`): the storage mounted on
 * the station is only read. The channel is opened (and logged in) on the first remove() and closed by close().
 */
export class ChannelVolume implements RecorderVolume {
  readonly method = 'control-channel' as const;
  private channel: Promise<DeleteChannel> | null = null;

  constructor(
    readonly root: string,
    private readonly connect: () => Promise<DeleteChannel>,
  ) {}

  async remove(entry: VolumeEntry): Promise<void> {
    if (entry.relPathHex)
      throw new VolumeWriteError('BAD_NAME', `${entry.relPath}: a name that is not UTF-8 cannot be named on the control channel`);
    const rel = entry.relPath.split(path.sep).join('/');
    if (rel.startsWith('/') || rel.split('/').some((p) => p === '..' || p === '.' || p === ''))
      throw new VolumeWriteError('OUTSIDE_VOLUME', `${entry.relPath} is not a path inside the volume`);
    await regularFileInside(this.root, entry); // what was re-hashed is still a file where the recorder will look
    this.channel ??= this.connect();
    let channel: DeleteChannel;
    try {
      channel = await this.channel;
    } catch (e) {
      throw new VolumeWriteError('NO_ACCESS', `cannot open the recorder's control channel: ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      await channel.deleteFile(rel);
    } catch (e) {
      throw new VolumeWriteError('REFUSED', `the recorder did not delete ${rel}: ${(e as Error).message}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    const channel = this.channel;
    this.channel = null;
    if (!channel) return;
    const open = await channel.catch(() => null);
    await open?.close();
  }
}

/** Remounts a volume read-write and read-only again (drivers/mounts/blockMount.ts, BlockMounter). */
export interface Remounter {
  remount(mountPoint: string, mode: 'rw' | 'ro'): Promise<void>;
}

/**
 * Storage dockd mounted itself read-only (a USB block device): the first remove() remounts it read-write, close()
 * fsyncs the directories it changed and remounts it read-only again (which flushes the filesystem to the device).
 * Deletions are unlinks made by dockd itself (on vfat/exfat dockd owns the files through the mount's uid=).
 */
export class RemountedVolume implements RecorderVolume {
  readonly method = 'remount' as const;
  private writable: Promise<void> | null = null;
  private readonly touched = new Map<string, string | Buffer>();

  constructor(
    readonly root: string,
    private readonly mounter: Remounter,
  ) {}

  async remove(entry: VolumeEntry): Promise<void> {
    this.writable ??= this.mounter.remount(this.root, 'rw');
    try {
      await this.writable;
    } catch (e) {
      throw new VolumeWriteError('NO_ACCESS', `cannot make the recorder's storage writable: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const dir = await unlinkInside(this.root, entry);
    this.touched.set(asBuffer(dir).toString('hex'), dir);
  }

  async close(): Promise<void> {
    const writable = this.writable;
    this.writable = null;
    if (!writable) return;
    // A failed rw remount may still have left it writable: read-only again in every case.
    const made = await writable.then(
      () => true,
      () => false,
    );
    const dirs = [...this.touched.values()];
    this.touched.clear();
    let syncError: unknown = null;
    if (made)
      await syncDirectories(dirs).catch((e) => {
        syncError = e;
      });
    try {
      await this.mounter.remount(this.root, 'ro');
    } catch (e) {
      throw new VolumeWriteError('IO', `the recorder's storage could not be made read-only again: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (syncError)
      throw new VolumeWriteError('IO', `syncing the deletions on ${this.root}: ${(syncError as Error).message}`, {
        cause: syncError,
      });
  }
}
