import { instantInZone } from './fileName.ts';
import { describeMissing, missingFields } from './metadata.ts';
import type { MediaTools } from '../media/ffprobe.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import type { MediaKind } from './fileName.ts';

export interface ClassifyDeps { catalog: Catalog; objects: ObjectStore; media: MediaTools; timeZone: string; stationId: string }

/** The event payload that names a file on MQTT. */
export function fileEvent(type: string, f: FileRow, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type, id: f.id, sha256: f.sha256, size: f.size, filename: f.filename, sourcePath: f.source_path, deviceSerial: f.device_serial,
    officerId: f.officer_id, capturedAt: f.captured_at, important: Boolean(f.important), state: f.state, ...extra,
  };
}

/**
 * Verifies a stored object with ffprobe and decides its state: rejected (kept, with the reason), needs-annotation
 * (held from upload) or ready. Runs on the stored copy, so the recorder is read only once.
 */
export async function classifyStored(deps: ClassifyDeps, fileId: number): Promise<FileRow> {
  const { catalog } = deps;
  const row = catalog.get(fileId);
  if (!row || row.state !== 'stored' || !row.sha256) throw new Error(`file ${fileId} is not in state stored`);
  const objectPath = deps.objects.pathOf(row.sha256);

  if (row.size === 0) {
    catalog.transition(fileId, 'rejected', { reason: 'empty file (0 bytes)' }, { from: ['stored'], event: fileEvent('file.rejected', { ...row, state: 'rejected' }, { reason: 'empty file (0 bytes)' }) });
    return catalog.get(fileId)!;
  }
  const probe = await deps.media.probe(objectPath, row.kind as MediaKind, row.size);
  const probeJson = JSON.stringify({ format: probe.format, duration: probe.duration, streams: probe.streams, creationTime: probe.creationTime });
  const common = { probe: probeJson, duration: probe.duration ?? null, creation_time: probe.creationTime ?? null };
  if (!probe.ok) {
    const reason = probe.reason ?? 'failed verification';
    catalog.tx(() => {
      catalog.transition(fileId, 'rejected', { ...common, reason }, { from: ['stored'], detail: reason });
      const f = catalog.get(fileId)!;
      catalog.enqueue('event', { ...fileEvent('file.ingested', f), at: new Date().toISOString() });
      catalog.enqueue('event', { ...fileEvent('file.rejected', f, { reason }), at: new Date().toISOString() });
    });
    return catalog.get(fileId)!;
  }
  let capturedAt = row.captured_at;
  let capturedAtSource = row.captured_at_source;
  let recorderTime = row.recorder_time;
  if (!capturedAt && probe.creationTime && !Number.isNaN(Date.parse(probe.creationTime))) {
    capturedAt = instantInZone(new Date(probe.creationTime), deps.timeZone);
    capturedAtSource = 'creation_time';
    recorderTime = probe.creationTime;
  }
  const missing = missingFields({ caseNo: row.case_no, capturedAt, place: row.place, collector: row.collector, purpose: row.purpose });
  const to = missing.length ? 'needs-annotation' : 'ready';
  const reason = missing.length ? describeMissing(missing) : null;
  catalog.tx(() => {
    catalog.transition(fileId, to, { ...common, captured_at: capturedAt, captured_at_source: capturedAtSource, recorder_time: recorderTime, reason }, { from: ['stored'], detail: reason ?? undefined });
    const f = catalog.get(fileId)!;
    const at = new Date().toISOString();
    catalog.enqueue('event', { ...fileEvent('file.ingested', f), at });
    if (missing.length) catalog.enqueue('event', { ...fileEvent('file.needs-annotation', f, { missing }), at });
  });
  return catalog.get(fileId)!;
}
