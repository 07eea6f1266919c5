import fs from 'node:fs/promises';
import path from 'node:path';
import { mediaKind, type MediaKind } from './fileName.ts';

export const SIDECAR_SUFFIX = '.meta.json';
const MAX_DEPTH = 16;
const MAX_ENTRIES = 100_000;

export interface FoundRecording {
  relPath: string;
  absPath: string;
  size: number;
  mtimeMs: number;
  kind: MediaKind;
  /** Path of `<basename>.meta.json` beside it, when present. */
  sidecarPath?: string;
}

export interface SkippedEntry { relPath: string; reason: string }

export interface Discovery { recordings: FoundRecording[]; skipped: SkippedEntry[] }

function isValidUtf8Name(raw: Buffer): boolean {
  const s = raw.toString('utf8');
  return Buffer.from(s, 'utf8').equals(raw) && !/[\u0000-\u001f\u007f]/.test(s);
}

/**
 * Walks a recorder volume once: recordings by extension, never following symlinks or leaving the volume; every
 * other entry is reported with the reason it was skipped. Reads metadata only; writes nothing.
 */
export async function discover(root: string): Promise<Discovery> {
  const recordings: FoundRecording[] = [];
  const skipped: SkippedEntry[] = [];
  const rootStat = await fs.stat(root);
  let entries = 0;

  async function walk(dirRel: string, depth: number): Promise<void> {
    const dirAbs = path.join(root, dirRel);
    let names: Buffer[];
    try { names = await fs.readdir(dirAbs, { encoding: 'buffer' }); }
    catch (e) { skipped.push({ relPath: dirRel || '.', reason: `cannot read directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }); return; }
    names.sort(Buffer.compare);
    const sidecars = new Set<string>();
    const files: { rel: string; abs: string; st: import('node:fs').Stats; kind: MediaKind | null; name: string }[] = [];
    for (const raw of names) {
      if (++entries > MAX_ENTRIES) { skipped.push({ relPath: dirRel || '.', reason: `more than ${MAX_ENTRIES} entries on the volume; the rest were not read` }); return; }
      const name = raw.toString('utf8');
      const rel = dirRel ? path.join(dirRel, name) : name;
      if (!isValidUtf8Name(raw)) { skipped.push({ relPath: JSON.stringify(rel).slice(1, -1), reason: 'file name is not valid UTF-8 or has control characters' }); continue; }
      const abs = path.join(dirAbs, name);
      let st;
      try { st = await fs.lstat(abs); }
      catch (e) { skipped.push({ relPath: rel, reason: `cannot stat: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }); continue; }
      if (st.isSymbolicLink()) { skipped.push({ relPath: rel, reason: 'symbolic link (never followed)' }); continue; }
      if (st.isDirectory()) {
        if (st.dev !== rootStat.dev) { skipped.push({ relPath: rel, reason: 'another filesystem mounted inside the volume' }); continue; }
        if (depth >= MAX_DEPTH) { skipped.push({ relPath: rel, reason: `directory deeper than ${MAX_DEPTH} levels` }); continue; }
        await walk(rel, depth + 1);
        continue;
      }
      if (!st.isFile()) { skipped.push({ relPath: rel, reason: 'not a regular file (device, fifo or socket)' }); continue; }
      if (name.toLowerCase().endsWith(SIDECAR_SUFFIX)) { sidecars.add(name); continue; }
      files.push({ rel, abs, st, kind: mediaKind(name), name });
    }
    const usedSidecars = new Set<string>();
    for (const f of files) {
      if (!f.kind) { skipped.push({ relPath: f.rel, reason: `not a recording (extension ${path.extname(f.name) || 'none'})` }); continue; }
      const base = f.name.slice(0, f.name.length - path.extname(f.name).length);
      const sidecar = [...sidecars].find((s) => s.slice(0, -SIDECAR_SUFFIX.length) === base);
      if (sidecar) usedSidecars.add(sidecar);
      recordings.push({
        relPath: f.rel, absPath: f.abs, size: f.st.size, mtimeMs: Math.trunc(f.st.mtimeMs), kind: f.kind,
        ...(sidecar ? { sidecarPath: path.join(dirAbs, sidecar) } : {}),
      });
    }
    for (const s of sidecars) if (!usedSidecars.has(s)) skipped.push({ relPath: dirRel ? path.join(dirRel, s) : s, reason: 'sidecar without a recording of the same name' });
  }

  await walk('', 0);
  return { recordings, skipped };
}
