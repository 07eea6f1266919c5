import path from 'node:path';
import type { Config, DeviceEntry } from '../config.ts';
import type { Logger } from '../log.ts';
import type { FileRow } from '../store/catalog.ts';
import { noFiles, type RecorderStatus, type StatusBoard } from '../status/board.ts';
import type { ClassifyDeps } from './classify.ts';
import { CopyError } from './copyAndHash.ts';
import { discover, type Discovery, type FoundRecording, type LeftBehindEntry } from './discover.ts';
import { parseRecordingName } from './fileName.ts';
import type { RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import { RecorderWipe } from '../custody/recorderWipe.ts';
import { ingestOne } from './ingestRecording.ts';
import type { IngestDeps, SessionDeps } from './ingestContext.ts';

export type { IngestDeps, SessionDeps };

/** How many skipped entries the recorder.docked event and the catalog name one by one (the rest are counted). */
const SKIPPED_ANNOUNCED = 100;
/** A copy that failed is tried again after this long, doubling up to the cap (the recorder is read, never changed). */
const RETRY_BASE_MS = 2000;
const RETRY_MAX_MS = 60_000;

function mostCommon(values: (string | null | undefined)[]): string | null {
  const counts = new Map<string, number>();
  for (const v of values) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: string | null = null;
  for (const [v, n] of counts) if (!best || n > counts.get(best)!) best = v;
  return best;
}

/** Who docked: the serial most file names carry (else the volume's name when it looks like one), and its officer. */
export function identifyRecorder(
  volumeName: string,
  recordings: FoundRecording[],
  devices: DeviceEntry[],
): { serial: string | null; officerId: string | null; officerName: string | null } {
  const names = recordings.map((r) => parseRecordingName(path.basename(r.relPath)));
  let serial = mostCommon(names.map((n) => n?.serial));
  if (!serial && devices.some((d) => d.serial === volumeName)) serial = volumeName;
  if (!serial && /^[A-Za-z0-9]{7}$/.test(volumeName)) serial = volumeName;
  const device = serial ? devices.find((d) => d.serial === serial) : undefined;
  const officerId = device?.officerId ?? mostCommon(names.map((n) => n?.officerId));
  const officerName = device?.officerName ?? devices.find((d) => d.officerId === officerId)?.officerName ?? null;
  return { serial, officerId, officerName };
}

/** The abort reason of a session whose volume left the mount root (as opposed to dockd stopping). */
export const UNDOCKED = 'undocked';

const fingerprintOf = (r: FoundRecording) => `${r.size}:${r.mtimeMs}`;

/** What one walk of the volume found to do. */
export interface Scan {
  found: Discovery;
  /** Recordings not yet taken in this session whose size and mtime have settled: copy them now. */
  ready: FoundRecording[];
  /** Recordings still changing (being written): taken once they settle. */
  settling: FoundRecording[];
  /** Recordings whose last copy failed, waiting for their retry. */
  retrying: FoundRecording[];
}

/**
 * One docked recorder volume, for as long as it stays docked. Each scan walks it; each copy takes, hashes, verifies
 * and classifies every settled recording not yet handled in this session; `conclude` says whether the officer may
 * take the recorder. Scans repeat while the volume is docked, so files that were still being written, or that appear
 * later, are taken too. An unplug ends the session; files not yet stored stay on the recorder for the next dock.
 * Safe to undock means: the walk reached everything, every recording is in the store, none is still changing.
 */
export class VolumeSession {
  readonly status: RecorderStatus;
  readonly sessionId: number;
  /** relPath → the size:mtime last stored (or confirmed) in this session, and its catalog id. */
  private readonly handled = new Map<string, string>();
  private readonly storedIds = new Map<string, number>();
  /** relPath → the size:mtime first seen, and when (a recording is copied once it has stopped changing). */
  private readonly observed = new Map<string, { fp: string; sinceMs: number }>();
  /** relPath → why its copy failed, how often, and when to try again. */
  private readonly failures = new Map<string, { reason: string; attempts: number; retryAtMs: number; hex: string | null }>();
  /** Left-behind entries already written to the catalog (path + reason), so a rescan does not repeat them. */
  private readonly leftRecorded = new Set<string>();
  /** Verifications of this session's copies still running (the recorder is safe; its tile says verifying). */
  private readonly verifying = new Set<Promise<unknown>>();
  private readonly slog: Logger;
  private announced = false;
  private wasSafe = false;
  private driftMs: number | null = null;
  /** The officer the recorder named on its control channel (+UID), when it has one. */
  private linkedOfficer: { officerId: string; officerName: string | null } | null = null;

  constructor(
    private readonly deps: SessionDeps,
    readonly volumePath: string,
  ) {
    this.sessionId = deps.catalog.openSession(volumePath, deps.now().toISOString());
    this.status = {
      volume: volumePath,
      name: path.basename(volumePath),
      sessionId: this.sessionId,
      serial: null,
      officerId: null,
      officerName: null,
      state: 'identifying',
      dockedAt: deps.now().toISOString(),
      files: noFiles(),
      bytes: { total: 0, done: 0 },
      current: null,
      safeToUndock: false,
      leftBehind: [],
      error: null,
    };
    deps.board.upsertRecorder(this.status);
    this.slog = deps.log.child({ volume: volumePath, session: this.sessionId });
  }

  private get settleMs(): number {
    return this.deps.config.dock.settleSeconds * 1000;
  }

  /**
   * Walks the volume and sorts its recordings into ready, settling and retrying. Returns null when the volume is gone
   * (the undock follows). A root that cannot be read is left behind as a whole: never safe.
   */
  async scan(): Promise<Scan | null> {
    let found: Discovery;
    try {
      found = await discover(this.volumePath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      found = {
        recordings: [],
        skipped: [],
        skippedCount: 0,
        leftBehind: [{ path: '.', reason: `cannot read the recorder volume: ${code ?? (e as Error).message}` }],
      };
    }
    if (!this.announced) this.announce(found);
    const nowMs = this.deps.now().getTime();
    const scan: Scan = { found, ready: [], settling: [], retrying: [] };
    const present = new Set<string>();
    for (const r of found.recordings) {
      present.add(r.relPath);
      const fp = fingerprintOf(r);
      if (this.handled.get(r.relPath) === fp) continue;
      const seen = this.observed.get(r.relPath);
      if (!seen || seen.fp !== fp) this.observed.set(r.relPath, { fp, sinceMs: nowMs });
      const since = this.observed.get(r.relPath)!.sinceMs;
      // Settled: unchanged for settleSeconds, or last written longer ago than that (a recorder's files are old).
      if (nowMs - since < this.settleMs && nowMs - r.mtimeMs < this.settleMs) {
        scan.settling.push(r);
        continue;
      }
      const failed = this.failures.get(r.relPath);
      if (failed && failed.retryAtMs > nowMs) {
        scan.retrying.push(r);
        continue;
      }
      scan.ready.push(r);
    }
    for (const p of this.failures.keys()) if (!present.has(p)) this.failures.delete(p);
    this.updateTotals(scan);
    return scan;
  }

  private updateTotals(scan: Scan): void {
    const { status } = this;
    const open = [...scan.ready, ...scan.settling, ...scan.retrying];
    status.files.total = status.files.done + open.length;
    status.bytes.total = status.bytes.done + open.reduce((n, r) => n + r.size, 0);
    status.files.settling = scan.settling.length;
    status.files.skipped = scan.found.skippedCount;
    if (open.length || status.state === 'identifying') {
      status.state = 'copying';
      status.safeToUndock = false;
    }
    this.deps.board.upsertRecorder(status);
  }

  private announce(found: Discovery): void {
    const { deps, status, volumePath } = this;
    const { catalog } = deps;
    const linked = deps.identityFor?.(volumePath);
    const who = linked
      ? {
          serial: linked.serial,
          officerId: linked.officerId,
          officerName: linked.officerName ?? deps.config.devices.find((d) => d.serial === linked.serial)?.officerName ?? null,
        }
      : identifyRecorder(status.name, found.recordings, deps.config.devices);
    Object.assign(status, who);
    if (linked) Object.assign(status, { battery: linked.battery, driftMs: linked.driftMs, bay: linked.bay });
    const place = linked ?? deps.placeFor?.(volumePath);
    if (place) status.bay = place.bay;
    this.driftMs = linked?.driftMs ?? null;
    this.linkedOfficer = linked ? { officerId: linked.officerId, officerName: who.officerName } : null;
    const listed = found.skipped.slice(0, SKIPPED_ANNOUNCED);
    const more = found.skippedCount - listed.length;
    const skipped = listed.map((s) => ({ path: s.relPath, reason: s.reason }));
    if (more > 0) skipped.push({ path: '…', reason: `${more} more entries skipped (not recordings); not listed one by one` });
    catalog.recorderDocked(
      this.sessionId,
      {
        device_serial: who.serial,
        officer_id: who.officerId,
        files_found: found.recordings.length,
        skipped: found.skippedCount,
        battery: linked?.battery ?? null,
        drift_ms: linked?.driftMs ?? null,
        bay: place?.bay ?? null,
        port_path: place?.portPath ?? null,
      },
      skipped,
      {
        type: 'recorder.docked',
        at: deps.now().toISOString(),
        volume: volumePath,
        sessionId: this.sessionId,
        deviceSerial: who.serial,
        officerId: who.officerId,
        officerName: who.officerName,
        bay: place?.bay ?? null,
        battery: linked?.battery ?? null,
        clockDriftMs: linked?.driftMs ?? null,
        files: found.recordings.length,
        bytes: found.recordings.reduce((n, r) => n + r.size, 0),
        skipped: listed,
        skippedCount: found.skippedCount,
        leftBehind: found.leftBehind,
      },
    );
    this.slog.info(
      {
        serial: who.serial,
        officer: who.officerId,
        files: found.recordings.length,
        skipped: found.skippedCount,
        leftBehind: found.leftBehind.length,
      },
      'recorder docked',
    );
    for (const s of listed) this.slog.warn({ path: s.relPath, reason: s.reason }, 'skipped entry on recorder');
    this.announced = true;
  }

  /** Copies the scan's ready recordings; returns 'unplugged' when the volume went away mid-copy. */
  async copy(scan: Scan, signal: AbortSignal): Promise<'ok' | 'unplugged'> {
    const { deps, status, volumePath } = this;
    const { board } = deps;
    for (const rec of scan.ready) {
      if (signal.aborted) break;
      if (
        deps.space &&
        !(await deps.space.waitForRoom(rec.size, signal, (reason) => {
          status.state = reason ? 'paused' : 'copying';
          status.error = reason;
          board.upsertRecorder(status);
        }))
      )
        break;
      status.current = rec.relPath;
      const bytesBefore = status.bytes.done;
      board.patchRecorder(volumePath, {});
      try {
        const previous = this.storedIds.get(rec.relPath);
        const outcome = await ingestOne(deps, rec, {
          sessionId: this.sessionId,
          sessionSerial: status.serial,
          driftMs: this.driftMs,
          linkedOfficer: this.linkedOfficer,
          supersedes: previous ?? null,
          onBytes: (n) => {
            status.bytes.done = bytesBefore + n;
            board.patchRecorder(volumePath, {});
          },
          signal,
        });
        this.handled.set(rec.relPath, fingerprintOf(rec));
        if (outcome.fileId !== null) this.storedIds.set(rec.relPath, outcome.fileId);
        this.failures.delete(rec.relPath);
        this.count(outcome);
        if (outcome.verdict) this.track(outcome.verdict);
        if (previous !== undefined && outcome.fileId !== previous) {
          status.files.superseded++;
          this.slog.warn(
            { path: rec.relPath, previous, id: outcome.fileId },
            'recording changed after it was copied: copied again as a new version',
          );
        }
      } catch (e) {
        status.bytes.done = bytesBefore;
        if (e instanceof CopyError && e.code === 'SOURCE_GONE') {
          status.state = 'unplugged';
          this.slog.warn({ err: e.message, done: status.files.done, total: status.files.total }, 'recorder went away mid-copy');
          status.current = null;
          return 'unplugged';
        }
        if (signal.aborted) break;
        this.copyFailed(rec, e as Error);
        continue;
      }
      status.bytes.done = bytesBefore + rec.size;
      status.files.done++;
      board.patchRecorder(volumePath, {});
    }
    status.current = null;
    return 'ok';
  }

  private count(outcome: { state: string; integrity: string | null }): void {
    const f = this.status.files;
    if (outcome.state === 'known' || outcome.state === 'duplicate') f.alreadyStored++;
    else if (outcome.state === 'stored') f.copied++;
  }

  /** A verification's verdict, in the tile's counters (a probe that could not run gives none). */
  private countVerdict(outcome: { state: string; integrity: string | null }): void {
    const f = this.status.files;
    if (outcome.state === 'rejected') f.rejected++;
    if (outcome.state === 'needs-annotation') f.needsAnnotation++;
    if (outcome.integrity === 'damaged') f.damaged++;
  }

  private track(verdict: Promise<FileRow>): void {
    const p = verdict.then(
      (f) => {
        this.countVerdict({ state: f.state, integrity: f.integrity });
        this.deps.board.patchRecorder(this.volumePath, {});
      },
      (e) => this.slog.error({ err: (e as Error).message }, 'verification failed'),
    );
    this.verifying.add(p);
    void p.finally(() => this.verifying.delete(p));
  }

  /** Resolves when this session's copies are all verified (at once when none is running, or when `signal` aborts). */
  async verified(signal: AbortSignal): Promise<void> {
    const aborted = new Promise<void>((r) => {
      if (signal.aborted) r();
      else signal.addEventListener('abort', () => r(), { once: true });
    });
    while (this.verifying.size && !signal.aborted) await Promise.race([Promise.allSettled([...this.verifying]), aborted]);
  }

  private copyFailed(rec: FoundRecording, e: Error): void {
    const code = (e as { code?: string }).code;
    const prev = this.failures.get(rec.relPath);
    const attempts = (prev?.attempts ?? 0) + 1;
    // A file that changed under the copy is still being written: it waits to settle again, not as a failure.
    if (code === 'SOURCE_CHANGED') {
      this.observed.delete(rec.relPath);
      return;
    }
    const reason = describeCopyFailure(e);
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempts - 1));
    this.failures.set(rec.relPath, { reason, attempts, retryAtMs: this.deps.now().getTime() + delay, hex: rec.relPathHex });
    this.slog.error(
      { path: rec.relPath, code, err: e.message, attempts, retryInMs: delay },
      'recording not copied: it stays on the recorder and is tried again',
    );
  }

  /**
   * After a scan (and its copies): what the officer is told. Safe only when nothing is left behind, nothing is still
   * changing or waiting for a retry, and the walk was complete. Left-behind recordings raise RECORDING_LEFT_BEHIND.
   */
  conclude(scan: Scan, signal: AbortSignal): RecorderStatus['state'] {
    const { status, deps } = this;
    const left: LeftBehindEntry[] = [...scan.found.leftBehind];
    for (const [p, f] of this.failures) left.push({ path: p, reason: f.reason, ...(f.hex ? { pathHex: f.hex } : {}) });
    status.leftBehind = left;
    status.files.settling = scan.settling.length;
    this.recordLeftBehind(left);
    const waiting = scan.settling.length + scan.retrying.length;
    const copied = scan.ready.every((r) => this.handled.get(r.relPath) === fingerprintOf(r) || this.failures.has(r.relPath));
    const complete = copied && !waiting && !left.length && status.state !== 'unplugged';
    if (!complete && (status.state === 'unplugged' || (signal.aborted && signal.reason === UNDOCKED))) {
      status.state = 'unplugged';
      status.error = `recorder removed during copy; ${Math.max(0, status.files.total - status.files.done)} file(s) not yet stored stay on it: dock it again`;
    } else if (signal.aborted && !complete) {
      status.state = 'error';
      status.error = 'ingest stopped before it finished (dockd is stopping)';
    } else if (scan.settling.length) {
      // Still being written: the session goes on (what is left behind is listed and alarmed all the same).
      status.state = 'copying';
      status.error = left.length ? describeLeftBehind(left) : null;
    } else if (left.length) {
      status.state = 'error';
      status.error = describeLeftBehind(left);
    } else if (waiting) {
      status.state = 'copying';
      status.error = null;
    } else if (status.state !== 'paused') {
      // Every recording is durable with its hash: safe. Verification may still run, off the officer's time.
      status.state = this.verifying.size ? 'verifying' : 'done';
      status.error = null;
    }
    status.safeToUndock = status.state === 'done' || status.state === 'verifying';
    if (status.safeToUndock && !this.wasSafe) {
      const ms = deps.now().getTime() - Date.parse(status.dockedAt);
      deps.catalog.enqueue('event', {
        type: 'recorder.safe-to-undock',
        at: deps.now().toISOString(),
        volume: this.volumePath,
        sessionId: this.sessionId,
        deviceSerial: status.serial,
        files: status.files.done,
        bytes: status.bytes.done,
        msSinceDocked: ms,
      });
      this.slog.info({ msSinceDocked: ms, files: status.files.done, bytes: status.bytes.done }, 'recorder safe to undock');
    }
    this.wasSafe = status.safeToUndock;
    const alarmKey = `left:${this.volumePath}`;
    if (left.length && status.state !== 'unplugged') {
      deps.board.raise('RECORDING_LEFT_BEHIND', alarmKey, `${status.serial ?? status.name}: ${describeLeftBehind(left)}`);
    } else if (!left.length) deps.board.clear(alarmKey);
    deps.board.upsertRecorder(status);
    deps.catalog.updateSession(this.sessionId, {
      result: status.state,
      files_copied: status.files.copied,
      files_known: status.files.alreadyStored,
      error: status.error,
    });
    return status.state;
  }

  private recordLeftBehind(left: LeftBehindEntry[]): void {
    const fresh = left.filter((l) => !this.leftRecorded.has(`${l.path}\n${l.reason}`));
    if (!fresh.length) return;
    const { catalog } = this.deps;
    catalog.leftBehind(this.sessionId, this.status.serial ?? this.volumePath, fresh);
    for (const l of fresh) this.leftRecorded.add(`${l.path}\n${l.reason}`);
    for (const l of fresh) this.slog.error({ path: l.path, reason: l.reason }, 'recording left behind on the recorder');
  }

  /** When to look again: soon while something settles or waits for a retry, else every dock.rescanSeconds. */
  nextScanDelayMs(scan: Scan): number {
    const rescan = this.deps.config.dock.rescanSeconds * 1000;
    if (!scan.settling.length && !scan.retrying.length) return rescan;
    const nowMs = this.deps.now().getTime();
    const waits = [
      ...scan.settling.map((r) => this.observed.get(r.relPath)!.sinceMs + this.settleMs - nowMs),
      ...scan.retrying.map((r) => this.failures.get(r.relPath)!.retryAtMs - nowMs),
    ];
    return Math.max(100, Math.min(rescan, ...waits));
  }

  private wipe: RecorderWipe | null = null;

  /** Wipe gate (dock.wipe: after-archive), see daemon/custody/recorderWipe.ts; returns how many were deleted. */
  wipeArchived(signal: AbortSignal): Promise<number> {
    this.wipe ??= new RecorderWipe(this.deps, {
      volumePath: this.volumePath,
      sessionId: this.sessionId,
      forget: (p) => this.handled.delete(p),
    });
    return this.wipe.run(signal, this.status.serial);
  }

  /** Marks the session ended in the catalog. */
  close(undocked: boolean): void {
    this.deps.catalog.updateSession(this.sessionId, {
      undocked_at: undocked ? this.deps.now().toISOString() : undefined,
      result: this.status.state,
    });
  }
}

/** A copy failure in words, for the officer and the admin. */
function describeCopyFailure(e: Error): string {
  const errno = (e as { cause?: NodeJS.ErrnoException }).cause?.code;
  if (errno === 'EACCES' || errno === 'EPERM') return `cannot read (permission denied: ${errno})`;
  if (errno) return `cannot read (${errno})`;
  return e.message;
}

/** "2 recording(s) left behind …: a (why); b (why)", at most five named. */
export function describeLeftBehind(left: LeftBehindEntry[]): string {
  const named = left
    .slice(0, 5)
    .map((l) => `${l.path === '.' ? '(volume root)' : l.path} (${l.reason})`)
    .join('; ');
  const more = left.length > 5 ? `; … ${left.length - 5} more` : '';
  return `${left.length} 个文件未采集 recording(s) left behind on the recorder, not safe to undock: ${named}${more}`;
}
