import type { FileRow } from './catalog.ts';

/** A catalog row as dockctl (`files --json`) and the HTTP API show it: camelCase, probe parsed. */
export function publicFile(f: FileRow): Record<string, unknown> {
  return {
    id: f.id, sha256: f.sha256, sm3: f.sm3, state: f.state, size: f.size, kind: f.kind, filename: f.filename, sourcePath: f.source_path,
    deviceSerial: f.device_serial, officerId: f.officer_id, capturedAt: f.captured_at, capturedAtSource: f.captured_at_source,
    recorderTime: f.recorder_time, caseNo: f.case_no, purpose: f.purpose, place: f.place, collector: f.collector,
    important: Boolean(f.important), reason: f.reason, duration: f.duration, creationTime: f.creation_time,
    probe: f.probe ? JSON.parse(f.probe) : null, uploadUrl: f.upload_url, uploadOffset: f.upload_offset, uploadAttempts: f.upload_attempts,
    lastError: f.last_error, createdAt: f.created_at, updatedAt: f.updated_at, uploadedAt: f.uploaded_at,
    receiptAt: f.receipt_at, archivedAt: f.archived_at, localDeletedAt: f.local_deleted_at, clockDriftMs: f.clock_drift_ms,
    integrity: f.integrity, integrityNote: f.integrity_note, probeAttempts: f.probe_attempts, probeAfter: f.probe_after,
    sourcePathHex: f.source_path_hex, supersedes: f.supersedes, playableCopySha256: f.derived_sha256,
  };
}
