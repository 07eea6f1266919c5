import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../host.ts';
import { appendAudit, type AuditEntry } from './audit.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

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

/** A copy whose object is durable, to be marked stored (Catalog.finishCopies). */
export interface CopyToFinish {
  fileId: number;
  sha256: string;
  sighting: SourceSighting;
  digests: { sm3?: string };
}

export interface OutboxEntry {
  seq: number;
  topic: string;
  payload: string;
}

const FIELD_NAMES = new Set<string>([
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

/**
 * The catalog: one SQLite database (WAL) holding every recording, where it was seen, its state history
 * and the MQTT outbox. Every state change is one transaction, so a crash leaves either the change or nothing.
 */
export class Catalog {
  readonly db: Database.Database;
  /** Called after an outbox entry is added (the publisher defers its drain past the transaction). */
  onEnqueue: (() => void) | null = null;
  private readonly now: () => Date;

  private constructor(db: Database.Database, now: () => Date) {
    this.db = db;
    this.now = now;
  }

  static open(storageDir: string, opts: { readonly?: boolean; now?: () => Date } = {}): Catalog {
    const file = path.join(storageDir, 'catalog.sqlite');
    if (!opts.readonly) mkdirSync(storageDir, { recursive: true });
    const db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    db.pragma('busy_timeout = 5000');
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      Catalog.migrate(db);
    }
    return new Catalog(db, opts.now ?? systemClock.now);
  }

  private static migrate(db: Database.Database): void {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) throw new Error(`catalog schema ${current} is newer than this dockd (${SCHEMA_VERSION})`);
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]);
        db.pragma(`user_version = ${v}`);
      })();
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  /** One IMMEDIATE transaction (nested calls become savepoints). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---- files -------------------------------------------------------------

  /** A row in state `copying` (with the metadata known before the copy) for a source about to be copied. */
  beginCopy(f: FileFields & { size: number; kind: string; filename: string; source_path: string }): number {
    const at = this.stamp();
    const cols = Object.keys(f).filter((k) => FIELD_NAMES.has(k));
    return this.tx(() => {
      const id = Number(
        this.db
          .prepare(
            `INSERT INTO files (state, created_at, updated_at, ${cols.join(', ')}) VALUES ('copying', ?, ?, ${cols.map(() => '?').join(', ')})`,
          )
          .run(at, at, ...cols.map((c) => (f as Record<string, unknown>)[c] ?? null)).lastInsertRowid,
      );
      this.history(id, null, 'copying', f.source_path, at);
      return id;
    });
  }

  abortCopy(id: number): void {
    this.tx(() => {
      this.db
        .prepare(`DELETE FROM history WHERE file_id = ? AND EXISTS (SELECT 1 FROM files WHERE id = ? AND state = 'copying')`)
        .run(id, id);
      this.db.prepare(`DELETE FROM files WHERE id = ? AND state = 'copying'`).run(id);
    });
  }

  /**
   * Completes a copy once its object is durable. If the same content is already catalogued the copying row is
   * dropped and the sighting recorded on the existing file.
   */
  finishCopy(
    id: number,
    sha256: string,
    sighting: SourceSighting,
    digests: { sm3?: string } = {},
  ): { fileId: number; duplicate: boolean } {
    const at = this.stamp();
    return this.tx(() => {
      const existing = this.db.prepare(`SELECT id FROM files WHERE sha256 = ?`).get(sha256) as { id: number } | undefined;
      if (existing) {
        this.db.prepare(`DELETE FROM history WHERE file_id = ?`).run(id);
        this.db.prepare(`DELETE FROM files WHERE id = ? AND state = 'copying'`).run(id);
        this.addSighting(existing.id, sighting, false);
        // The copy just committed put a freed (archived, past retention) object back on disk: the row says so again.
        this.db
          .prepare(`UPDATE files SET local_deleted_at = NULL WHERE id = ? AND local_deleted_at IS NOT NULL`)
          .run(existing.id);
        return { fileId: existing.id, duplicate: true };
      }
      this.db
        .prepare(`UPDATE files SET sha256 = ?, sm3 = ?, state = 'stored', updated_at = ? WHERE id = ? AND state = 'copying'`)
        .run(sha256, digests.sm3 ?? null, at, id);
      this.history(id, 'copying', 'stored', sha256, at);
      this.addSighting(id, sighting, true);
      return { fileId: id, duplicate: false };
    });
  }

  // ---- group commit (see groupCommit.ts) ----------------------------------

  /** finishCopy for a batch of copies made durable together: one transaction, so one sync of the catalog. */
  finishCopies(batch: CopyToFinish[]): { fileId: number; duplicate: boolean }[] {
    return this.tx(() => batch.map((c) => this.finishCopy(c.fileId, c.sha256, c.sighting, c.digests)));
  }

  /**
   * beginCopy without waiting for the disk: a `copying` row is discarded at the next start whether or not a crash
   * kept it, and the batch's own (synchronous) commit makes it durable with everything before it in the log.
   */
  beginCopyUnsynced(f: Parameters<Catalog['beginCopy']>[0]): number {
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.beginCopy(f);
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** A file already stored from the same recorder, path, size and mtime (to be confirmed by hash). */
  findKnownSource(s: SourceSighting): FileRow | undefined {
    return this.db
      .prepare(`SELECT f.* FROM sightings s JOIN files f ON f.id = s.file_id
      WHERE s.device_serial IS ? AND s.source_path = ? AND s.source_size = ? AND s.source_mtime_ms = ? AND f.sha256 IS NOT NULL
      ORDER BY s.id DESC LIMIT 1`)
      .get(s.deviceSerial, s.sourcePath, s.size, s.mtimeMs) as FileRow | undefined;
  }

  addSighting(fileId: number, s: SourceSighting, copied: boolean): void {
    this.db
      .prepare(`INSERT INTO sightings (file_id, session_id, device_serial, source_path, source_size, source_mtime_ms, copied, seen_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(fileId, s.sessionId, s.deviceSerial, s.sourcePath, s.size, s.mtimeMs, copied ? 1 : 0, this.stamp());
  }

  /** Moves a file to `to` (optionally only from one of `from`), sets fields, logs history and queues an event, atomically. */
  transition(
    id: number,
    to: FileState,
    fields: FileFields = {},
    opts: { from?: FileState[]; detail?: string; event?: Record<string, unknown> } = {},
  ): boolean {
    const at = this.stamp();
    return this.tx(() => {
      const row = this.get(id);
      if (!row) return false;
      if (opts.from && !opts.from.includes(row.state)) return false;
      const cols = Object.keys(fields).filter((k) => FIELD_NAMES.has(k));
      const sets = ['state = ?', 'updated_at = ?', ...cols.map((c) => `${c} = ?`)].join(', ');
      this.db
        .prepare(`UPDATE files SET ${sets} WHERE id = ?`)
        .run(to, at, ...cols.map((c) => (fields as Record<string, unknown>)[c] ?? null), id);
      if (row.state !== to || opts.detail) this.history(id, row.state, to, opts.detail ?? null, at);
      if (opts.event) this.enqueue('event', { ...opts.event, at });
      return true;
    });
  }

  /** Sets columns without a state change (upload progress, attempts). */
  update(id: number, fields: FileFields): void {
    const cols = Object.keys(fields).filter((k) => FIELD_NAMES.has(k));
    if (!cols.length) return;
    this.db
      .prepare(`UPDATE files SET ${cols.map((c) => `${c} = ?`).join(', ')}, updated_at = ? WHERE id = ?`)
      .run(...cols.map((c) => (fields as Record<string, unknown>)[c] ?? null), this.stamp(), id);
  }

  private history(fileId: number, from: string | null, to: string, detail: string | null, at: string): void {
    this.db
      .prepare(`INSERT INTO history (file_id, at, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?)`)
      .run(fileId, at, from, to, detail);
  }

  get(id: number): FileRow | undefined {
    return this.db.prepare(`SELECT * FROM files WHERE id = ?`).get(id) as FileRow | undefined;
  }

  bySha256(sha256: string): FileRow | undefined {
    return this.db.prepare(`SELECT * FROM files WHERE sha256 = ?`).get(sha256) as FileRow | undefined;
  }

  /** A catalog id or a unique sha256 prefix (at least 6 hex digits). */
  resolve(idOrPrefix: string): { file?: FileRow; error?: string } {
    if (/^\d+$/.test(idOrPrefix)) {
      const file = this.get(Number(idOrPrefix));
      if (file) return { file };
    }
    const prefix = idOrPrefix.toLowerCase();
    if (!/^[0-9a-f]{6,64}$/.test(prefix)) return { error: `no recording with id ${idOrPrefix}` };
    const rows = this.db.prepare(`SELECT * FROM files WHERE sha256 LIKE ? || '%' LIMIT 2`).all(prefix) as FileRow[];
    if (rows.length === 0) return { error: `no recording with id or sha256 prefix ${idOrPrefix}` };
    if (rows.length > 1) return { error: `sha256 prefix ${idOrPrefix} is not unique; give more digits` };
    return { file: rows[0] };
  }

  list(state?: FileState): FileRow[] {
    return (
      state
        ? this.db.prepare(`SELECT * FROM files WHERE state = ? ORDER BY id`).all(state)
        : this.db.prepare(`SELECT * FROM files ORDER BY id`).all()
    ) as FileRow[];
  }

  /** Files to upload: important first, then oldest capture. */
  uploadQueue(limit: number, excludeIds: number[] = []): FileRow[] {
    const rows = this.db
      .prepare(`SELECT * FROM files WHERE state IN ('ready', 'uploading')
      ORDER BY important DESC, julianday(COALESCE(captured_at, created_at)) ASC, id ASC LIMIT ?`)
      .all(limit + excludeIds.length) as FileRow[];
    return rows.filter((r) => !excludeIds.includes(r.id)).slice(0, limit);
  }

  counts(): Record<FileState, number> {
    const out = Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as Record<FileState, number>;
    for (const r of this.db.prepare(`SELECT state, COUNT(*) n FROM files GROUP BY state`).all() as {
      state: FileState;
      n: number;
    }[])
      out[r.state] = r.n;
    return out;
  }

  bytesPending(): number {
    const r = this.db
      .prepare(
        `SELECT COALESCE(SUM(size - upload_offset), 0) b FROM files WHERE state IN ('ready', 'uploading', 'needs-annotation', 'stored')`,
      )
      .get() as { b: number };
    return r.b;
  }

  historyOf(fileId: number): { at: string; from_state: string | null; to_state: string; detail: string | null }[] {
    return this.db
      .prepare(`SELECT at, from_state, to_state, detail FROM history WHERE file_id = ? ORDER BY id`)
      .all(fileId) as never;
  }

  sightingsOf(
    fileId: number,
  ): { session_id: number | null; device_serial: string | null; source_path: string; copied: number; seen_at: string }[] {
    return this.db
      .prepare(`SELECT session_id, device_serial, source_path, copied, seen_at FROM sightings WHERE file_id = ? ORDER BY id`)
      .all(fileId) as never;
  }

  /** After a crash: rows left mid-copy are removed (their temp files are swept by the object store). */
  recoverInterruptedCopies(): number {
    return this.tx(() => {
      this.db.prepare(`DELETE FROM history WHERE file_id IN (SELECT id FROM files WHERE state = 'copying')`).run();
      return this.db.prepare(`DELETE FROM files WHERE state = 'copying'`).run().changes;
    });
  }

  // ---- sessions ----------------------------------------------------------

  openSession(volume: string, at = this.stamp()): number {
    return Number(this.db.prepare(`INSERT INTO sessions (volume, docked_at) VALUES (?, ?)`).run(volume, at).lastInsertRowid);
  }

  updateSession(
    id: number,
    f: {
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
    },
  ): void {
    const cols = Object.keys(f);
    if (!cols.length) return;
    this.db
      .prepare(`UPDATE sessions SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`)
      .run(...cols.map((c) => (f as Record<string, unknown>)[c] ?? null), id);
  }

  /** An entry of the volume not taken: skipped (not a recording), or left behind (a recording not in the store). */
  recordSkipped(
    sessionId: number,
    relPath: string,
    reason: string,
    opts: { leftBehind?: boolean; pathHex?: string | null } = {},
  ): void {
    this.db
      .prepare(`INSERT INTO skipped (session_id, path, reason, seen_at, left_behind, path_hex) VALUES (?, ?, ?, ?, ?, ?)`)
      .run(sessionId, relPath, reason, this.stamp(), opts.leftBehind ? 1 : 0, opts.pathHex ?? null);
  }

  skippedOf(sessionId: number): { path: string; reason: string; left_behind: number; path_hex: string | null }[] {
    return this.db
      .prepare(`SELECT path, reason, left_behind, path_hex FROM skipped WHERE session_id = ? ORDER BY id`)
      .all(sessionId) as never;
  }

  // ---- outbox (events that must reach the broker, in order, across restarts) ----

  /** Queues a message for the broker; an event is also appended to the audit chain, in the same transaction. */
  enqueue(topic: string, payload: Record<string, unknown>): void {
    this.tx(() => {
      this.db
        .prepare(`INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)`)
        .run(topic, JSON.stringify(payload), this.stamp());
      if (topic === 'event') {
        const subject = (payload.sha256 ?? payload.deviceSerial ?? payload.volume ?? payload.key ?? null) as string | null;
        appendAudit(this.db, String(payload.at ?? this.stamp()), String(payload.type), subject, payload);
      }
    });
    this.onEnqueue?.();
  }

  /** An audit-only entry (something that is not announced on MQTT: config loaded, verify, export, ignored receipt …). */
  audit(type: string, subject: string | null, data: Record<string, unknown>): AuditEntry {
    return this.tx(() => appendAudit(this.db, this.stamp(), type, subject, data));
  }

  auditEntries(opts: { since?: string; subject?: string } = {}): AuditEntry[] {
    return this.db
      .prepare(`SELECT * FROM audit WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR subject = ?) ORDER BY seq`)
      .all(opts.since ?? null, opts.since ?? null, opts.subject ?? null, opts.subject ?? null) as AuditEntry[];
  }

  outboxPeek(limit: number): OutboxEntry[] {
    return this.db.prepare(`SELECT seq, topic, payload FROM outbox ORDER BY seq LIMIT ?`).all(limit) as OutboxEntry[];
  }

  outboxDelete(seq: number): void {
    this.db.prepare(`DELETE FROM outbox WHERE seq = ?`).run(seq);
  }

  outboxSize(): number {
    return (this.db.prepare(`SELECT COUNT(*) n FROM outbox`).get() as { n: number }).n;
  }

  // ---- small key/value (the last state snapshot, read by dockctl) ---------

  setKv(key: string, value: unknown): void {
    this.db
      .prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`)
      .run(key, JSON.stringify(value));
  }

  getKv<T>(key: string): T | undefined {
    const r = this.db.prepare(`SELECT value FROM kv WHERE key = ?`).get(key) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as T) : undefined;
  }
}
