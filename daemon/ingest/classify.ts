import fs from 'node:fs/promises';
import path from 'node:path';
import { instantInZone } from '../media/zonedTime.ts';
import { describeMissing, missingFields } from './metadata.ts';
import { copyAndHash } from '../recorder/copyAndHash.ts';
import type { MediaTools } from '../media/ffprobe.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import type { MediaKind } from '../media/mediaTypes.ts';
import type { Logger } from '../log.ts';

export interface ClassifyDeps {
  catalog: Catalog;
  objects: ObjectStore;
  media: MediaTools;
  timeZone: string;
  stationId: string;
  log?: Logger;
  /** The station's time (the host's clock). */
  now: () => Date;
}

/** A probe that could not run is tried again after this long, doubling up to the cap; it never gives a verdict. */
const PROBE_RETRY_BASE_MS = 10_000;
const PROBE_RETRY_MAX_MS = 3_600_000;

/** Where the playable copy made from a damaged recording is kept: beside the objects, never instead of one. */
export function derivedPath(objects: ObjectStore, sha256: string): string {
  return path.join(objects.dir, 'derived', `${sha256}.mp4`);
}

/**
 * Verifies a stored object with ffprobe and decides its state. Only an empty file is rejected; a file that does not
 * demux cleanly is `damaged` (integrity) and goes on like any other: needs-annotation (held from upload) or ready.
 * A probe that fails for a reason of the station's own (timeout, killed, ffmpeg missing) gives no verdict: the file
 * stays `stored` and is probed again later (probe_after). Runs on the stored copy, so the recorder is read only once.
 */
export async function classifyStored(deps: ClassifyDeps, fileId: number): Promise<FileRow> {
  const { catalog } = deps;
  const row = catalog.get(fileId);
  if (row?.state !== 'stored' || !row.sha256) throw new Error(`file ${fileId} is not in state stored`);
  const objectPath = deps.objects.pathOf(row.sha256);

  if (row.size === 0) {
    const reason = 'empty file (0 bytes)';
    catalog.classified(fileId, { state: 'rejected', fields: { reason, probe_after: null }, detail: reason, rejected: reason });
    return catalog.get(fileId)!;
  }
  const probe = await deps.media.probe(objectPath, row.kind as MediaKind, row.size, row.probe_attempts);
  if (probe.unavailable) {
    const attempts = row.probe_attempts + 1;
    const delay = Math.min(PROBE_RETRY_MAX_MS, PROBE_RETRY_BASE_MS * 2 ** (attempts - 1));
    catalog.update(fileId, {
      probe_attempts: attempts,
      probe_after: new Date(deps.now().getTime() + delay).toISOString(),
      last_error: `校验 verification could not run: ${probe.unavailable}`,
    });
    deps.log?.warn(
      { file: fileId, err: probe.unavailable, attempts, retryInMs: delay },
      'verification could not run (no verdict): trying again later',
    );
    return catalog.get(fileId)!;
  }
  const probeJson = JSON.stringify({
    format: probe.format,
    duration: probe.duration,
    streams: probe.streams,
    creationTime: probe.creationTime,
  });
  const damaged = !probe.ok;
  const integrityNote = damaged ? (probe.reason ?? 'failed verification') : null;
  const common = {
    probe: probeJson,
    duration: probe.duration ?? null,
    creation_time: probe.creationTime ?? null,
    integrity: damaged ? 'damaged' : 'ok',
    integrity_note: integrityNote,
    probe_after: null,
    last_error: null,
  };
  let capturedAt = row.captured_at;
  let capturedAtSource = row.captured_at_source;
  let recorderTime = row.recorder_time;
  if (!capturedAt && probe.creationTime && !Number.isNaN(Date.parse(probe.creationTime))) {
    capturedAt = instantInZone(new Date(probe.creationTime), deps.timeZone);
    capturedAtSource = 'creation_time';
    recorderTime = probe.creationTime;
  }
  const missing = missingFields({
    caseNo: row.case_no,
    capturedAt,
    place: row.place,
    collector: row.collector,
    purpose: row.purpose,
  });
  const to = missing.length ? 'needs-annotation' : 'ready';
  const reason = missing.length ? describeMissing(missing) : null;
  catalog.classified(fileId, {
    state: to,
    fields: { ...common, captured_at: capturedAt, captured_at_source: capturedAtSource, recorder_time: recorderTime, reason },
    detail: [integrityNote && `damaged: ${integrityNote}`, reason].filter(Boolean).join('; ') || undefined,
    ...(damaged ? { damaged: integrityNote } : {}),
    missing,
  });
  const f = catalog.get(fileId)!;
  if (damaged && f.integrity === 'damaged' && /\.(mp4|mov)$/i.test(f.filename)) await makePlayableCopy(deps, f);
  return catalog.get(fileId)!;
}

/**
 * Offers a playable copy of a damaged MP4/MOV (what still demuxes, stream-copied) beside the original, hashed and
 * write-once; the original stays the evidence. Best effort: a clip that yields nothing playable simply has none.
 */
export async function makePlayableCopy(deps: ClassifyDeps, f: FileRow): Promise<string | null> {
  const { objects, catalog } = deps;
  const target = derivedPath(objects, f.sha256!);
  const tmp = `${objects.tempPath()}.mp4`;
  try {
    if (!(await deps.media.salvage(objects.pathOf(f.sha256!), tmp, f.size))) return null;
    const h = await copyAndHash(tmp, null);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.chmod(tmp, 0o444);
    await fs.rename(tmp, target);
    catalog.playableCopyMade(f, {
      sha256: h.sha256,
      size: h.size,
      how: 'ffmpeg -c copy of what still demuxes; the original is unchanged',
    });
    deps.log?.info({ file: f.id, derivedSha256: h.sha256 }, 'made a playable copy of a damaged recording (beside the original)');
    return h.sha256;
  } catch (e) {
    deps.log?.warn({ file: f.id, err: e }, 'no playable copy of a damaged recording');
    return null;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
