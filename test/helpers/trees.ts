/** Hashes and fingerprints of files and trees: to prove what was (or was not) touched, copied or left behind. */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Every entry of a tree with its type, size, mode, mtime and content hash: to prove a tree was not touched. Walks with
 * Buffer paths, so names that are not valid UTF-8 are fingerprinted too (a string walk cannot even lstat them). Never
 * opens anything but regular files (a fifo would block).
 */
export async function treeFingerprint(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const rootBuf = Buffer.from(root);
  const sep = Buffer.from('/');
  async function walk(rel: Buffer): Promise<void> {
    const abs = rel.length ? Buffer.concat([rootBuf, sep, rel]) : rootBuf;
    const key = rel.length ? printable(rel) : '.';
    const st = await fs.lstat(abs);
    if (st.isSymbolicLink()) {
      out[key] = `link ${printable(await fs.readlink(abs, { encoding: 'buffer' }))} ${st.mtimeMs}`;
      return;
    }
    if (st.isDirectory()) {
      out[key] = `dir ${st.mode} ${st.mtimeMs}`;
      const names = await fs.readdir(abs, { encoding: 'buffer' });
      names.sort(Buffer.compare);
      for (const n of names) await walk(rel.length ? Buffer.concat([rel, sep, n]) : n);
      return;
    }
    if (st.isFile()) {
      out[key] = `file ${st.size} ${st.mode} ${st.mtimeMs} ${sha256Of(await fs.readFile(abs))}`;
      return;
    }
    out[key] = `other ${st.mode} ${st.mtimeMs}`;
  }
  await walk(Buffer.alloc(0));
  return out;
}

function printable(rel: Buffer): string {
  const s = rel.toString('utf8');
  return Buffer.from(s, 'utf8').equals(rel) ? s : `hex:${rel.toString('hex')}`;
}

/** Relative path → sha256 of every file under a directory. */
export async function treeHashes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of (await fs.readdir(root, { recursive: true })).sort()) {
    const abs = path.join(root, rel);
    if ((await fs.lstat(abs)).isFile()) out[rel] = sha256Of(await fs.readFile(abs));
  }
  return out;
}

/** sha256 of every regular file under `dir` (symlinks are not followed): proves some content is nowhere in it. */
export async function contentHashesUnder(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    out.add(sha256Of(await fs.readFile(path.join(e.parentPath, e.name))));
  }
  return out;
}

/** Contents of every regular file under `root` (relative path → bytes), to prove files were left byte-identical. */
export async function fileContents(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  async function walk(rel: string): Promise<void> {
    for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.set(r, await fs.readFile(path.join(root, r)));
    }
  }
  await walk('');
  return out;
}

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}
