/** Small real filesystems (tmpfs, ramfs) mounted for one test, and what is free on them. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Mounts a tmpfs of `sizeMiB` at `dir` (created). Throws with a clear message when that is not possible: these tests
 * need root (CI runs as root) and are not skipped.
 */
export function mountTmpfs(dir: string, sizeMiB: number): Promise<void> {
  return mountFs(dir, 'tmpfs', `size=${sizeMiB}m,mode=0755`, `a ${sizeMiB} MiB tmpfs (to fill a real filesystem)`);
}

/** Mounts a ramfs at `dir` (created): a real filesystem that has no direct (O_DIRECT) writes. */
export function mountRamfs(dir: string): Promise<void> {
  return mountFs(dir, 'ramfs', 'mode=0755', 'a ramfs (a filesystem without direct writes)');
}

async function mountFs(dir: string, type: string, options: string, what: string): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error(`this test mounts ${what} and needs root (uid ${process.getuid?.()}); run it as root (CI does)`);
  await fs.mkdir(dir, { recursive: true });
  try {
    await run('mount', ['-t', type, '-o', options, type, dir]);
  } catch (e) {
    throw new Error(`cannot mount ${what} at ${dir}: ${(e as { stderr?: string }).stderr || (e as Error).message}`);
  }
  if (!(await isMountPoint(dir))) throw new Error(`mount reported success but ${dir} is not a mount point`);
}

/** Unmounts `dir` if it is a mount point (retrying while busy; lazily as the last resort). */
export async function unmount(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (!(await isMountPoint(dir))) return;
    try {
      await run('umount', [dir]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await run('umount', ['-l', dir]);
}

export async function isMountPoint(dir: string): Promise<boolean> {
  const mounts = await fs.readFile('/proc/self/mounts', 'utf8');
  const want = path.resolve(dir);
  // /proc/self/mounts escapes spaces etc. as octal; test paths have none.
  return mounts.split('\n').some((l) => l.split(' ')[1] === want);
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return s.bavail * s.bsize;
}
