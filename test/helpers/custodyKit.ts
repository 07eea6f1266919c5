/**
 * Helpers for the disk-pressure, retention, TLS and SM3 tests: a small real filesystem mounted for one test,
 * read-only looks into the catalog, HQ receipts sent over MQTT, and dockctl's JSON outputs.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import mqtt, { type IClientOptions } from 'mqtt';
import { runDockctl } from './daemon.ts';
import { signedReceipt } from './hqKeys.ts';

const run = promisify(execFile);

/**
 * Mounts a tmpfs of `sizeMiB` at `dir` (created). Throws with a clear message when that is not possible: these tests
 * need root (CI runs as root) and are not skipped.
 */
export async function mountTmpfs(dir: string, sizeMiB: number): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error(
      `this test mounts a small tmpfs to fill a real filesystem and needs root (uid ${process.getuid?.()}); run it as root (CI does)`,
    );
  await fs.mkdir(dir, { recursive: true });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0755`, 'tmpfs', dir]);
  } catch (e) {
    throw new Error(
      `cannot mount a ${sizeMiB} MiB tmpfs at ${dir} (needed for the disk-pressure test): ${(e as { stderr?: string }).stderr || (e as Error).message}`,
    );
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

export function objectPath(storeDir: string, sha256: string): string {
  return path.join(storeDir, 'objects', 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
}

/** Every object file in the store (path relative to objects/sha256), to prove there are no partial or stray objects. */
export async function listObjects(storeDir: string): Promise<string[]> {
  const root = path.join(storeDir, 'objects', 'sha256');
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(root, p));
    }
  }
  await walk(root);
  return out.sort();
}

export interface CatalogFile {
  id: number;
  sha256: string | null;
  sm3: string | null;
  state: string;
  size: number;
  filename: string;
  receipt_at: string | null;
  archived_at: string | null;
  local_deleted_at: string | null;
}

/** Reads the catalog with SQLite itself (read-only), for columns dockctl does not print. */
export function catalogRows(storeDir: string): CatalogFile[] {
  const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db
      .prepare(`SELECT id, sha256, sm3, state, size, filename, receipt_at, archived_at, local_deleted_at FROM files ORDER BY id`)
      .all() as CatalogFile[];
  } finally {
    db.close();
  }
}

export interface FileJson {
  id: number;
  sha256: string | null;
  state: string;
  size: number;
  filename: string;
  sm3?: string | null;
  [k: string]: unknown;
}

export async function filesJson(configFile: string, args: string[] = []): Promise<FileJson[]> {
  const r = await runDockctl(configFile, ['files', '--json', ...args]);
  if (r.code !== 0) throw new Error(`dockctl files failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as FileJson[];
}

export interface AlarmJson {
  code: string;
  key: string;
  message: string;
  since: string;
}
export interface RecorderJson {
  name: string;
  state: string;
  error: string | null;
  safeToUndock: boolean;
  files: { total: number; done: number };
}
export interface StatusJson {
  daemon: string;
  recorders: RecorderJson[];
  alarms: AlarmJson[];
  links: { mqtt: string; tus: string } | null;
  queue: Record<string, number>;
  disk: { freeBytes: number } | null;
}

export async function statusJson(configFile: string): Promise<{ json: StatusJson; raw: string }> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
  return { json: JSON.parse(r.stdout) as StatusJson, raw: r.stdout + r.stderr };
}

export interface AuditJson {
  seq: number;
  at: string;
  type: string;
  subject: string | null;
  data: Record<string, unknown>;
}

export async function auditJson(configFile: string): Promise<AuditJson[]> {
  const r = await runDockctl(configFile, ['audit', '--json']);
  if (r.code !== 0) throw new Error(`dockctl audit failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as AuditJson[];
}

/** HQ's receipt for one recording, sent the way HQ sends it: signed by the test HQ, QoS 1 on P/S/receipt. */
export async function publishReceipt(
  url: string,
  topic: string,
  sha256: string,
  ok = true,
  opts: IClientOptions = {},
): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
  const stationId = topic.split('/').at(-2)!;
  try {
    await client.publishAsync(topic, JSON.stringify(signedReceipt(stationId, sha256, ok)), { qos: 1 });
  } finally {
    await client.endAsync();
  }
}
