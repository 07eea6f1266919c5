import fs from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import type { Config, DeviceEntry } from '../config.ts';
import type { Logger } from '../log.ts';
import type { MediaTools } from '../media/ffprobe.ts';
import type { Catalog, SourceSighting } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import type { RecorderStatus, StatusBoard } from '../status/board.ts';
import { classifyStored, type ClassifyDeps } from './classify.ts';
import { CopyError, copyAndHash } from './copyAndHash.ts';
import { discover, type FoundRecording } from './discover.ts';
import { parseRecordingName } from './fileName.ts';
import { buildMetadata, parseSidecar, type Sidecar } from './metadata.ts';

export interface IngestDeps extends ClassifyDeps {
  config: Config;
  log: Logger;
  board: StatusBoard;
  now: () => Date;
  onReady: () => void;
}

const MAX_SIDECAR = 64 * 1024;

async function readSidecar(p: string): Promise<{ sidecar: Sidecar; error?: string }> {
  let h: fs.FileHandle;
  try { h = await fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW); }
  catch (e) { return { sidecar: {}, error: `cannot open sidecar: ${(e as NodeJS.ErrnoException).code}` }; }
  try {
    const st = await h.stat();
    if (!st.isFile() || st.size > MAX_SIDECAR) return { sidecar: {}, error: `sidecar larger than ${MAX_SIDECAR} bytes` };
    return parseSidecar((await h.readFile()).toString('utf8'));
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

/**
 * One docked recorder volume: walk it, copy-and-hash every recording not already stored, verify and classify each,
 * and keep the status board current. An unplug ends the session; files not yet stored stay on the recorder.
 */
export async function ingestVolume(deps: IngestDeps, volumePath: string, signal: AbortSignal): Promise<RecorderStatus> {
  const { catalog, objects, log, board } = deps;
  const name = path.basename(volumePath);
  const sessionId = catalog.openSession(volumePath, deps.now().toISOString());
  const status: RecorderStatus = {
    volume: volumePath, name, sessionId, serial: null, officerId: null, officerName: null, state: 'identifying', dockedAt: deps.now().toISOString(),
    files: { total: 0, done: 0, copied: 0, alreadyStored: 0, rejected: 0, needsAnnotation: 0, skipped: 0 }, bytes: { total: 0, done: 0 },
    current: null, safeToUndock: false, error: null,
  };
  board.upsertRecorder(status);
  const slog = log.child({ volume: volumePath, session: sessionId });

  let found;
  try { found = await discover(volumePath); }
  catch (e) {
    const msg = `cannot read the recorder volume: ${(e as Error).message}`;
    board.patchRecorder(volumePath, { state: 'error', error: msg });
    catalog.updateSession(sessionId, { result: 'error', error: msg });
    return status;
  }
  const who = identifyRecorder(name, found.recordings, deps.config.devices);
  Object.assign(status, who);
  status.files.total = found.recordings.length;
  status.files.skipped = found.skipped.length;
  status.bytes.total = found.recordings.reduce((s, r) => s + r.size, 0);
  status.state = 'copying';
  board.upsertRecorder(status);
  catalog.tx(() => {
    catalog.updateSession(sessionId, { device_serial: who.serial, officer_id: who.officerId, files_found: found.recordings.length, skipped: found.skipped.length });
    for (const s of found.skipped) catalog.recordSkipped(sessionId, s.relPath, s.reason);
    catalog.enqueue('event', { type: 'recorder.docked', at: deps.now().toISOString(), volume: volumePath, sessionId, deviceSerial: who.serial, officerId: who.officerId, officerName: who.officerName, files: found.recordings.length, bytes: status.bytes.total, skipped: found.skipped });
  });
  slog.info({ serial: who.serial, officer: who.officerId, files: found.recordings.length, bytes: status.bytes.total, skipped: found.skipped.length }, 'recorder docked');
  for (const s of found.skipped) slog.warn({ path: s.relPath, reason: s.reason }, 'skipped entry on recorder');

  let bytesBefore = 0;
  let failed = 0;
  for (const rec of found.recordings) {
    if (signal.aborted) break;
    status.current = rec.relPath;
    board.patchRecorder(volumePath, { current: rec.relPath });
    try {
      const outcome = await ingestOne(deps, rec, sessionId, who.serial, (n) => { status.bytes.done = bytesBefore + n; board.patchRecorder(volumePath, {}); }, signal);
      if (outcome.state === 'known') status.files.alreadyStored++;
      else status.files.copied++;
      if (outcome.state === 'rejected') status.files.rejected++;
      if (outcome.state === 'needs-annotation') status.files.needsAnnotation++;
    } catch (e) {
      if (e instanceof CopyError && e.code === 'SOURCE_GONE') {
        status.state = 'unplugged';
        status.error = `recorder removed during copy; ${status.files.total - status.files.done} file(s) not yet stored stay on it: dock it again`;
        slog.warn({ err: e.message, done: status.files.done, total: status.files.total }, 'recorder went away mid-copy');
        break;
      }
      failed++;
      const msg = (e as Error).message;
      slog.error({ path: rec.relPath, code: (e as { code?: string }).code, err: msg }, 'file not ingested (it stays on the recorder)');
      catalog.recordSkipped(sessionId, rec.relPath, `not ingested: ${msg}`);
      board.raise('INGEST_FAILED', `ingest:${volumePath}:${rec.relPath}`, `${rec.relPath}: ${msg}`);
    }
    bytesBefore += rec.size;
    status.bytes.done = bytesBefore;
    status.files.done++;
    board.patchRecorder(volumePath, {});
  }
  status.current = null;
  if (status.state !== 'unplugged') {
    if (signal.aborted) { status.state = 'error'; status.error = 'ingest stopped before it finished (dockd is stopping)'; }
    else if (failed) { status.state = 'error'; status.error = `${failed} file(s) could not be copied and stay on the recorder`; }
    else { status.state = 'done'; status.safeToUndock = true; }
  }
  board.upsertRecorder(status);
  catalog.updateSession(sessionId, {
    result: status.state, files_copied: status.files.copied, files_known: status.files.alreadyStored, error: status.error,
  });
  slog.info({ state: status.state, copied: status.files.copied, alreadyStored: status.files.alreadyStored, rejected: status.files.rejected, needsAnnotation: status.files.needsAnnotation }, 'recorder ingest finished');
  return status;
}

type Outcome = { state: 'known' | 'rejected' | 'needs-annotation' | 'ready' | 'duplicate' | string };

async function ingestOne(deps: IngestDeps, rec: FoundRecording, sessionId: number, sessionSerial: string | null, onBytes: (n: number) => void, signal: AbortSignal): Promise<Outcome> {
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
  const fileId = catalog.beginCopy({
    size: rec.size, kind: rec.kind, filename: path.basename(rec.relPath), source_path: rec.relPath, session_id: sessionId,
    device_serial: meta.deviceSerial, officer_id: meta.officerId, captured_at: meta.capturedAt, captured_at_source: meta.capturedAtSource,
    recorder_time: meta.recorderTime, collector: meta.collector, case_no: meta.caseNo, purpose: meta.purpose, place: meta.place,
    important: meta.important ? 1 : 0,
  });
  const tmp = objects.tempPath();
  let result;
  try {
    result = await copyAndHash(rec.absPath, tmp, { onBytes, signal });
    await objects.commit(tmp, result.sha256, result.size);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    catalog.abortCopy(fileId);
    throw e;
  }
  const done = catalog.finishCopy(fileId, result.sha256, { ...sighting, size: result.size, mtimeMs: result.mtimeMs });
  if (done.duplicate) return { state: 'duplicate' };
  const f = await classifyStored(deps, done.fileId);
  if (f.state === 'ready') deps.onReady();
  return { state: f.state };
}
