/** A catalog row and the names of its states and columns. */
export type FileState = 'copying' | 'stored' | 'rejected' | 'needs-annotation' | 'ready' | 'uploading' | 'uploaded' | 'archived';
export const FILE_STATES: FileState[] = [
  'copying',
  'stored',
  'rejected',
  'needs-annotation',
  'ready',
  'uploading',
  'uploaded',
  'archived',
];

export interface FileRow {
  id: number;
  sha256: string | null;
  size: number;
  state: FileState;
  kind: string;
  filename: string;
  source_path: string;
  device_serial: string | null;
  officer_id: string | null;
  captured_at: string | null;
  captured_at_source: string | null;
  recorder_time: string | null;
  collector: string | null;
  case_no: string | null;
  purpose: string | null;
  place: string | null;
  important: number;
  reason: string | null;
  probe: string | null;
  duration: number | null;
  creation_time: string | null;
  upload_url: string | null;
  upload_offset: number;
  upload_attempts: number;
  last_error: string | null;
  session_id: number | null;
  created_at: string;
  updated_at: string;
  uploaded_at: string | null;
  clock_drift_ms: number | null;
  sm3: string | null;
  receipt_at: string | null;
  archived_at: string | null;
  local_deleted_at: string | null;
  announced_at: string | null;
  /** ok | damaged (the probe's verdict; NULL until a verdict). */
  integrity: string | null;
  integrity_note: string | null;
  probe_attempts: number;
  probe_after: string | null;
  source_path_hex: string | null;
  supersedes: number | null;
  derived_sha256: string | null;
  /** 1: captured more than rules.offloadWithinHours before it was docked (daemon/status/deadlines.ts); NULL until known. */
  late?: number | null;
}

/** Columns a state change may set alongside the state. */
export type FileFields = Partial<Omit<FileRow, 'id' | 'state' | 'created_at' | 'updated_at'>>;

export interface SourceSighting {
  sessionId: number | null;
  deviceSerial: string | null;
  sourcePath: string;
  size: number;
  mtimeMs: number;
}

/** The fields of a recording about to be copied (Catalog.beginCopy). */
export type NewCopy = FileFields & { size: number; kind: string; filename: string; source_path: string };

/** A copy whose object is durable, to be marked stored (Catalog.finishCopies). */
export interface CopyToFinish {
  /** Its `copying` row; null when it has none (a small recording is catalogued with its batch, see `begun`). */
  fileId: number | null;
  /** For a copy without a row: its fields, and when its copy began (the time of its `copying` step). */
  begun?: NewCopy & { at: string };
  sha256: string;
  sighting: SourceSighting;
  digests: { sm3?: string };
}

export interface OutboxEntry {
  seq: number;
  topic: string;
  payload: string;
}

/** The columns a caller may set (everything but id, state and the timestamps the store keeps). */
export const FIELD_NAMES = new Set<string>([
  'sha256',
  'size',
  'kind',
  'filename',
  'source_path',
  'device_serial',
  'officer_id',
  'captured_at',
  'captured_at_source',
  'recorder_time',
  'collector',
  'case_no',
  'purpose',
  'place',
  'important',
  'reason',
  'probe',
  'duration',
  'creation_time',
  'upload_url',
  'upload_offset',
  'upload_attempts',
  'last_error',
  'session_id',
  'uploaded_at',
  'sm3',
  'receipt_at',
  'archived_at',
  'local_deleted_at',
  'announced_at',
  'clock_drift_ms',
  'integrity',
  'integrity_note',
  'probe_attempts',
  'probe_after',
  'source_path_hex',
  'supersedes',
  'derived_sha256',
]);

/** Columns of a docking session set as it goes. */
export interface SessionFields {
  battery?: number | null;
  drift_ms?: number | null;
  bay?: string | null;
  port_path?: string | null;
  device_serial?: string | null;
  officer_id?: string | null;
  result?: string;
  files_found?: number;
  files_copied?: number;
  files_known?: number;
  skipped?: number;
  error?: string | null;
  undocked_at?: string;
}

/** The probe's verdict on a stored file (Catalog.classified). */
export interface Verdict {
  state: 'rejected' | 'needs-annotation' | 'ready';
  fields: FileFields;
  detail?: string;
  /** Rejected, for this reason (file.rejected). */
  rejected?: string;
  /** Damaged, with the probe's note (file.damaged). */
  damaged?: string | null;
  /** Fields still missing (file.needs-annotation). */
  missing?: string[];
}
