import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * What dockd may do to a recorder's storage besides reading it. Deleting is the only write, used by the wipe gate
 * after HQ's receipt; a driver whose recorder deletes through a protocol command implements it that way.
 */
export interface RecorderVolume {
  readonly root: string;
  /** Deletes one recording (a path inside the volume); never follows links, never leaves the volume. */
  remove(relPath: string): Promise<void>;
}

export class VolumeWriteError extends Error {
  constructor(readonly code: 'OUTSIDE_VOLUME' | 'NOT_A_FILE' | 'READ_ONLY' | 'IO', message: string) { super(message); }
}

/** A recorder volume that is a directory (a mounted filesystem, or a plain directory in tests and the emulator). */
export class DirectoryVolume implements RecorderVolume {
  constructor(readonly root: string) {}

  async remove(relPath: string): Promise<void> {
    const abs = path.resolve(this.root, relPath);
    if (!abs.startsWith(path.resolve(this.root) + path.sep)) throw new VolumeWriteError('OUTSIDE_VOLUME', `${relPath} is outside the volume`);
    const st = await fs.lstat(abs);
    if (!st.isFile()) throw new VolumeWriteError('NOT_A_FILE', `${relPath} is not a regular file`);
    try { await fs.unlink(abs); }
    catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new VolumeWriteError(code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? 'READ_ONLY' : 'IO', `cannot delete ${relPath}: ${code ?? (e as Error).message}`);
    }
  }
}
