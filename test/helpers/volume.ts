import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Every entry of a tree with its type, size, mode, mtime and content hash: to prove a volume was not touched. */
export async function treeFingerprint(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    const abs = path.join(root, rel);
    const st = await fs.lstat(abs);
    if (st.isSymbolicLink()) {
      out[rel] = `link ${await fs.readlink(abs)} ${st.mtimeMs}`;
      return;
    }
    if (st.isDirectory()) {
      out[rel || '.'] = `dir ${st.mode} ${st.mtimeMs}`;
      for (const n of (await fs.readdir(abs)).sort()) await walk(path.join(rel, n));
      return;
    }
    if (st.isFile()) {
      out[rel] = `file ${st.size} ${st.mode} ${st.mtimeMs} ${createHash('sha256')
        .update(await fs.readFile(abs))
        .digest('hex')}`;
      return;
    }
    out[rel] = `other ${st.mode}`;
  }
  await walk('');
  return out;
}

/** Builds a volume in a staging dir beside the mount root, then renames it in (appears at once, like a mount). */
export async function dockVolume(mountRoot: string, name: string, build: (dir: string) => Promise<void>): Promise<string> {
  const staging = path.join(path.dirname(mountRoot), `.staging-${name}-${process.pid}-${Date.now()}`);
  await fs.mkdir(staging, { recursive: true });
  await build(staging);
  const volume = path.join(mountRoot, name);
  await fs.rename(staging, volume);
  return volume;
}
