import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';

const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const run = (file: string, args: string[], env: Record<string, string> = {}) =>
  execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH, ...env } });

export interface VolumeFile {
  /** Path inside the volume, `/` between parts. */
  rel: string;
  /** The file on the host whose bytes it gets. */
  source: string;
}

/**
 * A FAT32 recorder volume as a raw superfloppy image (no partition table, as many recorders format their card),
 * made on the host without mounting anything: mkfs.vfat, then mtools (mmd, mcopy -m keeps the mtimes) puts the files in,
 * long names included.
 */
export async function fatImage(image: string, files: readonly VolumeFile[], sizeMb = 64, label = 'RECORDER'): Promise<void> {
  await fs.rm(image, { force: true });
  run('mkfs.vfat', ['-F', '32', '-n', label, '-C', image, String(sizeMb * 1024)]);
  const mtools = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' };
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.rel.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const d of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length))
    run('mmd', ['-i', image, `::/${d}`], mtools);
  for (const f of files) run('mcopy', ['-m', '-i', image, f.source, `::/${f.rel}`], mtools);
}

/** Checks a FAT volume without changing it (fsck.vfat -n); returns its output, throws when it finds a fault. */
export function fsckFat(image: string): string {
  return run('fsck.vfat', ['-n', image]);
}

/** Lists a FAT volume's files (recursively) with mtools: paths relative to its root. */
export function fatFiles(image: string): string[] {
  const out = run('mdir', ['-i', image, '-/', '-b', '::/'], { MTOOLS_SKIP_CHECK: '1' });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.endsWith('/'))
    .map((l) => l.replace(/^::\//, ''));
}

/** Copies one file out of a FAT volume with mtools (the image must not be in use by the guest). */
export function fatCopyOut(image: string, rel: string, dest: string): void {
  run('mcopy', ['-n', '-i', image, `::/${rel}`, dest], { MTOOLS_SKIP_CHECK: '1' });
}
