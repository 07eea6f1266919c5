import { mimeType } from '../media/mediaTypes.ts';
import type { FileRow } from '../store/catalog.ts';

/** The recording's file name as the recorder's bytes, in hex (`filename` shows them escaped when they are not UTF-8). */
function fileNameHex(f: FileRow): string {
  if (!f.source_path_hex) return Buffer.from(f.filename, 'utf8').toString('hex');
  const raw = Buffer.from(f.source_path_hex, 'hex');
  return raw.subarray(raw.lastIndexOf(0x2f) + 1).toString('hex');
}

/** tus Upload-Metadata for a stored recording, with exactly the contract's keys (DESIGN.md, "Upload"). */
export function uploadMetadata(f: FileRow, stationId: string, stationKey?: string): Record<string, string> {
  return {
    filename: f.filename,
    filetype: mimeType(f.filename),
    sha256: f.sha256 ?? '',
    size: String(f.size),
    stationId,
    deviceSerial: f.device_serial ?? '',
    officerId: f.officer_id ?? '',
    caseNo: f.case_no ?? '',
    capturedAt: f.captured_at ?? '',
    place: f.place ?? '',
    collector: f.collector ?? '',
    purpose: f.purpose ?? '',
    important: f.important ? '1' : '0',
    // Beyond the list: the probe's verdict (DESIGN.md, "Damaged recordings are evidence too"), and the name's raw bytes.
    integrity: f.integrity ?? 'ok',
    ...(f.integrity === 'damaged' ? { integrityNote: f.integrity_note ?? '' } : {}),
    filenameHex: fileNameHex(f),
    // Beyond DESIGN.md's list: a recording with a case number is evidence (HQ keeps it permanently); sm3 when configured.
    evidence: f.case_no ? '1' : '0',
    ...(f.sm3 ? { sm3: f.sm3 } : {}),
    // Capture time exactly as the recorder wrote it, and its clock's measured drift (recorder − station, ms) at dock.
    ...(f.recorder_time ? { recorderTime: f.recorder_time } : {}),
    ...(f.clock_drift_ms !== null && f.clock_drift_ms !== undefined ? { clockDriftMs: String(f.clock_drift_ms) } : {}),
    ...(stationKey ? { stationKey } : {}), // the station's Ed25519 public key (base64 SPKI DER): it signs the audit heads
  };
}
