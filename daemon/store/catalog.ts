import Database from 'better-sqlite3';
import { cacheStatements } from './statementCache.ts';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../clock.ts';
import { appendAudit, type AuditEntry } from './audit.ts';
import { CatalogReads } from './catalogReads.ts';
import {
  type CopyToFinish,
  FIELD_NAMES,
  type FileFields,
  type NewCopy,
  type FileRow,
  type FileState,
  type SessionFields,
  type SourceSighting,
  type Verdict,
} from './fileRow.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';
import { type DeadlineReads, deadlineReads, flagLate } from './deadlineQueries.ts';
import { computeStatistics, type Statistics, type StatsQuery } from './statistics.ts';
import { type User, UserStore } from './users.ts';
import { type Assignment, Assignments } from './assignments.ts';
import { PoolRequests } from './poolRequests.ts';
import { fileEvent, type OutboxTopics, type StationEvent, type StationEventDraft } from '../status/stationEvents.ts';
import { sqliteAddon } from './sqliteAddon.ts';

export * from './fileRow.ts';

/**
 * The catalog: one SQLite database (WAL) holding every recording, where it was seen, its state history
 * and the MQTT outbox. Every state change is one transaction, so a crash leaves either the change or nothing:
 * a change of several steps (state, history, audit entry, event) is one named method here, never assembled by
 * its caller. The database handle stays inside daemon/store/ (reads are in CatalogReads).
 */
export class Catalog extends CatalogReads {
  /** The station's users and web sessions (same database). */
  readonly users: UserStore;
  /** Pool recorders: who held which recorder when (daemon/pool/). */
  readonly assignments: Assignments;
  /** dockctl's pool requests, carried out by dockd (daemon/pool/poolService.ts). */
  readonly poolRequests: PoolRequests;
  /** Called after an outbox entry is added (the publisher defers its drain past the transaction). */
  onEnqueue: (() => void) | null = null;
  private readonly now: () => Date;

  private constructor(db: Database.Database, now: () => Date) {
    super(db);
    this.now = now;
    this.users = new UserStore(db, now);
    this.assignments = new Assignments(db);
    this.poolRequests = new PoolRequests(db);
  }

  static open(storageDir: string, opts: { readonly?: boolean; now?: () => Date } = {}): Catalog {
    const file = path.join(storageDir, 'catalog.sqlite');
    if (!opts.readonly) mkdirSync(storageDir, { recursive: true });
    const db = new Database(file, {
      readonly: opts.readonly ?? false,
      fileMustExist: opts.readonly ?? false,
      nativeBinding: sqliteAddon(),
    });
    cacheStatements(db);
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
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---- files -------------------------------------------------------------

  /** A row in state `copying` (with the metadata known before the copy) for a source about to be copied. */
  beginCopy(f: NewCopy): number {
    const at = this.stamp();
    return this.tx(() => {
      const id = this.insertFile('copying', f, at, at);
      this.history(id, null, 'copying', f.source_path, at);
      return id;
    });
  }

  /** A new row in `state` with the given fields (and the hashes of a copy already made). */
  private insertFile(state: FileState, f: NewCopy & FileFields, createdAt: string, updatedAt: string): number {
    const cols = Object.keys(f).filter((k) => FIELD_NAMES.has(k));
    return Number(
      this.db
        .prepare(
          `INSERT INTO files (state, created_at, updated_at, ${cols.join(', ')}) VALUES (?, ?, ?, ${cols.map(() => '?').join(', ')})`,
        )
        .run(state, createdAt, updatedAt, ...cols.map((c) => (f as Record<string, unknown>)[c] ?? null)).lastInsertRowid,
    );
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
      const existing = this.sameContent(sha256);
      if (existing !== null) {
        this.db.prepare(`DELETE FROM history WHERE file_id = ?`).run(id);
        this.db.prepare(`DELETE FROM files WHERE id = ? AND state = 'copying'`).run(id);
        this.keepExisting(existing, sighting);
        return { fileId: existing, duplicate: true };
      }
      this.db
        .prepare(`UPDATE files SET sha256 = ?, sm3 = ?, state = 'stored', updated_at = ? WHERE id = ? AND state = 'copying'`)
        .run(sha256, digests.sm3 ?? null, at, id);
      this.history(id, 'copying', 'stored', sha256, at);
      this.addSighting(id, sighting, true);
      return { fileId: id, duplicate: false };
    });
  }

  /**
   * A copy that had no `copying` row (see CopyToFinish.begun), once its object is durable: catalogued as it would
   * have been, with its copying step stamped when the copy began, stored now; or, same content already catalogued,
   * its sighting recorded on the existing file.
   */
  private storeCopied(c: CopyToFinish & { begun: NewCopy & { at: string } }): { fileId: number; duplicate: boolean } {
    const existing = this.sameContent(c.sha256);
    if (existing !== null) {
      this.keepExisting(existing, c.sighting);
      return { fileId: existing, duplicate: true };
    }
    const at = this.stamp();
    const { at: began, ...fields } = c.begun;
    const id = this.insertFile('stored', { ...fields, sha256: c.sha256, sm3: c.digests.sm3 ?? null }, began, at);
    this.history(id, null, 'copying', fields.source_path, began);
    this.history(id, 'copying', 'stored', c.sha256, at);
    this.addSighting(id, c.sighting, true);
    return { fileId: id, duplicate: false };
  }

  private sameContent(sha256: string): number | null {
    const row = this.db.prepare(`SELECT id FROM files WHERE sha256 = ?`).get(sha256) as { id: number } | undefined;
    return row?.id ?? null;
  }

  /** A copy of content already catalogued: its sighting goes on the existing file. */
  private keepExisting(existing: number, sighting: SourceSighting): void {
    this.addSighting(existing, sighting, false);
    // The copy just committed put a freed (archived, past retention) object back on disk: the row says so again.
    this.db.prepare(`UPDATE files SET local_deleted_at = NULL WHERE id = ? AND local_deleted_at IS NOT NULL`).run(existing);
  }

  // ---- group commit (see groupCommit.ts) ----------------------------------

  /** finishCopy for a batch of copies made durable together: one transaction, so one sync of the catalog. */
  finishCopies(batch: CopyToFinish[]): { fileId: number; duplicate: boolean }[] {
    return this.tx(() =>
      batch.map((c) =>
        c.fileId === null
          ? this.storeCopied({ ...c, begun: c.begun! })
          : this.finishCopy(c.fileId, c.sha256, c.sighting, c.digests),
      ),
    );
  }

  /**
   * beginCopy without waiting for the disk: a `copying` row is discarded at the next start whether or not a crash
   * kept it, and the batch's own (synchronous) commit makes it durable with everything before it in the log.
   */
  beginCopyUnsynced(f: NewCopy): number {
    return this.unsynced(() => this.beginCopy(f));
  }

  /** `fn`'s commits written to the log without waiting for the disk; the next synchronous commit syncs them too. */
  private unsynced<T>(fn: () => T): T {
    this.db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
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
    opts: { from?: FileState[]; detail?: string; event?: StationEventDraft } = {},
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
      if (opts.event) this.enqueue('event', { ...opts.event, at } as StationEvent);
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

  /** After a crash: rows left mid-copy are removed (their temp files are swept by the object store). */
  recoverInterruptedCopies(): number {
    return this.tx(() => {
      this.db.prepare(`DELETE FROM history WHERE file_id IN (SELECT id FROM files WHERE state = 'copying')`).run();
      return this.db.prepare(`DELETE FROM files WHERE state = 'copying'`).run().changes;
    });
  }

  /**
   * One deadline check (daemon/status/deadlines.ts) in one transaction: flags the recordings whose lateness became
   * known (set once, kept for ever), then reads what breaks a deadline now.
   */
  deadlineCheck<T>(offloadWithinHours: number, read: (q: DeadlineReads) => T): { flagged: number; result: T } {
    return this.tx(() => ({ flagged: flagLate(this.db, offloadWithinHours), result: read(deadlineReads(this.db)) }));
  }

  /** A pool recorder now holds `officerId` (written to it over its control channel): recorded and audited together. */
  recorderAssigned(a: { serial: string; officerId: string; officerName: string | null; at: Date; by: string }): Assignment {
    return this.tx(() => {
      const held = this.assignments.begin(a);
      this.audit('recorder.assigned', a.serial, {
        officerId: a.officerId,
        officerName: a.officerName,
        startedAt: held.startedAt,
        by: a.by,
      });
      return held;
    });
  }

  /** A pool recorder was returned: its assignment ends, audited together. */
  recorderReturned(serial: string, at: Date, by: string): Assignment {
    return this.tx(() => {
      const a = this.assignments.end(serial, at, by)!;
      this.audit('recorder.returned', serial, { officerId: a.officerId, startedAt: a.startedAt, endedAt: a.endedAt, by });
      return a;
    });
  }

  /** A day's statistics go to HQ (outbox and audit chain) and the day is remembered as sent (kv `sentKey`), together. */
  dailyStatisticsQueued(event: StationEvent<'stats.daily'>, sentKey: string): void {
    this.tx(() => {
      this.enqueue('event', event);
      this.setKv(sentKey, event.day);
    });
  }

  /** Counts per officer, recorder or capture day over a period (daemon/store/statistics.ts). */
  statistics(query: StatsQuery): Statistics {
    return computeStatistics(this.db, query);
  }

  // ---- sessions ----------------------------------------------------------

  openSession(volume: string, at = this.stamp()): number {
    return Number(this.db.prepare(`INSERT INTO sessions (volume, docked_at) VALUES (?, ?)`).run(volume, at).lastInsertRowid);
  }

  updateSession(id: number, f: SessionFields): void {
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

  // ---- outbox (events that must reach the broker, in order, across restarts) ----

  /** Queues a message for the broker; an event is also appended to the audit chain, in the same transaction. */
  enqueue<T extends keyof OutboxTopics>(topic: T, payload: OutboxTopics[T]): void {
    this.tx(() => {
      this.db
        .prepare(`INSERT INTO outbox (topic, payload, created_at) VALUES (?, ?, ?)`)
        .run(topic, JSON.stringify(payload), this.stamp());
      if (topic === 'event') {
        const p = payload as Record<string, unknown>;
        const subject = (p.sha256 ?? p.deviceSerial ?? p.volume ?? p.key ?? null) as string | null;
        appendAudit(this.db, String(p.at ?? this.stamp()), String(p.type), subject, payload);
      }
    });
    this.onEnqueue?.();
  }

  /** An audit-only entry (something that is not announced on MQTT: config loaded, verify, export, ignored receipt …). */
  audit(type: string, subject: string | null, data: Record<string, unknown>): AuditEntry {
    return this.tx(() => appendAudit(this.db, this.stamp(), type, subject, data));
  }

  outboxDelete(seq: number): void {
    this.db.prepare(`DELETE FROM outbox WHERE seq = ?`).run(seq);
  }

  // ---- named changes: each is one transaction, so a crash leaves all of it or nothing ----

  /** HQ holds every byte: uploading → uploaded, announced (file.uploaded). False when a receipt archived it meanwhile. */
  markUploaded(id: number, at: string): boolean {
    return this.tx(() => {
      const row = this.get(id);
      if (!row) return false;
      const fields = { upload_offset: row.size, uploaded_at: at, announced_at: at, last_error: null };
      if (!this.transition(id, 'uploaded', fields, { from: ['uploading'] })) return false;
      const f = this.get(id)!;
      this.enqueue('event', { ...fileEvent('file.uploaded', f, { uploadUrl: f.upload_url }), at });
      return true;
    });
  }

  /**
   * The probe's verdict on a stored file: its new state and fields, announced as file.ingested plus file.rejected,
   * file.damaged and file.needs-annotation as they apply. False when the file was no longer `stored`.
   */
  classified(id: number, v: Verdict): boolean {
    return this.tx(() => {
      if (!this.transition(id, v.state, v.fields, { from: ['stored'], detail: v.detail })) return false;
      const f = this.get(id)!;
      const at = this.stamp();
      this.enqueue('event', { ...fileEvent('file.ingested', f), at });
      if (v.rejected !== undefined) this.enqueue('event', { ...fileEvent('file.rejected', f, { reason: v.rejected }), at });
      if (v.damaged !== undefined) this.enqueue('event', { ...fileEvent('file.damaged', f, { reason: v.damaged }), at });
      if (v.missing?.length) this.enqueue('event', { ...fileEvent('file.needs-annotation', f, { missing: v.missing }), at });
      return true;
    });
  }

  /** A playable copy of a damaged recording was made beside it (file.playable-copy audit entry). */
  playableCopyMade(file: FileRow, copy: { sha256: string; size: number; how: string }): void {
    this.tx(() => {
      this.update(file.id, { derived_sha256: copy.sha256 });
      this.audit('file.playable-copy', file.sha256, { id: file.id, derivedSha256: copy.sha256, size: copy.size, how: copy.how });
    });
  }

  /** The local object of an archived file was deleted (retention): object.deleted audit entry. */
  objectFreed(file: FileRow, at: string, why: string): void {
    this.tx(() => {
      this.update(file.id, { local_deleted_at: at });
      this.audit('object.deleted', file.sha256, { id: file.id, where: 'station store', why });
    });
  }

  /** HQ's signed receipt for a file archived earlier on an unsigned one: receipt.verified audit entry. */
  receiptVerified(file: FileRow, at: string): void {
    this.tx(() => {
      this.update(file.id, { receipt_at: at });
      this.audit('receipt.verified', file.sha256, { id: file.id, archivedAt: file.archived_at });
    });
  }

  /** A recording was deleted from the recorder (wipe gate): its sighting is marked and the deletion announced. */
  wipedFromRecorder(event: StationEvent<'recorder.file-deleted'>): void {
    this.tx(() => {
      this.db
        .prepare(`UPDATE sightings SET wiped_at = ? WHERE file_id = ? AND source_path = ? AND wiped_at IS NULL`)
        .run(event.at, event.id, event.path);
      this.enqueue('event', event);
    });
  }

  /** A docked recorder identified: its session filled in, what was skipped listed, and recorder.docked announced. */
  recorderDocked(
    sessionId: number,
    fields: SessionFields,
    skipped: { path: string; reason: string }[],
    event: StationEvent<'recorder.docked'>,
  ): void {
    this.tx(() => {
      this.updateSession(sessionId, fields);
      for (const s of skipped) this.recordSkipped(sessionId, s.path, s.reason);
      this.enqueue('event', event);
    });
  }

  /** Recordings that stay on the recorder (not in the store): listed with the session and audited. */
  leftBehind(sessionId: number, subject: string, entries: { path: string; reason: string; pathHex?: string }[]): void {
    this.tx(() => {
      for (const l of entries) {
        this.recordSkipped(sessionId, l.path, l.reason, { leftBehind: true, pathHex: l.pathHex ?? null });
        this.audit('recording.left-behind', subject, {
          sessionId,
          path: l.path,
          reason: l.reason,
          ...(l.pathHex ? { pathHex: l.pathHex } : {}),
        });
      }
    });
  }

  /**
   * An audit entry that commits only together with `alongside` (run inside its transaction with the entry): if it
   * throws, the entry is rolled back. dockctl export writes its manifest this way.
   */
  auditWith<T>(type: string, subject: string | null, data: Record<string, unknown>, alongside: (entry: AuditEntry) => T): T {
    return this.tx(() => alongside(this.audit(type, subject, data)));
  }

  /** A new user, audited (user.added) with who added it. */
  addUser(u: Parameters<UserStore['add']>[0], by: string): User {
    return this.tx(() => {
      const user = this.users.add(u);
      this.audit('user.added', u.name, { user: u.name, role: u.role, officerId: user.officerId, by });
      return user;
    });
  }

  /** A new password or PIN, audited (user.password-changed); the user's open sessions end. */
  setUserPassword(name: string, hash: Parameters<UserStore['setPassword']>[1], by: string): ReturnType<UserStore['setPassword']> {
    return this.tx(() => {
      const changed = this.users.setPassword(name, hash);
      this.audit('user.password-changed', name, { user: name, revokedSessions: changed.revoked, by });
      return changed;
    });
  }

  /** Disables (ending every session) or enables a user, audited when anything changed. */
  setUserDisabled(name: string, disabled: boolean, by: string): ReturnType<UserStore['setDisabled']> {
    return this.tx(() => {
      const changed = this.users.setDisabled(name, disabled);
      if (changed.changed || changed.revoked)
        this.audit(disabled ? 'user.disabled' : 'user.enabled', name, { user: name, revokedSessions: changed.revoked, by });
      return changed;
    });
  }

  // ---- small key/value (the last state snapshot, read by dockctl) ---------

  setKv(key: string, value: unknown): void {
    this.db
      .prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`)
      .run(key, JSON.stringify(value));
  }

  /**
   * setKv without waiting for the disk, for what the daemon writes again anyway: the state snapshot, up to four times a
   * second. Synchronous, each one fsynced the log on the event loop while recorders copied (272 ms of a dock of 8
   * bays). A crash loses at most the last snapshots, which the next start writes again.
   */
  setKvUnsynced(key: string, value: unknown): void {
    this.unsynced(() => this.setKv(key, value));
  }
}
