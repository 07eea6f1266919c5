import path from 'node:path';
import type { Logger } from '../log.ts';
import type { FileRow } from '../store/catalog.ts';
import { noFiles } from '../status/board.ts';
import { RecorderTile, type RecorderView } from '../status/recorderTile.ts';
import { announceSession, type Announced } from './announce.ts';
import { CopyError } from '../recorder/copyAndHash.ts';
import { SMALL_FILE } from '../recorder/copyWorkers.ts';
import { discover, type Discovery, type FoundRecording, type LeftBehindEntry } from '../recorder/discover.ts';
import type { IngestContext, SessionContext } from './ingestContext.ts';
import { ingestOne, type Outcome } from './ingestRecording.ts';
import { describeCopyFailure, describeLeftBehind, passVerdict, UNDOCKED } from './sessionVerdict.ts';

export type { IngestContext, SessionContext };
export { UNDOCKED };

/** A copy that failed is tried again after this long, doubling up to the cap (the recorder is read, never changed). */
const RETRY_BASE_MS = 2000;
const RETRY_MAX_MS = 60_000;

/** Small recordings copied at once from one recorder (see VolumeSession.copy). */
const SMALL_AT_ONCE = 4;

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
 * One docked recorder volume, for as long as it stays docked, in three steps: `scan` walks it (and the first walk
 * announces who docked, see announce.ts); `copy` takes each settled recording not yet handled in this session
 * (`copyOne`: hashed, stored, verified off the copy path); `conclude` (the finish step) says whether the officer
 * may take the recorder. Scans repeat while the volume is docked, so files that were still being written, or that
 * appear later, are taken too. An unplug ends the session; files not yet stored stay on the recorder for the next dock.
 * Safe to undock means: the walk reached everything, every recording is in the store, none is still changing.
 */
export class VolumeSession {
  readonly sessionId: number;
  private readonly tile: RecorderTile;
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
  /** This session's copies waiting for their batch to commit (see GroupCommit). */
  private readonly committing = new Set<Promise<void>>();
  /** Bytes copied in this session (the tile's bytes.done once no copy is under way). */
  private copiedBytes = 0;
  /** relPath → the bytes copied so far, for the copies under way. */
  private readonly copying = new Map<string, number>();
  private readonly slog: Logger;
  /** Set by the announce step (after the first walk). */
  private announced: Announced | null = null;
  private wasSafe = false;

  constructor(
    private readonly ctx: SessionContext,
    readonly volumePath: string,
  ) {
    this.sessionId = ctx.catalog.openSession(volumePath, ctx.now().toISOString());
    this.tile = new RecorderTile(ctx.board, {
      volume: volumePath,
      name: path.basename(volumePath),
      sessionId: this.sessionId,
      serial: null,
      officerId: null,
      officerName: null,
      state: 'identifying',
      dockedAt: ctx.now().toISOString(),
      files: noFiles(),
      bytes: { total: 0, done: 0 },
      current: null,
      safeToUndock: false,
      leftBehind: [],
      error: null,
    });
    this.slog = ctx.log.child({ volume: volumePath, session: this.sessionId });
  }

  /** The recorder's tile as the board shows it. */
  get status(): RecorderView {
    return this.tile.status;
  }

  private get settleMs(): number {
    return this.ctx.config.dock.settleSeconds * 1000;
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
    this.announced ??= announceSession(this.ctx, { id: this.sessionId, volumePath: this.volumePath, tile: this.tile }, found);
    const nowMs = this.ctx.now().getTime();
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
    const open = [...scan.ready, ...scan.settling, ...scan.retrying];
    this.tile.totals({
      files: open.length,
      bytes: open.reduce((n, r) => n + r.size, 0),
      settling: scan.settling.length,
      skipped: scan.found.skippedCount,
    });
    if (open.length || this.status.state === 'identifying') this.tile.recorderState('copying', this.status.error);
  }

  /**
   * Copies the scan's ready recordings; returns 'unplugged' when the volume went away mid-copy. Returns once every
   * copy it made is stored or has failed (copies are stored in batches, see GroupCommit). Small recordings are copied
   * up to SMALL_AT_ONCE at a time (each file's open, stat and create round trips overlap the others' copying); a large
   * one is copied alone, read from start to end as a recorder's storage reads best.
   */
  async copy(scan: Scan, signal: AbortSignal): Promise<'ok' | 'unplugged'> {
    const { commits } = this.ctx;
    const running = new Set<Promise<void>>();
    let runningLarge = false;
    let end = 'ok' as 'ok' | 'unplugged' | 'stopped';
    try {
      for (const rec of scan.ready) {
        const large = rec.size >= SMALL_FILE;
        while (running.size && (large || runningLarge || running.size >= SMALL_AT_ONCE)) await Promise.race(running);
        if (signal.aborted || end !== 'ok') break;
        const space = this.ctx.space;
        // A copy starts beside the others only if there is room for it beside what every copy under way has still
        // to write; else they finish first, and it waits for room on its own (a pause is then for lack of space,
        // never for them).
        let room = !space || (running.size > 0 && (await space.hasRoom(rec.size)));
        if (space && !room) {
          while (running.size) await Promise.race(running);
          if (signal.aborted || end !== 'ok') break;
          room = await space.waitForRoom(rec.size, signal, (reason) => {
            if (reason) commits.flush(); // what waits for its batch must not wait for room as well
            this.tile.recorderState(reason ? 'paused' : 'copying', reason);
          });
        }
        if (!room || end !== 'ok') break;
        runningLarge = large;
        const one: Promise<void> = this.copyOne(rec, signal).then((result) => {
          running.delete(one);
          if (large) runningLarge = false;
          if (result === 'unplugged') end = 'unplugged';
          else if (result === 'stopped' && end === 'ok') end = 'stopped';
        });
        running.add(one);
      }
      while (running.size) await Promise.race(running);
    } finally {
      // Also when the loop threw (e.g. the store's statfs failed): no copy of this session outlives it.
      while (running.size) await Promise.allSettled([...running]);
      // Nothing more to copy now: the last batch goes at once (the last file is never held back).
      commits.flush();
      while (this.committing.size) await Promise.allSettled([...this.committing]);
    }
    if (end === 'unplugged') return 'unplugged';
    this.tile.current(null);
    return 'ok';
  }

  /** Bytes of the copies under way, so far. */
  private bytesInFlight(): number {
    let n = 0;
    for (const done of this.copying.values()) n += done;
    return n;
  }

  /** The copy-one step: one recording into the store (or confirmed there), counted on the tile once it is stored. */
  private async copyOne(rec: FoundRecording, signal: AbortSignal): Promise<'copied' | 'failed' | 'stopped' | 'unplugged'> {
    const { tile, status } = this;
    tile.current(rec.relPath);
    const previous = this.storedIds.get(rec.relPath);
    const progress = () => tile.progress(this.copiedBytes + this.bytesInFlight());
    this.copying.set(rec.relPath, 0);
    const claim = this.ctx.space?.claim(rec.size);
    try {
      const outcome = await ingestOne(this.ctx, {
        recording: rec,
        sessionId: this.sessionId,
        sessionSerial: status.serial,
        driftMs: this.announced?.driftMs ?? null,
        linkedOfficer: this.announced?.linkedOfficer ?? null,
        supersedes: previous ?? null,
        onBytes: (n) => {
          claim?.wrote(n);
          this.copying.set(rec.relPath, n);
          progress();
        },
        signal,
      });
      this.copying.delete(rec.relPath);
      this.copiedBytes += rec.size;
      if (!('stored' in outcome)) {
        this.handledOne(rec, previous, outcome);
        return 'copied';
      }
      const stored = outcome.stored.then(
        (o) => this.handledOne(rec, previous, o),
        (e: Error) => {
          this.copiedBytes -= rec.size;
          tile.progress(this.copiedBytes);
          this.copyFailed(rec, e);
        },
      );
      this.committing.add(stored);
      void stored.finally(() => this.committing.delete(stored));
      return 'copied';
    } catch (e) {
      this.copying.delete(rec.relPath);
      progress();
      if (e instanceof CopyError && e.code === 'SOURCE_GONE') {
        // Logged for each copy that saw it (with copies side by side, up to SMALL_AT_ONCE lines): the read error is
        // the evidence of the unplug, whether or not the undock was seen first.
        tile.recorderState('unplugged', status.error);
        this.slog.warn({ err: e, done: status.files.done, total: status.files.total }, 'recorder went away mid-copy');
        tile.current(null);
        return 'unplugged';
      }
      if (signal.aborted) return 'stopped';
      this.copyFailed(rec, e as Error);
      return 'failed';
    } finally {
      claim?.end();
    }
  }

  /** A recording stored (or confirmed already stored): taken in this session, counted on the tile. */
  private handledOne(rec: FoundRecording, previous: number | undefined, outcome: Outcome): void {
    const { tile } = this;
    this.handled.set(rec.relPath, fingerprintOf(rec));
    if (outcome.fileId !== null) this.storedIds.set(rec.relPath, outcome.fileId);
    this.failures.delete(rec.relPath);
    if (outcome.state === 'known' || outcome.state === 'duplicate') tile.count('alreadyStored');
    else if (outcome.state === 'stored') tile.count('copied');
    if (outcome.verdict) this.track(outcome.verdict);
    if (previous !== undefined && outcome.fileId !== previous) {
      tile.count('superseded');
      this.slog.warn(
        { path: rec.relPath, previous, id: outcome.fileId },
        'recording changed after it was copied: copied again as a new version',
      );
    }
    tile.fileDone(this.status.bytes.done);
  }

  /** A verification's verdict, in the tile's counters (a probe that could not run gives none). */
  private track(verdict: Promise<FileRow>): void {
    const p = verdict.then(
      (f) => {
        const counters: ('rejected' | 'needsAnnotation' | 'damaged')[] = [];
        if (f.state === 'rejected') counters.push('rejected');
        if (f.state === 'needs-annotation') counters.push('needsAnnotation');
        if (f.integrity === 'damaged') counters.push('damaged');
        this.tile.count(...counters);
      },
      (e) => this.slog.error({ err: e }, 'verification failed'),
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
    this.failures.set(rec.relPath, { reason, attempts, retryAtMs: this.ctx.now().getTime() + delay, hex: rec.relPathHex });
    this.slog.error(
      { path: rec.relPath, code, err: e, attempts, retryInMs: delay },
      'recording not copied: it stays on the recorder and is tried again',
    );
  }

  /**
   * The finish step, after a scan (and its copies): what the officer is told (see passVerdict). Left-behind
   * recordings raise RECORDING_LEFT_BEHIND; the first time the recorder is safe, recorder.safe-to-undock is sent.
   */
  conclude(scan: Scan, signal: AbortSignal): RecorderView['state'] {
    const { tile, status, ctx } = this;
    const left: LeftBehindEntry[] = [...scan.found.leftBehind];
    for (const [p, f] of this.failures) left.push({ path: p, reason: f.reason, ...(f.hex ? { pathHex: f.hex } : {}) });
    tile.leftBehind(left, scan.settling.length);
    this.recordLeftBehind(left);
    const verdict = passVerdict({
      state: status.state,
      error: status.error,
      left,
      settling: scan.settling.length,
      retrying: scan.retrying.length,
      copied: scan.ready.every((r) => this.handled.get(r.relPath) === fingerprintOf(r) || this.failures.has(r.relPath)),
      signal,
      notStored: status.files.total - status.files.done,
      verifying: this.verifying.size > 0,
    });
    tile.recorderState(verdict.state, verdict.error);
    if (status.safeToUndock && !this.wasSafe) this.announceSafe();
    this.wasSafe = status.safeToUndock;
    const alarmKey = `left:${this.volumePath}`;
    if (left.length && status.state !== 'unplugged') {
      ctx.board.raise('RECORDING_LEFT_BEHIND', alarmKey, `${status.serial ?? status.name}: ${describeLeftBehind(left)}`);
    } else if (!left.length) ctx.board.clear(alarmKey);
    ctx.catalog.updateSession(this.sessionId, {
      result: status.state,
      files_copied: status.files.copied,
      files_known: status.files.alreadyStored,
      error: status.error,
    });
    return status.state;
  }

  private announceSafe(): void {
    const { status, ctx } = this;
    const ms = ctx.now().getTime() - Date.parse(status.dockedAt);
    ctx.catalog.enqueue('event', {
      type: 'recorder.safe-to-undock',
      at: ctx.now().toISOString(),
      volume: this.volumePath,
      sessionId: this.sessionId,
      deviceSerial: status.serial,
      files: status.files.done,
      bytes: status.bytes.done,
      msSinceDocked: ms,
    });
    this.slog.info({ msSinceDocked: ms, files: status.files.done, bytes: status.bytes.done }, 'recorder safe to undock');
  }

  private recordLeftBehind(left: LeftBehindEntry[]): void {
    const fresh = left.filter((l) => !this.leftRecorded.has(`${l.path}\n${l.reason}`));
    if (!fresh.length) return;
    const { catalog } = this.ctx;
    catalog.leftBehind(this.sessionId, this.status.serial ?? this.volumePath, fresh);
    for (const l of fresh) this.leftRecorded.add(`${l.path}\n${l.reason}`);
    for (const l of fresh) this.slog.error({ path: l.path, reason: l.reason }, 'recording left behind on the recorder');
  }

  /** When to look again: soon while something settles or waits for a retry, else every dock.rescanSeconds. */
  nextScanDelayMs(scan: Scan): number {
    const rescan = this.ctx.config.dock.rescanSeconds * 1000;
    if (!scan.settling.length && !scan.retrying.length) return rescan;
    const nowMs = this.ctx.now().getTime();
    const waits = [
      ...scan.settling.map((r) => this.observed.get(r.relPath)!.sinceMs + this.settleMs - nowMs),
      ...scan.retrying.map((r) => this.failures.get(r.relPath)!.retryAtMs - nowMs),
    ];
    return Math.max(100, Math.min(rescan, ...waits));
  }

  /**
   * Forgets that a recording was taken in this session, so that a new file appearing at that path is taken again
   * (the wipe gate calls it after deleting the archived recording there).
   */
  forget(relPath: string): void {
    this.handled.delete(relPath);
  }

  /** Marks the session ended in the catalog. */
  close(undocked: boolean): void {
    this.ctx.catalog.updateSession(this.sessionId, {
      undocked_at: undocked ? this.ctx.now().toISOString() : undefined,
      result: this.status.state,
    });
  }
}
