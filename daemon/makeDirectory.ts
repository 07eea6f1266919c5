import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A directory that is not, or cannot be, what it must be: `${dir} ${problem}` reads as one sentence. */
export class DirectoryProblem extends Error {
  constructor(
    readonly dir: string,
    readonly problem: string,
  ) {
    super(`${dir} ${problem}`);
  }
}

const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  EIO: 'input/output error',
  ENOENT: 'this file system takes no new entries there',
};

/** An errno in words with its code, e.g. "read-only file system (EROFS)". */
export function errnoWords(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code ? `${ERRNO_WORDS[code] ?? (e as Error).message} (${code})` : (e as Error).message;
}

export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device node';
  return 'something other than a directory';
}

async function statOrNull(dir: string, p: string): Promise<Stats | null> {
  try {
    return await fs.stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new DirectoryProblem(dir, `cannot be examined${p === dir ? '' : ` (at ${p})`}: ${errnoWords(e)}`);
  }
}

/**
 * Makes sure `dir` is a directory; when it is absent, creates it and its missing parents one level at a time
 * (`create`), or only checks that it could appear (its nearest existing ancestor is a directory). Node's
 * `mkdir(…, {recursive: true})` is not used: under /proc it never returns. Returns whether `dir` exists now.
 * Throws DirectoryProblem.
 */
export async function ensureDirectory(dir: string, opts: { create: boolean }): Promise<boolean> {
  const st = await statOrNull(dir, dir);
  if (st) {
    if (!st.isDirectory()) throw new DirectoryProblem(dir, `is ${fileKind(st)}, not a directory`);
    return true;
  }
  if (
    await fs.lstat(dir).then(
      (l) => l.isSymbolicLink(),
      () => false,
    )
  )
    throw new DirectoryProblem(dir, 'is a symbolic link to nothing');
  const missing = [dir];
  let parent = path.dirname(dir);
  let pst = await statOrNull(dir, parent);
  while (!pst && parent !== path.dirname(parent)) {
    missing.unshift(parent);
    parent = path.dirname(parent);
    pst = await statOrNull(dir, parent);
  }
  if (pst && !pst.isDirectory()) throw new DirectoryProblem(dir, `cannot be a directory: ${parent} is ${fileKind(pst)}`);
  if (!opts.create) return false;
  for (const d of missing) {
    try {
      await fs.mkdir(d);
    } catch (e) {
      const raced =
        (e as NodeJS.ErrnoException).code === 'EEXIST' &&
        (await fs.stat(d).then(
          (s) => s.isDirectory(),
          () => false,
        ));
      if (!raced) throw new DirectoryProblem(dir, `cannot be created${d === dir ? '' : ` (at ${d})`}: ${errnoWords(e)}`);
    }
  }
  return true;
}
