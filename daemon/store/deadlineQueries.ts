import type Database from 'better-sqlite3';

/** The states of a recording that is on the station and not yet at HQ (rejected ones are empty files, never sent). */
const NOT_AT_HQ = `('stored', 'needs-annotation', 'ready', 'uploading')`;

/** Recordings of one officer (null: no officer known) that break a deadline. */
export interface OfficerCount {
  officerId: string | null;
  n: number;
}

/**
 * Flags each stored recording whose capture time and docking are known as late (1) or not (0): captured more than
 * `hours` before the docking that stored it. Set once: a later rule or a later sighting does not change it.
 */
export function flagLate(db: Database.Database, hours: number): number {
  // Through the partial index of the rows not yet flagged: left to itself the planner walks the sha256 index, every
  // recording ever stored, at every check (4 s at 100,000 recordings, on the start path).
  return db
    .prepare(`UPDATE files INDEXED BY files_late_unknown SET late = CASE WHEN (julianday(s.docked_at) - julianday(files.captured_at)) * 24 > ? THEN 1 ELSE 0 END
      FROM sessions s
      WHERE files.late IS NULL AND s.id = files.session_id AND files.sha256 IS NOT NULL AND files.captured_at IS NOT NULL
        AND julianday(files.captured_at) IS NOT NULL`)
    .run(hours).changes;
}

/** Late recordings not yet at HQ, per officer. */
export function lateNotAtHq(db: Database.Database): OfficerCount[] {
  return db
    .prepare(`SELECT officer_id officerId, COUNT(*) n FROM files WHERE late = 1 AND state IN ${NOT_AT_HQ}
      GROUP BY officer_id ORDER BY officer_id`)
    .all() as OfficerCount[];
}

/** Recordings waiting for their case number (needs-annotation) longer than `hours` since they were copied, per officer. */
export function annotationOverdue(db: Database.Database, now: string, hours: number): OfficerCount[] {
  return db
    .prepare(`SELECT officer_id officerId, COUNT(*) n FROM files
      WHERE state = 'needs-annotation' AND (julianday(?) - julianday(created_at)) * 24 > ?
      GROUP BY officer_id ORDER BY officer_id`)
    .all(now, hours) as OfficerCount[];
}

/** Recordings not at HQ `hours` after the docking that stored them, per officer. */
export function uploadOverdue(db: Database.Database, now: string, hours: number): OfficerCount[] {
  return db
    .prepare(`SELECT f.officer_id officerId, COUNT(*) n FROM files f LEFT JOIN sessions s ON s.id = f.session_id
      WHERE f.state IN ${NOT_AT_HQ} AND (julianday(?) - julianday(COALESCE(s.docked_at, f.created_at))) * 24 > ?
      GROUP BY f.officer_id ORDER BY f.officer_id`)
    .all(now, hours) as OfficerCount[];
}

/** When a recorder was last seen: docked (a session), or its control channel answered (the audited handshake). */
export function lastSeen(db: Database.Database, serial: string): string | null {
  const r = db
    .prepare(`SELECT MAX(at) at FROM (
      SELECT docked_at at FROM sessions WHERE device_serial = ?
      UNION ALL SELECT at FROM audit WHERE subject = ? AND type = 'recorder.handshake')`)
    .get(serial, serial) as { at: string | null };
  return r.at;
}

/** Since when the station keeps records: its first audit entry (a recorder never seen is measured from it). */
export function inServiceSince(db: Database.Database): string | null {
  return (db.prepare(`SELECT at FROM audit ORDER BY seq LIMIT 1`).get() as { at: string } | undefined)?.at ?? null;
}

/** The deadline checks' reads over one catalog (daemon/status/deadlines.ts). */
export interface DeadlineReads {
  lateNotAtHq(): OfficerCount[];
  annotationOverdue(now: string, hours: number): OfficerCount[];
  uploadOverdue(now: string, hours: number): OfficerCount[];
  lastSeen(serial: string): string | null;
  inServiceSince(): string | null;
}

export function deadlineReads(db: Database.Database): DeadlineReads {
  return {
    lateNotAtHq: () => lateNotAtHq(db),
    annotationOverdue: (now, hours) => annotationOverdue(db, now, hours),
    uploadOverdue: (now, hours) => uploadOverdue(db, now, hours),
    lastSeen: (serial) => lastSeen(db, serial),
    inServiceSince: () => inServiceSince(db),
  };
}
