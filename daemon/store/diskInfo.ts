import type { StatsFs } from 'node:fs';

/** Free and total bytes of the file system holding the store (the status snapshot adds the watermarks). */
export interface DiskInfo {
  path: string;
  freeBytes: number;
  totalBytes: number;
  lowWaterBytes?: number;
  reserveBytes?: number;
}

/** The figures for the file system holding `dir` (read through the host's `statfs`); null when it cannot be read. */
export async function diskInfo(dir: string, statfs: (dir: string) => Promise<StatsFs>): Promise<DiskInfo | null> {
  try {
    const s = await statfs(dir);
    return { path: dir, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}
