import fs from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import type { Config, DeviceEntry } from '../config.ts';
import type { Logger } from '../log.ts';
import type { SourceSighting } from '../store/catalog.ts';
import type { RecorderStatus, StatusBoard } from '../status/board.ts';
import { classifyStored, type ClassifyDeps } from './classify.ts';
import { CopyError, copyAndHash } from './copyAndHash.ts';
import { discover, type FoundRecording } from './discover.ts';
import { sleep } from '../sleep.ts';
import { parseRecordingName } from './fileName.ts';
import type { RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import { RecorderWipe } from '../custody/recorderWipe.ts';
import { buildMetadata, parseSidecar, type Sidecar } from './metadata.ts';

export interface IngestDeps extends ClassifyDeps {
  config: Config;
  log: Logger;
  board: StatusBoard;
  now: () => Date;
  onReady: () => void;
  /** Disk guard: resolves when a copy of `bytes` fits above the reserve (false: aborted). */
  space?: { waitForRoom(bytes: number, signal: AbortSignal, onWait: (reason: string | null) => void): Promise<boolean> };
  /** Who a volume belongs to, when its recorder identified itself on a control channel (paired by port or name). */
  identityFor?: (volumePath: string) => { serial: string; officerId: string; officerName: string | null; battery: number | null; driftMs: number | null; bay: string | null; portPath: string | null } | undefined;
  /** Where a volume dockd mounted itself (USB) sits: its bay (dock.bays) and port path, for a recorder with no control channel. */
  placeFor?: (volumePath: string) => { bay: string | null; portPath: string | null } | undefined;
  /** How the wipe gate deletes from this recorder's storage (control channel, read-write remount); default: the directory itself. */
  volumeFor?: (volumePath: string) => RecorderVolume;
}

const MAX_SIDECAR = 64 * 1024;

async function readSidecar(p: string): Promise<{ sidecar: Sidecar; error?: string }> {
  let h: fs.FileHandle;
  try { h = await fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); }
  catch (e) { return { sidecar: {}, error: `cannot open sidecar: ${(e as NodeJS.ErrnoException).code}` }; }
  try {
    const st = await h.stat();
    if (!st.isFile() || st.size > MAX_SIDECAR) return { sidecar: {}, error: `sidecar larger than ${MAX_SIDECAR} bytes` };
    return parseSidecar((await h.readFile()).toString('utf8').replace(/^\uFEFF/, ''));
  } finally { await h.close(); }
}

function mostCommon(values: (string | null | undefined)[]): string | null {
  const counts = new Map<string, number>();
  for (const v of values) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: string | null = null;
  for (const [v, n] of counts) if (!best || n > counts.get(best)!) best = v;
  return best;
}

/** Who docked: the serial most file names carry (else the volume's name when it looks like one), and its officer. */
export function identifyRecorder(volumeName: string, recordings: FoundRecording[], devices: DeviceEntry[]): { serial: string | null; officerId: string | null; officerName: string | null } {
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

/**
 * One docked recorder volume, for as long as it stays docked. Each pass walks it, copies and hashes every recording
 * not yet handled in this session, verifies and classifies it, and keeps the status board current. Passes repeat
 * while the volume is docked, so files that were still being written, or that appear later, are taken too. An unplug
 * ends the session; files not yet stored stay on the recorder and are taken on the next dock.
 */
export class VolumeSession {
  readonly status: RecorderStatus;
  readonly sessionId: number;
  private readonly handled = new Map<string, string>();
  private readonly slog: Logger;
  private announced = false;
  private driftMs: number | null = null;
  /** The officer the recorder named on its control channel (+UID), when it has one. */
  private linkedOfficer: { officerId: string; officerName: string | null } | null = null;

  constructor(private readonly deps: IngestDeps, readonly volumePath: string) {
    this.sessionId = deps.catalog.openSession(volumePath, deps.now().toISOString());
    this.status = {
      volume: volumePath, name: path.basename(volumePath), sessionId: this.sessionId, serial: null, officerId: null, officerName: null,
      state: 'identifying', dockedAt: deps.now().toISOString(),
      files: { total: 0, done: 0, copied: 0, alreadyStored: 0, rejected: 0, needsAnnotation: 0, skipped: 0 }, bytes: { total: 0, done: 0 },
      current: null, safeToUndock: false, error: null,
    };
    deps.board.upsertRecorder(this.status);
    this.slog = deps.log.child({ volume: volumePath, session: this.sessionId });
  }

  /** Recordings on the volume that this session has not taken yet (new, or changed since). */
  async pending(): Promise<{ todo: FoundRecording[]; found: Awaited<ReturnType<typeof discover>> }> {
    const found = await discover(this.volumePath);
    return { todo: found.recordings.filter((r) => this.handled.get(r.relPath) !== fingerprintOf(r)), found };
  }

  /** Waits until two walks `settleMs` apart list the same recordings with the same sizes and mtimes (bounded). */
  async settle(signal: AbortSignal, maxWaitMs = 30_000): Promise<void> {
    const settleMs = this.deps.config.dock.settleMs;
    const until = Date.now() + maxWaitMs;
    let last = '';
    while (!signal.aborted && Date.now() < until) {
      const found = await discover(this.volumePath).catch(() => null);
      const print = found ? found.recordings.map((r) => `${r.relPath}|${fingerprintOf(r)}`).join('\n') : 'gone';
      if (print === last) return;
      last = print;
      await sleep(settleMs, signal);
    }
  }

  /** One pass over the volume; returns the recorder state after it. */
  async pass(signal: AbortSignal): Promise<RecorderStatus['state']> {
    const { deps } = this;
    const { catalog, board } = deps;
    const status = this.status;
    const volumePath = this.volumePath;
    let todo: FoundRecording[];
    let found;
    try { ({ todo, found } = await this.pending()); }
    catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      status.state = code === 'ENOENT' ? 'unplugged' : 'error';
      status.error = `cannot read the recorder volume: ${(e as Error).message}`;
      board.upsertRecorder(status);
      catalog.updateSession(this.sessionId, { result: status.state, error: status.error });
      return status.state;
    }
    if (!this.announced) {
      const linked = deps.identityFor?.(volumePath);
      const who = linked
        ? { serial: linked.serial, officerId: linked.officerId, officerName: linked.officerName ?? deps.config.devices.find((d) => d.serial === linked.serial)?.officerName ?? null }
        : identifyRecorder(status.name, found.recordings, deps.config.devices);
      Object.assign(status, who);
      if (linked) Object.assign(status, { battery: linked.battery, driftMs: linked.driftMs, bay: linked.bay });
      const place = linked ?? deps.placeFor?.(volumePath);
      if (place) status.bay = place.bay;
      this.driftMs = linked?.driftMs ?? null;
      this.linkedOfficer = linked ? { officerId: linked.officerId, officerName: who.officerName } : null;
      status.files.skipped = found.skipped.length;
      catalog.tx(() => {
        catalog.updateSession(this.sessionId, {
          device_serial: who.serial, officer_id: who.officerId, files_found: found.recordings.length, skipped: found.skipped.length,
          battery: linked?.battery ?? null, drift_ms: linked?.driftMs ?? null, bay: place?.bay ?? null, port_path: place?.portPath ?? null,
        });
        for (const s of found.skipped) catalog.recordSkipped(this.sessionId, s.relPath, s.reason);
        catalog.enqueue('event', {
          type: 'recorder.docked', at: deps.now().toISOString(), volume: volumePath, sessionId: this.sessionId, deviceSerial: who.serial,
          officerId: who.officerId, officerName: who.officerName, bay: place?.bay ?? null, battery: linked?.battery ?? null, clockDriftMs: linked?.driftMs ?? null, files: found.recordings.length, bytes: found.recordings.reduce((n, r) => n + r.size, 0), skipped: found.skipped,
        });
      });
      this.slog.info({ serial: who.serial, officer: who.officerId, files: found.recordings.length, skipped: found.skipped.length }, 'recorder docked');
      for (const s of found.skipped) this.slog.warn({ path: s.relPath, reason: s.reason }, 'skipped entry on recorder');
      this.announced = true;
    }
    if (!todo.length && status.state !== 'identifying') return status.state;

    status.state = 'copying';
    status.safeToUndock = false;
    status.error = null;
    status.files.total = status.files.done + todo.length;
    status.bytes.total = status.bytes.done + todo.reduce((n, r) => n + r.size, 0);
    board.upsertRecorder(status);

    let failed = 0;
    for (const rec of todo) {
      if (signal.aborted) break;
      if (deps.space && !(await deps.space.waitForRoom(rec.size, signal, (reason) => {
        status.state = reason ? 'paused' : 'copying';
        status.error = reason;
        board.upsertRecorder(status);
      }))) break;
      status.current = rec.relPath;
      const bytesBefore = status.bytes.done;
      board.patchRecorder(volumePath, {});
      try {
        const outcome = await ingestOne(deps, rec, this.sessionId, status.serial, this.driftMs, this.linkedOfficer, (n) => { status.bytes.done = bytesBefore + n; board.patchRecorder(volumePath, {}); }, signal);
        this.handled.set(rec.relPath, fingerprintOf(rec));
        if (outcome.state === 'known' || outcome.state === 'duplicate') status.files.alreadyStored++;
        else status.files.copied++;
        if (outcome.state === 'rejected') status.files.rejected++;
        if (outcome.state === 'needs-annotation') status.files.needsAnnotation++;
        board.clear(`ingest:${volumePath}:${rec.relPath}`);
      } catch (e) {
        status.bytes.done = bytesBefore;
        if (e instanceof CopyError && e.code === 'SOURCE_GONE') {
          status.state = 'unplugged';
          status.error = `recorder removed during copy; ${status.files.total - status.files.done} file(s) not yet stored stay on it: dock it again`;
          this.slog.warn({ err: e.message, done: status.files.done, total: status.files.total }, 'recorder went away mid-copy');
          break;
        }
        if (signal.aborted) break;
        failed++;
        const msg = (e as Error).message;
        const code = (e as { code?: string }).code;
        this.slog.error({ path: rec.relPath, code, err: msg }, 'file not ingested (it stays on the recorder; retried on the next pass)');
        if (code !== 'SOURCE_CHANGED') board.raise('INGEST_FAILED', `ingest:${volumePath}:${rec.relPath}`, `${status.serial ?? status.name} ${rec.relPath}: ${msg}`);
        continue;
      }
      status.bytes.done = bytesBefore + rec.size;
      status.files.done++;
      board.patchRecorder(volumePath, {});
    }
    status.current = null;
    if (status.state !== 'unplugged') {
      if (signal.aborted && signal.reason === UNDOCKED) {
        // The watcher saw the volume go before a read failed: still an unplug, not a stop of dockd.
        status.state = 'unplugged';
        status.error = `recorder removed during copy; ${status.files.total - status.files.done} file(s) not yet stored stay on it: dock it again`;
      } else if (signal.aborted) { status.state = 'error'; status.error = 'ingest stopped before it finished (dockd is stopping)'; }
      else if (failed) { status.state = 'error'; status.error = `${failed} file(s) could not be copied yet and stay on the recorder`; }
      else { status.state = 'done'; status.safeToUndock = true; }
    }
    board.upsertRecorder(status);
    catalog.updateSession(this.sessionId, { result: status.state, files_copied: status.files.copied, files_known: status.files.alreadyStored, error: status.error });
    this.slog.info({ state: status.state, copied: status.files.copied, alreadyStored: status.files.alreadyStored, rejected: status.files.rejected, needsAnnotation: status.files.needsAnnotation, failed }, 'recorder ingest finished');
    return status.state;
  }

  private wipe: RecorderWipe | null = null;

  /** Wipe gate (dock.wipe: after-archive), see daemon/custody/recorderWipe.ts; returns how many were deleted. */
  wipeArchived(signal: AbortSignal): Promise<number> {
    this.wipe ??= new RecorderWipe(this.deps, { volumePath: this.volumePath, sessionId: this.sessionId, forget: (p) => this.handled.delete(p) });
    return this.wipe.run(signal, this.status.serial);
  }

  /** Marks the session ended in the catalog. */
  close(undocked: boolean): void {
    this.deps.catalog.updateSession(this.sessionId, { undocked_at: undocked ? this.deps.now().toISOString() : undefined, result: this.status.state });
  }
}


type Outcome = { state: 'known' | 'rejected' | 'needs-annotation' | 'ready' | 'duplicate' | string };

async function ingestOne(deps: IngestDeps, rec: FoundRecording, sessionId: number, sessionSerial: string | null, driftMs: number | null,
  linkedOfficer: { officerId: string; officerName: string | null } | null, onBytes: (n: number) => void, signal: AbortSignal): Promise<Outcome> {
  const { catalog, objects } = deps;
  const parsed = parseRecordingName(path.basename(rec.relPath));
  const deviceSerial = parsed?.serial ?? sessionSerial;
  const sighting: SourceSighting = { sessionId, deviceSerial, sourcePath: rec.relPath, size: rec.size, mtimeMs: rec.mtimeMs };

  const known = catalog.findKnownSource(sighting);
  if (known) {
    const r = await copyAndHash(rec.absPath, null, { onBytes, signal });
    if (r.sha256 === known.sha256) {
      catalog.addSighting(known.id, { ...sighting, mtimeMs: r.mtimeMs }, false);
      return { state: 'known' };
    }
  }

  const sc = rec.sidecarPath ? await readSidecar(rec.sidecarPath) : { sidecar: {} };
  if (sc.error) deps.log.warn({ path: rec.relPath, err: sc.error }, 'sidecar ignored');
  const meta = buildMetadata({
    name: parsed, sidecar: sc.sidecar, devices: deps.config.devices, sessionSerial, timeZone: deps.timeZone, defaultPlace: deps.config.station.place,
  });
  if (linkedOfficer && meta.deviceSerial === sessionSerial) {
    // The recorder named its officer on its control channel: that identity holds for files whose names carry none
    // (a recorder not in `devices`, ingested because dock.allowUnknown is true), and names the collector.
    meta.officerId ??= linkedOfficer.officerId;
    if (!sc.sidecar.collector && meta.officerId === linkedOfficer.officerId && (meta.collector === null || meta.collector === meta.officerId)) {
      meta.collector = linkedOfficer.officerName ?? linkedOfficer.officerId;
    }
  }
  const fileId = catalog.beginCopy({
    size: rec.size, kind: rec.kind, filename: path.basename(rec.relPath), source_path: rec.relPath, session_id: sessionId,
    device_serial: meta.deviceSerial, officer_id: meta.officerId, captured_at: meta.capturedAt, captured_at_source: meta.capturedAtSource,
    recorder_time: meta.recorderTime, collector: meta.collector, case_no: meta.caseNo, purpose: meta.purpose, place: meta.place,
    important: meta.important ? 1 : 0, clock_drift_ms: driftMs,
  });
  const tmp = objects.tempPath();
  let result;
  try {
    result = await copyAndHash(rec.absPath, tmp, { onBytes, signal, extraDigests: deps.config.integrity.algorithms.filter((a) => a !== 'sha256') });
    await objects.commit(tmp, result.sha256, result.size);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    catalog.abortCopy(fileId);
    throw e;
  }
  const done = catalog.finishCopy(fileId, result.sha256, { ...sighting, size: result.size, mtimeMs: result.mtimeMs }, { sm3: result.digests.sm3 });
  if (done.duplicate) return { state: 'duplicate' };
  const f = await classifyStored(deps, done.fileId);
  if (f.state === 'ready') deps.onReady();
  return { state: f.state };
}
