/**
 * How the emulator "mounts" its storage: the volume is copied into a staging directory beside the mount root (same
 * filesystem) and renamed in as `<mountRoot>/<name>`, so it appears at once and complete, like a mount. Withdrawing
 * renames it away first (it vanishes at once, like a pulled cable) and then deletes the copy.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { EmulatorError } from './errors.ts';

let counter = 0;
const uniqueSuffix = () => `${process.pid}-${Date.now()}-${++counter}`;

export async function exposeVolume(volumeDir: string, mountRoot: string, name: string): Promise<string> {
  const target = path.join(mountRoot, name);
  await fs.mkdir(mountRoot, { recursive: true });
  try {
    await fs.lstat(target);
    throw new EmulatorError(
      'EMULATOR_MOUNT_BUSY',
      `${target} already exists: another recorder (or a stale copy) is mounted there`,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // Beside the mount root, not in it: anything appearing in the mount root counts as a docked volume.
  const staging = path.join(path.dirname(path.resolve(mountRoot)), `.emulator-staging-${name}-${uniqueSuffix()}`);
  try {
    await fs.cp(volumeDir, staging, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    await fs.rename(staging, target);
  } catch (e) {
    await fs.rm(staging, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY')
      throw new EmulatorError('EMULATOR_MOUNT_BUSY', `${target} appeared while the volume was being staged`, e);
    throw e;
  }
  return target;
}

/** Makes an exposed volume vanish at once; returns false when it was already gone. */
export async function withdrawVolume(exposed: string): Promise<boolean> {
  const away = path.join(
    path.dirname(path.dirname(path.resolve(exposed))),
    `.emulator-unplugged-${path.basename(exposed)}-${uniqueSuffix()}`,
  );
  try {
    await fs.rename(exposed, away);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  await fs.rm(away, { recursive: true, force: true });
  return true;
}
