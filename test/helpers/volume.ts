import fs from 'node:fs/promises';
import path from 'node:path';

/** Builds a volume in a staging dir beside the mount root, then renames it in (appears at once, like a mount). */
export async function dockVolume(mountRoot: string, name: string, build: (dir: string) => Promise<void>): Promise<string> {
  const staging = path.join(path.dirname(mountRoot), `.staging-${name}-${process.pid}-${Date.now()}`);
  await fs.mkdir(staging, { recursive: true });
  await build(staging);
  const volume = path.join(mountRoot, name);
  await fs.rename(staging, volume);
  return volume;
}
