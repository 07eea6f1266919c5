import { freshStatement } from './statementCache.ts';
import type Database from 'better-sqlite3';
import { type AuditEntry, auditHead, type ChainCheck, checkChainAgainstHead, verifyChain } from './audit.ts';
import { FILE_STATES, type FileRow, type FileState, type OutboxEntry, type SourceSighting } from './fileRow.ts';

export interface HistoryLine {
  at: string;
  from_state: string | null;
  to_state: string;
  detail: string | null;
}

export interface SightingLine {
  session_id: number | null;
  device_serial: string | null;
  source_path: string;
  copied: number;
  seen_at: string;
}

export interface SessionRow {
  id: number;
  volume: string;
  device_serial: string | null;
  officer_id: string | null;
  docked_at: string;
  undocked_at: string | null;
  result: string | null;
  files_found: number | null;
  files_copied: number | null;
  files_known: number | null;
  skipped: number | null;
  error: string | null;
  battery: number | null;
  drift_ms: number | null;
  bay: string | null;
  port_path: string | null;
}

/** Which files a list shows; every given condition must hold. */
export interface FileFilter {
  state?: FileState;
  /** Only recordings whose content does not demux cleanly (whatever their state). */
  damaged?: boolean;
  officerId?: string | null;
  caseNo?: string;
  /** Captured at or after this instant (ISO 8601). */
  capturedFrom?: string;
  /** Captured before this instant (ISO 8601). */
  capturedBefore?: string;
}

export interface PageOptions {
  order: 'asc' | 'desc';
  /** The cursor: the last id of the page before (exclusive). */
  after?: number;
  limit: number;
}

/** A recording held for annotation, as `dockctl status` lists it. */
export interface HeldRecording {
  id: number;
  sha256: string | null;
  filename: string;
  reason: string | null;
}

/** Recordings held for annotation: how many, and when the list last changed. */
export interface HeldCount {
  count: number;
  latest: string | null;
}

/** Everything ever ingested and uploaded (the Prometheus counters follow these). */
export interface CatalogTotals {
  ingestedFiles: number;
  ingestedBytes: number;
  uploadedFiles: number;
  uploadedBytes: number;
}

/** The WHERE is the partial index files_pending's own (schema 13): the sum reads that index alone, not the rows. */
export const BYTES_PENDING_SQL = `SELECT COALESCE(SUM(size - upload_offset), 0) b FROM files WHERE state IN ('ready', 'uploading', 'needs-annotation', 'stored')`;

/**
 * The catalog's read side: every query the daemon, dockctl and the page run, by name. Writes are in Catalog, which
 * extends this; the database handle stays inside the store.
 */
export class CatalogReads {
  protected constructor(protected readonly db: Database.Database) {}

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

  /** Every file (in one state), in id order. Small catalogs and tests only: a station's catalog is read with `page`/`each`. */
  list(state?: FileState): FileRow[] {
    return [...this.each({ state })];
  }

  /** One page of files matching `filter`, in id order, after the cursor `after` (the last id of the page before). */
  page(filter: FileFilter, opts: PageOptions): FileRow[] {
    const { sql, args } = this.selectFiles(filter, opts);
    return this.db.prepare(sql).all(...args) as FileRow[];
  }

  /** Every file matching `filter`, one row at a time (memory flat in the catalog's size). */
  each(filter: FileFilter, opts: Partial<PageOptions> = {}): IterableIterator<FileRow> {
    const { sql, args } = this.selectFiles(filter, { order: 'asc', ...opts });
    return freshStatement(this.db, sql).iterate(...args) as IterableIterator<FileRow>;
  }

  private selectFiles(f: FileFilter, o: Partial<PageOptions>): { sql: string; args: unknown[] } {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (cond: string, ...v: unknown[]) => {
      where.push(cond);
      args.push(...v);
    };
    if (f.state) add('state = ?', f.state);
    if (f.damaged) add(`integrity = 'damaged'`);
    if (f.officerId != null) add('officer_id = ?', f.officerId);
    if (f.caseNo != null) add('case_no = ?', f.caseNo);
    // captured_at carries its offset; julianday compares instants.
    if (f.capturedFrom) add('julianday(captured_at) >= julianday(?)', f.capturedFrom);
    if (f.capturedBefore) add('julianday(captured_at) < julianday(?)', f.capturedBefore);
    const desc = o.order === 'desc';
    if (o.after != null) add(desc ? 'id < ?' : 'id > ?', o.after);
    let sql = `SELECT * FROM files${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${desc ? 'DESC' : 'ASC'}`;
    if (o.limit != null) {
      sql += ' LIMIT ?';
      args.push(o.limit);
    }
    return { sql, args };
  }

  /** A file already stored from the same recorder, path, size and mtime (to be confirmed by hash). */
  findKnownSource(s: SourceSighting): FileRow | undefined {
    return this.db
      .prepare(`SELECT f.* FROM sightings s JOIN files f ON f.id = s.file_id
      WHERE s.device_serial IS ? AND s.source_path = ? AND s.source_size = ? AND s.source_mtime_ms = ? AND f.sha256 IS NOT NULL
      ORDER BY s.id DESC LIMIT 1`)
      .get(s.deviceSerial, s.sourcePath, s.size, s.mtimeMs) as FileRow | undefined;
  }

  /** Files to upload: important first, then oldest capture. */
  uploadQueue(limit: number, excludeIds: number[] = []): FileRow[] {
    const rows = this.db
      .prepare(`SELECT * FROM files WHERE state IN ('ready', 'uploading')
      ORDER BY important DESC, julianday(COALESCE(captured_at, created_at)) ASC, id ASC LIMIT ?`)
      .all(limit + excludeIds.length) as FileRow[];
    return rows.filter((r) => !excludeIds.includes(r.id)).slice(0, limit);
  }

  /** Recordings per state: kept by triggers (schema 11); counted when dockctl reads a catalog dockd has not migrated yet. */
  counts(): Record<FileState, number> {
    const out = Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as Record<FileState, number>;
    const kept = (this.db.pragma('user_version', { simple: true }) as number) >= 11;
    const sql = kept ? `SELECT state, n FROM file_counts` : `SELECT state, COUNT(*) n FROM files GROUP BY state`;
    for (const r of this.db.prepare(sql).all() as {
      state: FileState;
      n: number;
    }[])
      out[r.state] = r.n;
    return out;
  }

  /** Bytes of recordings not yet uploaded. */
  bytesPending(): number {
    return (this.db.prepare(BYTES_PENDING_SQL).get() as { b: number }).b;
  }

  /**
   * Recordings held for annotation, oldest first (id order), the first `limit` (all without one): only the columns
   * `dockctl status` shows (whole rows of a thousand held recordings took `dockctl status` 36 ms and as much again in
   * garbage collection).
   */
  heldRecordings(limit?: number): HeldRecording[] {
    return this.db
      .prepare(`SELECT id, sha256, filename, reason FROM files WHERE state = 'needs-annotation' ORDER BY id LIMIT ?`)
      .all(limit ?? -1) as HeldRecording[];
  }

  /** Recordings held for annotation (one officer's when `officerId` is given). */
  held(officerId: string | null = null): HeldCount {
    return this.db
      .prepare(
        `SELECT COUNT(*) count, MAX(updated_at) latest FROM files WHERE state = 'needs-annotation' AND (? IS NULL OR officer_id = ?)`,
      )
      .get(officerId, officerId) as HeldCount;
  }

  /** A docking session's recordings still waiting to go to HQ. */
  uploadsPendingOf(sessionId: number | null): number {
    return (
      this.db.prepare(`SELECT COUNT(*) n FROM files WHERE session_id = ? AND state IN ('ready', 'uploading')`).get(sessionId) as {
        n: number;
      }
    ).n;
  }

  totals(): CatalogTotals {
    return this.db
      .prepare(`SELECT
        COUNT(sha256) ingestedFiles, COALESCE(SUM(CASE WHEN sha256 IS NOT NULL THEN size END), 0) ingestedBytes,
        COUNT(uploaded_at) uploadedFiles, COALESCE(SUM(CASE WHEN uploaded_at IS NOT NULL THEN size END), 0) uploadedBytes
      FROM files`)
      .get() as CatalogTotals;
  }

  /** Uploads that have waited for HQ's receipt since before `before`: how many, and since when the oldest waits. */
  receiptsOverdue(before: string): { count: number; oldestSince: string | null } {
    const r = this.db
      .prepare(`SELECT COUNT(*) n, MIN(uploaded_at) oldest FROM files WHERE state = 'uploaded' AND uploaded_at < ?`)
      .get(before) as { n: number; oldest: string | null };
    return { count: r.n, oldestSince: r.oldest };
  }

  /** Uploaded files last announced before `before` (oldest first): HQ is asked about them again. */
  dueForReannounce(before: string, limit: number): FileRow[] {
    return this.db
      .prepare(
        `SELECT * FROM files WHERE state = 'uploaded' AND COALESCE(announced_at, uploaded_at) < ? ORDER BY uploaded_at LIMIT ?`,
      )
      .all(before, limit) as FileRow[];
  }

  /**
   * Archived files with a signed receipt, archived at or before `cutoff`, whose object is still here (oldest first, at
   * most `limit`). Read through the partial index files_to_free: the archived rows already freed are never visited.
   */
  expiredArchived(cutoff: string, limit: number): FileRow[] {
    return this.db
      .prepare(
        `SELECT * FROM files INDEXED BY files_to_free
        WHERE state = 'archived' AND receipt_at IS NOT NULL AND archived_at <= ? AND local_deleted_at IS NULL
        ORDER BY archived_at LIMIT ?`,
      )
      .all(cutoff, limit) as FileRow[];
  }

  historyOf(fileId: number): HistoryLine[] {
    return this.db
      .prepare(`SELECT at, from_state, to_state, detail FROM history WHERE file_id = ? ORDER BY id`)
      .all(fileId) as HistoryLine[];
  }

  sightingsOf(fileId: number): SightingLine[] {
    return this.db
      .prepare(`SELECT session_id, device_serial, source_path, copied, seen_at FROM sightings WHERE file_id = ? ORDER BY id`)
      .all(fileId) as SightingLine[];
  }

  session(id: number): SessionRow | undefined {
    return this.db.prepare(`SELECT * FROM sessions WHERE id = ?`).get(id) as SessionRow | undefined;
  }

  skippedOf(sessionId: number): { path: string; reason: string; left_behind: number; path_hex: string | null }[] {
    return this.db
      .prepare(`SELECT path, reason, left_behind, path_hex FROM skipped WHERE session_id = ? ORDER BY id`)
      .all(sessionId) as never;
  }

  // ---- audit chain --------------------------------------------------------

  auditEntries(opts: { since?: string; subject?: string } = {}): AuditEntry[] {
    return this.db
      .prepare(`SELECT * FROM audit WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR subject = ?) ORDER BY seq`)
      .all(opts.since ?? null, opts.since ?? null, opts.subject ?? null, opts.subject ?? null) as AuditEntry[];
  }

  auditHead(): { seq: number; hash: string } {
    return auditHead(this.db);
  }

  verifyChain(): ChainCheck {
    return verifyChain(this.db);
  }

  checkChainAgainstHead(head: { seq: number; hash: string }): ReturnType<typeof checkChainAgainstHead> {
    return checkChainAgainstHead(this.db, head);
  }

  // ---- outbox and key/value -----------------------------------------------

  outboxPeek(limit: number): OutboxEntry[] {
    return this.db.prepare(`SELECT seq, topic, payload FROM outbox ORDER BY seq LIMIT ?`).all(limit) as OutboxEntry[];
  }

  outboxSize(): number {
    return (this.db.prepare(`SELECT COUNT(*) n FROM outbox`).get() as { n: number }).n;
  }

  getKv<T>(key: string): T | undefined {
    const r = this.db.prepare(`SELECT value FROM kv WHERE key = ?`).get(key) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as T) : undefined;
  }
}
