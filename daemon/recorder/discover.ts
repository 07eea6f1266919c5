import type { Dirent, Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { mediaKind, type MediaKind } from '../media/mediaTypes.ts';
import { escapeName } from './rawName.ts';

export const SIDECAR_SUFFIX = '.meta.json';
/** How many skipped entries a walk reports by name (the rest are counted): a volume may hold 100,000 stray files. */
const MAX_SKIPPED_LISTED = 1000;
/**
 * The entries of a directory are stat'ed this many at a time, not one by one: while other recorders copy, each stat
 * waits its turn in libuv's thread pool behind their reads, writes and fdatasyncs, and a volume of hundreds of
 * recordings walked one stat at a time was announced minutes after it was docked.
 */
const STAT_AT_ONCE = 64;

export interface FoundRecording {
  /** Path inside the volume as shown to people: bytes that are not clean UTF-8 are escaped (`\xff`). */
  relPath: string;
  /** The path's raw bytes in hex, when `relPath` had to escape them; null otherwise. */
  relPathHex: string | null;
  /** What to open: a string, or the raw bytes when the name is not clean UTF-8. */
  absPath: string | Buffer;
  size: number;
  mtimeMs: number;
  kind: MediaKind;
  /** Path of `<basename>.meta.json` beside it, when present. */
  sidecarPath?: string | Buffer;
}

/** An entry that is not a recording (other extension, link, fifo …): skipped with its reason; it never blocks. */
export interface SkippedEntry {
  relPath: string;
  reason: string;
}

/** Something on the volume that may be (or hold) a recording and could not be taken: it keeps the recorder unsafe. */
export interface LeftBehindEntry {
  path: string;
  reason: string;
  pathHex?: string;
}

export interface Discovery {
  recordings: FoundRecording[];
  skipped: SkippedEntry[];
  /** Skipped entries in all (the list above stops at MAX_SKIPPED_LISTED). */
  skippedCount: number;
  leftBehind: LeftBehindEntry[];
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

interface Seg {
  text: string;
  raw: Buffer;
  escaped: boolean;
}

function joinSegs(segs: Seg[]): { rel: string; hex: string | null; escaped: boolean } {
  const escaped = segs.some((s) => s.escaped);
  const rel = segs.map((s) => s.text).join('/');
  return {
    rel,
    escaped,
    hex: escaped ? Buffer.from(segs.map((s) => s.raw.toString('latin1')).join('/'), 'latin1').toString('hex') : null,
  };
}

function absOf(root: string, segs: Seg[]): string | Buffer {
  if (!segs.some((s) => s.escaped)) return path.join(root, ...segs.map((s) => s.text));
  const parts: Buffer[] = [Buffer.from(root)];
  for (const s of segs) parts.push(Buffer.from('/'), s.raw);
  return Buffer.concat(parts);
}

/** The type a directory entry reports, without a stat when the filesystem gives it (d_type). */
function direntType(d: Dirent<Buffer>): 'dir' | 'file' | 'link' | 'other' | 'unknown' {
  if (d.isDirectory()) return 'dir';
  if (d.isFile()) return 'file';
  if (d.isSymbolicLink()) return 'link';
  if (d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice()) return 'other';
  return 'unknown';
}

function segOf(d: Dirent<Buffer>): Seg {
  const name = escapeName(d.name);
  return { text: name.text, raw: d.name, escaped: name.escaped };
}

/** Whether the walk needs an entry's lstat: anything but a non-recording file, a link or a special file by d_type. */
function needsStat(d: Dirent<Buffer>): boolean {
  const type = direntType(d);
  if (type === 'link' || type === 'other') return false;
  const text = escapeName(d.name).text;
  return type !== 'file' || Boolean(mediaKind(text)) || text.toLowerCase().endsWith(SIDECAR_SUFFIX);
}

/** lstat of many paths (null: none wanted), at most STAT_AT_ONCE at a time. */
async function lstatEach(paths: (string | Buffer | null)[]): Promise<(PromiseSettledResult<Stats> | null)[]> {
  const out: (PromiseSettledResult<Stats> | null)[] = [];
  for (let i = 0; i < paths.length; i += STAT_AT_ONCE)
    out.push(
      ...(await Promise.all(
        paths.slice(i, i + STAT_AT_ONCE).map((p) =>
          p === null
            ? null
            : fs.lstat(p as string).then(
                (value): PromiseSettledResult<Stats> => ({ status: 'fulfilled', value }),
                (reason): PromiseSettledResult<Stats> => ({ status: 'rejected', reason }),
              ),
        ),
      )),
    );
  return out;
}

/** Why an entry of this type is skipped unread (null: a file or a folder, or not known before its stat). */
function neverRead(type: string): string | null {
  if (type === 'link') return 'symbolic link (never followed)';
  if (type === 'other') return 'not a regular file (device, fifo or socket)';
  return null;
}

function statType(st: Stats): 'dir' | 'file' | 'link' | 'other' {
  return st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
}

/**
 * Walks a recorder volume once, to any depth: recordings by extension (any case), whatever their names' bytes.
 * Never follows symlinks, never leaves the volume's filesystem, and guards against loops by device and inode. Entries
 * that are not recordings are skipped with a reason; anything that may be or hold a recording but cannot be read (a
 * directory, an entry that cannot be stat'ed) is left behind with a reason. Reads metadata only; writes nothing.
 * Throws only when the root itself cannot be stat'ed (the volume is gone).
 */
export async function discover(root: string): Promise<Discovery> {
  const out: Discovery = { recordings: [], skipped: [], skippedCount: 0, leftBehind: [] };
  const rootStat = await fs.stat(root);
  const visited = new Set<string>([`${rootStat.dev}:${rootStat.ino}`]);
  const skip = (relPath: string, reason: string) => {
    out.skippedCount++;
    if (out.skipped.length < MAX_SKIPPED_LISTED) out.skipped.push({ relPath, reason });
  };
  const leave = (segs: Seg[], reason: string) => {
    const j = joinSegs(segs);
    out.leftBehind.push({ path: j.rel || '.', reason, ...(j.hex ? { pathHex: j.hex } : {}) });
  };

  async function walk(dirSegs: Seg[]): Promise<void> {
    const dirAbs = absOf(root, dirSegs);
    let entries: Dirent<Buffer>[];
    try {
      entries = (await fs.readdir(dirAbs as string, { encoding: 'buffer', withFileTypes: true })) as unknown as Dirent<Buffer>[];
    } catch (e) {
      leave(dirSegs, `cannot read directory: ${errCode(e)}`);
      return;
    }
    entries.sort((a, b) => Buffer.compare(a.name, b.name));
    const sidecars = new Map<string, Seg>(); // by the recording's base name
    const files: { segs: Seg[]; st: Stats; kind: MediaKind | null; name: string }[] = [];
    const subdirs: Seg[][] = [];
    const stats = await lstatEach(entries.map((d) => (needsStat(d) ? absOf(root, [...dirSegs, segOf(d)]) : null)));
    for (const [i, d] of entries.entries()) {
      const seg = segOf(d);
      const name = { text: seg.text, escaped: seg.escaped };
      const segs = [...dirSegs, seg];
      const rel = () => joinSegs(segs).rel;
      let type = direntType(d);
      const kind = mediaKind(name.text);
      const isSidecar = name.text.toLowerCase().endsWith(SIDECAR_SUFFIX);
      // Only what may be (or hold) a recording needs a stat; 100,000 stray files cost a readdir, nothing more.
      if (type === 'file' && !kind && !isSidecar) {
        skip(rel(), `not a recording (extension ${path.extname(name.text) || 'none'})`);
        continue;
      }
      const notRead = neverRead(type);
      if (notRead) {
        skip(rel(), notRead);
        continue;
      }
      const stat = stats[i]!;
      if (stat.status === 'rejected') {
        if (isSidecar) skip(rel(), `cannot stat sidecar: ${errCode(stat.reason)}`);
        else leave(segs, `cannot stat: ${errCode(stat.reason)}`);
        continue;
      }
      const st = stat.value;
      type = statType(st);
      const notReadNow = neverRead(type);
      if (notReadNow) {
        skip(rel(), notReadNow);
        continue;
      }
      if (type === 'dir') {
        if (st.dev !== rootStat.dev) {
          skip(rel(), 'another filesystem mounted inside the volume (not entered)');
          continue;
        }
        const id = `${st.dev}:${st.ino}`;
        if (visited.has(id)) {
          skip(rel(), 'directory already walked (a loop: bind mount or hard link)');
          continue;
        }
        visited.add(id);
        subdirs.push(segs);
        continue;
      }
      if (isSidecar && !name.escaped) {
        sidecars.set(name.text.slice(0, -SIDECAR_SUFFIX.length), seg);
        continue;
      }
      if (!kind) {
        skip(rel(), `not a recording (extension ${path.extname(name.text) || 'none'})`);
        continue;
      }
      files.push({ segs, st, kind, name: name.text });
    }
    for (const segs of subdirs) await walk(segs);
    const usedSidecars = new Set<string>();
    for (const f of files) {
      const base = f.name.slice(0, f.name.length - path.extname(f.name).length);
      const sidecar = sidecars.get(base);
      if (sidecar) usedSidecars.add(base);
      const j = joinSegs(f.segs);
      out.recordings.push({
        relPath: j.rel,
        relPathHex: j.hex,
        absPath: absOf(root, f.segs),
        size: f.st.size,
        mtimeMs: Math.trunc(f.st.mtimeMs),
        kind: f.kind!,
        ...(sidecar ? { sidecarPath: absOf(root, [...dirSegs, sidecar]) } : {}),
      });
    }
    for (const [base, seg] of sidecars)
      if (!usedSidecars.has(base)) skip(joinSegs([...dirSegs, seg]).rel, 'sidecar without a recording of the same name');
  }

  await walk([]);
  return out;
}
