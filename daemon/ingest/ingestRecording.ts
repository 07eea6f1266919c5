import fs from 'node:fs/promises';
import path from 'node:path';
import type { FileRow, NewCopy, SourceSighting } from '../store/catalog.ts';
import { CopyError, isVolumeGoneCode, type CopyResult } from '../recorder/copyAndHash.ts';
import { copyRecording, SMALL_FILE } from '../recorder/copyWorkers.ts';
import type { FoundRecording } from '../recorder/discover.ts';
import { parseRecordingName } from '../recorder/recordingName.ts';
import type { SessionContext } from './ingestContext.ts';
import { attributeToHolder, buildMetadata } from './metadata.ts';
import { annotateFromLateSidecar, readSidecar } from './sidecarFile.ts';

export interface Outcome {
  state: string;
  fileId: number | null;
  integrity: string | null;
  verdict?: Promise<FileRow>;
}

/** A recording copied and hashed, waiting for its batch: `stored` settles once it is durable and catalogued. */
export interface Staged {
  state: 'staged';
  stored: Promise<Outcome>;
}

/** One recording to take, and what the session knows about it. */
export interface IngestOneOptions {
  recording: FoundRecording;
  sessionId: number;
  sessionSerial: string | null;
  driftMs: number | null;
  linkedOfficer: { officerId: string; officerName: string | null } | null;
  /** The catalog id of this path's earlier copy in this session, when the file changed after it was copied. */
  supersedes: number | null;
  onBytes: (n: number) => void;
  signal: AbortSignal;
}

/**
 * One recording: confirmed by hash when this recorder path was stored before, else copied and hashed into the store
 * with the metadata known now (staged: stored with its batch, see GroupCommit), then verified (off the copy path when
 * the dock gives a verify pool).
 */
export async function ingestOne(ctx: SessionContext, options: IngestOneOptions): Promise<Outcome | Staged> {
  const { catalog, objects } = ctx;
  const { recording: rec, sessionId, sessionSerial, driftMs, linkedOfficer, onBytes, signal } = options;
  const parsed = parseRecordingName(path.basename(rec.relPath));
  const deviceSerial = parsed?.serial ?? sessionSerial;
  const sighting: SourceSighting = { sessionId, deviceSerial, sourcePath: rec.relPath, size: rec.size, mtimeMs: rec.mtimeMs };

  const known = catalog.findKnownSource(sighting);
  if (known) {
    const r = await copyRecording(
      rec.size,
      rec.absPath,
      null,
      { onBytes, signal, copiesAtOnce: ctx.config.dock.concurrency },
      ctx.threads,
    );
    if (r.sha256 === known.sha256) {
      catalog.addSighting(known.id, { ...sighting, mtimeMs: r.mtimeMs }, false);
      const annotated = rec.sidecarPath && (await annotateFromLateSidecar(catalog, ctx.log, known, rec.sidecarPath, rec.relPath));
      if (annotated === 'ready') ctx.onReady();
      return { state: 'known', fileId: known.id, integrity: known.integrity };
    }
  }

  const sc = rec.sidecarPath ? await readSidecar(rec.sidecarPath) : { sidecar: {} };
  // The walk found the sidecar; not finding it now means the volume went (a read-only recorder loses no file): the
  // recording is not stored without its metadata, and the session ends as unplugged, as for the recording itself.
  if ('code' in sc && isVolumeGoneCode(sc.code))
    throw new CopyError('SOURCE_GONE', `${rec.relPath}: its sidecar cannot be read: recorder volume went away (${sc.code})`);
  if (sc.error) ctx.log.warn({ path: rec.relPath, err: sc.error }, 'sidecar ignored');
  const meta = buildMetadata({
    name: parsed,
    sidecar: sc.sidecar,
    devices: ctx.config.devices,
    sessionSerial,
    timeZone: ctx.timeZone,
    defaultPlace: ctx.config.station.place,
  });
  if (linkedOfficer && meta.deviceSerial === sessionSerial) {
    // The recorder named its officer on its control channel: that identity holds for files whose names carry none
    // (a recorder not in `devices`, ingested because dock.allowUnknown is true), and names the collector.
    meta.officerId ??= linkedOfficer.officerId;
    if (
      !sc.sidecar.collector &&
      meta.officerId === linkedOfficer.officerId &&
      (meta.collector === null || meta.collector === meta.officerId)
    ) {
      meta.collector = linkedOfficer.officerName ?? linkedOfficer.officerId;
    }
  }
  const holder = meta.deviceSerial && meta.capturedAt ? ctx.holderAt?.(meta.deviceSerial, meta.capturedAt) : undefined;
  if (holder) attributeToHolder(meta, holder, sc.sidecar);
  const fields: NewCopy = {
    size: rec.size,
    kind: rec.kind,
    filename: path.basename(rec.relPath),
    source_path: rec.relPath,
    source_path_hex: rec.relPathHex,
    session_id: sessionId,
    device_serial: meta.deviceSerial,
    officer_id: meta.officerId,
    captured_at: meta.capturedAt,
    captured_at_source: meta.capturedAtSource,
    recorder_time: meta.recorderTime,
    collector: meta.collector,
    case_no: meta.caseNo,
    purpose: meta.purpose,
    place: meta.place,
    important: meta.important ? 1 : 0,
    clock_drift_ms: driftMs,
    supersedes: options.supersedes,
  };
  // A large recording is catalogued as `copying` while it is copied (that takes a while, and the catalog shows it);
  // a small one is catalogued with its batch, its copying step stamped with the time its copy began: a transaction
  // per file fewer, where a day's photos and short clips spend more on the catalog than on their bytes.
  const begunAt = ctx.now().toISOString();
  const fileId = rec.size >= SMALL_FILE ? catalog.beginCopyUnsynced(fields) : null;
  const tmp = objects.tempPath();
  const discard = async () => {
    await fs.rm(tmp, { force: true });
    if (fileId !== null) catalog.abortCopy(fileId);
  };
  let result: CopyResult;
  try {
    result = await copyRecording(
      rec.size,
      rec.absPath,
      tmp,
      {
        onBytes,
        signal,
        extraDigests: ctx.config.integrity.algorithms.filter((a) => a !== 'sha256'),
        deferSync: true,
        copiesAtOnce: ctx.config.dock.concurrency,
      },
      ctx.threads,
    );
  } catch (e) {
    await discard();
    throw e;
  }
  // Durable and catalogued with the copies that finish with it (group commit); the session copies on meanwhile.
  const stored = ctx.commits
    .commit({
      tempPath: tmp,
      file: result.unsynced!,
      size: result.size,
      fileId,
      ...(fileId === null ? { begun: { ...fields, at: begunAt } } : {}),
      sha256: result.sha256,
      sighting: { ...sighting, size: result.size, mtimeMs: result.mtimeMs },
      digests: { sm3: result.digests.sm3 },
    })
    .then(
      (done): Outcome =>
        done.duplicate
          ? { state: 'duplicate', fileId: done.fileId, integrity: catalog.get(done.fileId)?.integrity ?? null }
          : { state: 'stored', fileId: done.fileId, integrity: null, verdict: ctx.verify(done.fileId) },
      async (e) => {
        await discard();
        throw e;
      },
    );
  return { state: 'staged', stored };
}
