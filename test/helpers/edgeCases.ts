/**
 * Helpers for the edge-case integration tests (hostile volumes, annotation, verify, re-dock). They only read what the
 * daemon wrote (dockctl output, the store on disk, MQTT messages, log lines); nothing here stands in for a component.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DaemonProcess, LogLine } from './daemon.ts';
import { runDockctl } from './daemon.ts';
import type { Received } from './mosquitto.ts';
import { waitFor } from './ports.ts';

/** A file row as `dockctl files --json` prints it (the fields these tests read). */
export interface PublicFile {
  id: number;
  sha256: string | null;
  state: string;
  size: number;
  kind: string;
  filename: string;
  sourcePath: string;
  deviceSerial: string | null;
  officerId: string | null;
  capturedAt: string | null;
  caseNo: string | null;
  purpose: string | null;
  place: string | null;
  collector: string | null;
  important: boolean;
  reason: string | null;
  uploadedAt: string | null;
  integrity: string | null;
  integrityNote: string | null;
  sourcePathHex: string | null;
  supersedes: number | null;
  playableCopySha256: string | null;
  probeAttempts: number;
  probeAfter: string | null;
  lastError: string | null;
}

export async function dockctlFiles(configFile: string, state?: string): Promise<PublicFile[]> {
  const r = await runDockctl(configFile, ['files', '--json', ...(state ? ['--state', state] : [])]);
  if (r.code !== 0) throw new Error(`dockctl files exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as PublicFile[];
}

/** States after which a file will not move on by itself (no copy, probe or upload pending). */
const SETTLED = new Set(['rejected', 'needs-annotation', 'uploaded', 'archived']);

/** Waits until the catalog has `count` rows and every one of them is settled; returns the rows. */
export async function waitForSettledCatalog(configFile: string, count: number, timeoutMs = 180_000): Promise<PublicFile[]> {
  return waitFor(
    `catalog to hold ${count} settled file(s)`,
    async () => {
      const rows = await dockctlFiles(configFile);
      return rows.length === count && rows.every((f) => SETTLED.has(f.state)) ? rows : null;
    },
    timeoutMs,
  );
}

/** Parsed `P/S/event` payloads, optionally of one type. */
export function eventsOf(messages: Received[], type?: string): Record<string, unknown>[] {
  return messages
    .filter((m) => m.topic.endsWith('/event'))
    .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
    .filter((e) => !type || e.type === type);
}

/** Log lines of finished ingest sessions (one per docked volume), in order. */
export function ingestFinished(daemon: DaemonProcess): LogLine[] {
  return daemon.logs.filter((l) => l.msg === 'recorder ingest finished');
}

export async function waitForIngestFinished(daemon: DaemonProcess, n: number, timeoutMs = 180_000): Promise<LogLine> {
  await waitFor(
    `${n} finished ingest session(s)`,
    () => {
      if (daemon.proc?.exitCode !== null && daemon.proc?.exitCode !== undefined)
        throw new Error(`dockd exited ${daemon.proc.exitCode}: ${daemon.stderr}`);
      return ingestFinished(daemon).length >= n;
    },
    timeoutMs,
  );
  return ingestFinished(daemon)[n - 1];
}

export function objectPath(storeDir: string, sha256: string): string {
  return path.join(storeDir, 'objects', 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
}

/** The sha256 names of every object file in the store. */
export async function storedObjectNames(storeDir: string): Promise<string[]> {
  const root = path.join(storeDir, 'objects', 'sha256');
  const out: string[] = [];
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out.sort();
}

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
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

function printable(rel: Buffer): string {
  const s = rel.toString('utf8');
  return Buffer.from(s, 'utf8').equals(rel) ? s : `hex:${rel.toString('hex')}`;
}

/**
 * Like treeFingerprint, but walks with Buffer paths, so names that are not valid UTF-8 are fingerprinted too (a
 * string walk cannot even lstat them). Never opens anything but regular files (a fifo would block).
 */
export async function rawTreeFingerprint(root: string): Promise<Record<string, string>> {
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

/** Writes the first half of `source` to `target` (a recording cut short, e.g. the battery died mid-write). */
export async function writeFirstHalf(source: string, target: string): Promise<Buffer> {
  const data = await fs.readFile(source);
  const half = data.subarray(0, Math.floor(data.length / 2));
  await fs.writeFile(target, half);
  return half;
}

/** Every upload the tus server's FileStore was asked to create (finished or not), from its `<id>.json` records. */
export async function uploadsCreated(hqDir: string): Promise<{ id: string; metadata: Record<string, string | null> }[]> {
  const out: { id: string; metadata: Record<string, string | null> }[] = [];
  for (const name of await fs.readdir(hqDir)) {
    if (!name.endsWith('.json')) continue;
    const info = JSON.parse(await fs.readFile(path.join(hqDir, name), 'utf8')) as {
      id: string;
      metadata?: Record<string, string | null>;
    };
    out.push({ id: info.id, metadata: info.metadata ?? {} });
  }
  return out;
}

/** Two distinct random blobs whose sha256 share their first `hexDigits` hex digits (a birthday search; fast for 6). */
export function blobsWithSharedPrefix(hexDigits = 6, size = 1024): { a: Buffer; b: Buffer; prefix: string } {
  const seen = new Map<string, Buffer>();
  for (;;) {
    const blob = randomBytes(size);
    const prefix = sha256Of(blob).slice(0, hexDigits);
    const other = seen.get(prefix);
    if (other && !other.equals(blob)) return { a: other, b: blob, prefix };
    seen.set(prefix, blob);
  }
}
