import type Database from 'better-sqlite3';

/** One officer's hold on a pool recorder, from when the recorder took their officer id to its return. */
export interface Assignment {
  id: number;
  serial: string;
  officerId: string;
  officerName: string | null;
  startedAt: string;
  endedAt: string | null;
  assignedBy: string;
  returnedBy: string | null;
}

interface AssignmentRow {
  id: number;
  serial: string;
  officer_id: string;
  officer_name: string | null;
  started_at: string;
  ended_at: string | null;
  assigned_by: string;
  returned_by: string | null;
}

const toAssignment = (r: AssignmentRow): Assignment => ({
  id: r.id,
  serial: r.serial,
  officerId: r.officer_id,
  officerName: r.officer_name,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  assignedBy: r.assigned_by,
  returnedBy: r.returned_by,
});

/** 9999-12-31T23:59:59.999Z: beyond it (or before 1970) toISOString() changes width; such times take the slow path. */
const MAX_FOUR_DIGIT_YEAR_MS = 253402300799999;

/**
 * Pool recorder assignments in the catalog (table `recorder_assignments`): at most one open assignment per recorder
 * (a unique index), each closed by the recorder's return. Times are the station's clock (ISO 8601, UTC).
 */
export class Assignments {
  constructor(private readonly db: Database.Database) {}

  /** The assignment open now for this recorder, if any. */
  held(serial: string): Assignment | undefined {
    const r = this.db.prepare(`SELECT * FROM recorder_assignments WHERE serial = ? AND ended_at IS NULL`).get(serial) as
      | AssignmentRow
      | undefined;
    return r && toAssignment(r);
  }

  /** Every assignment, newest first (of one recorder when `serial` is given). */
  list(serial?: string): Assignment[] {
    const rows = this.db
      .prepare(`SELECT * FROM recorder_assignments WHERE (? IS NULL OR serial = ?) ORDER BY started_at DESC, id DESC`)
      .all(serial ?? null, serial ?? null) as AssignmentRow[];
    return rows.map(toAssignment);
  }

  begin(a: { serial: string; officerId: string; officerName: string | null; at: Date; by: string }): Assignment {
    const id = this.db
      .prepare(
        `INSERT INTO recorder_assignments (serial, officer_id, officer_name, started_at, assigned_by) VALUES (?, ?, ?, ?, ?)`,
      )
      .run(a.serial, a.officerId, a.officerName, a.at.toISOString(), a.by).lastInsertRowid;
    return toAssignment(this.db.prepare(`SELECT * FROM recorder_assignments WHERE id = ?`).get(id) as AssignmentRow);
  }

  /** Ends the open assignment of this recorder; undefined when there was none. */
  end(serial: string, at: Date, by: string): Assignment | undefined {
    const open = this.held(serial);
    if (!open) return undefined;
    this.db
      .prepare(`UPDATE recorder_assignments SET ended_at = ?, returned_by = ? WHERE id = ?`)
      .run(at.toISOString(), by, open.id);
    return { ...open, endedAt: at.toISOString(), returnedBy: by };
  }

  /**
   * Who held this recorder at `capturedAt` (ISO 8601 with any offset): the assignment whose range holds that instant
   * (from its start, up to but not including its end), or undefined when nobody had it from the pool then.
   */
  holderAt(serial: string, capturedAt: string): Assignment | undefined {
    const t = Date.parse(capturedAt);
    if (Number.isNaN(t)) return undefined;
    // Times carry different offsets (captured_at is local with an offset): compare instants, not strings. The
    // assignments' own times are all toISOString() (UTC, fixed width for years 0000-9999), so the instant in that form
    // orders as they do, and the index on (serial, started_at) finds the one assignment: this runs for every recording
    // ingested, and a pool recorder checked out daily has hundreds of assignments a year.
    if (t < 0 || t > MAX_FOUR_DIGIT_YEAR_MS)
      return this.list(serial).find((a) => Date.parse(a.startedAt) <= t && (a.endedAt === null || t < Date.parse(a.endedAt)));
    const at = new Date(t).toISOString();
    const r = this.db
      .prepare(
        `SELECT * FROM recorder_assignments WHERE serial = ? AND started_at <= ? AND (ended_at IS NULL OR ended_at > ?)
         ORDER BY started_at DESC, id DESC LIMIT 1`,
      )
      .get(serial, at, at) as AssignmentRow | undefined;
    return r && toAssignment(r);
  }
}
