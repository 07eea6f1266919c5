import type Database from 'better-sqlite3';

/**
 * Requests from dockctl to the running dockd (table `recorder_requests`): dockctl cannot write to a recorder itself
 * (dockd holds its control channel), so it leaves the request in the catalog, with who asked (the real uid, see
 * cli/actor.ts) and its pid, and waits for dockd to write the outcome.
 */
export interface PoolRequest {
  id: number;
  op: 'assign' | 'return';
  serial: string;
  officerId: string | null;
  requestedBy: string;
  requestedAt: string;
  pid: number | null;
}

export interface RequestOutcome {
  ok: boolean;
  message: string;
}

export function addRequest(
  db: Database.Database,
  r: { op: 'assign' | 'return'; serial: string; officerId: string | null; by: string; at: Date; pid: number },
): number {
  return Number(
    db
      .prepare(
        `INSERT INTO recorder_requests (op, serial, officer_id, requested_by, requested_at, pid) VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(r.op, r.serial, r.officerId, r.by, r.at.toISOString(), r.pid).lastInsertRowid,
  );
}

export function pendingRequests(db: Database.Database): PoolRequest[] {
  const rows = db
    .prepare(
      `SELECT id, op, serial, officer_id, requested_by, requested_at, pid FROM recorder_requests WHERE done_at IS NULL ORDER BY id`,
    )
    .all() as {
    id: number;
    op: 'assign' | 'return';
    serial: string;
    officer_id: string | null;
    requested_by: string;
    requested_at: string;
    pid: number | null;
  }[];
  return rows.map((r) => ({
    id: r.id,
    op: r.op,
    serial: r.serial,
    officerId: r.officer_id,
    requestedBy: r.requested_by,
    requestedAt: r.requested_at,
    pid: r.pid,
  }));
}

export function finishRequest(db: Database.Database, id: number, at: Date, outcome: RequestOutcome): void {
  db.prepare(`UPDATE recorder_requests SET done_at = ?, outcome = ? WHERE id = ?`).run(
    at.toISOString(),
    JSON.stringify(outcome),
    id,
  );
}

/** The outcome of a request once dockd has carried it out, else undefined. */
export function requestOutcome(db: Database.Database, id: number): RequestOutcome | undefined {
  const r = db.prepare(`SELECT done_at, outcome FROM recorder_requests WHERE id = ?`).get(id) as
    | { done_at: string | null; outcome: string | null }
    | undefined;
  return r?.done_at && r.outcome ? (JSON.parse(r.outcome) as RequestOutcome) : undefined;
}

/** dockctl's pool requests and dockd's answers (recorder_requests), over the catalog's database. */
export class PoolRequests {
  constructor(private readonly db: Database.Database) {}
  add(r: Parameters<typeof addRequest>[1]): number {
    return addRequest(this.db, r);
  }
  pending(): PoolRequest[] {
    return pendingRequests(this.db);
  }
  finish(id: number, at: Date, outcome: RequestOutcome): void {
    finishRequest(this.db, id, at, outcome);
  }
  outcome(id: number): RequestOutcome | undefined {
    return requestOutcome(this.db, id);
  }
}
