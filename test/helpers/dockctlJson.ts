/** What `dockctl … --json` prints (files, status, audit), read through dockctl itself, and waits on it. */
import { runDockctl } from './daemon.ts';
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
  uploadUrl: string | null;
  receiptAt: string | null;
  archivedAt: string | null;
  localDeletedAt: string | null;
}

export async function dockctlFiles(configFile: string, state?: string): Promise<PublicFile[]> {
  const r = await runDockctl(configFile, ['files', '--json', ...(state ? ['--state', state] : [])]);
  if (r.code !== 0) throw new Error(`dockctl files exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as PublicFile[];
}

/** Waits until each sha256 in `want` has a row in the given state; returns the rows. */
export async function waitForStates(
  configFile: string,
  want: Record<string, string>,
  what: string,
  timeoutMs = 90_000,
): Promise<PublicFile[]> {
  return waitFor(
    what,
    async () => {
      const rows = await dockctlFiles(configFile);
      return Object.entries(want).every(([sha, state]) => rows.some((f) => f.sha256 === sha && f.state === state)) ? rows : null;
    },
    timeoutMs,
  );
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

/** An audit entry as `dockctl audit --json` prints it. */
export interface AuditJson {
  seq: number;
  at: string;
  type: string;
  subject: string | null;
  data: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export async function dockctlAudit(configFile: string, since?: string): Promise<AuditJson[]> {
  const r = await runDockctl(configFile, ['audit', '--json', ...(since ? ['--since', since] : [])]);
  if (r.code !== 0) throw new Error(`dockctl audit exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as AuditJson[];
}

/** Waits until the audit trail holds at least `n` entries of `type` (optionally about `subject`); returns them. */
export async function waitForAudit(
  configFile: string,
  type: string,
  opts: { subject?: string; n?: number; timeoutMs?: number } = {},
): Promise<AuditJson[]> {
  const n = opts.n ?? 1;
  return waitFor(
    `${n} audit entr${n === 1 ? 'y' : 'ies'} ${type}${opts.subject ? ` about ${opts.subject.slice(0, 12)}` : ''}`,
    async () => {
      const rows = (await dockctlAudit(configFile)).filter(
        (e) => e.type === type && (!opts.subject || e.subject === opts.subject),
      );
      return rows.length >= n ? rows : null;
    },
    opts.timeoutMs ?? 60_000,
  );
}
