import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';

// A small catalog whose statistics are known by construction (test/unit/statistics.test.ts states them), written
// straight into the real SQLite file (with timestamps no ingest would give a test).

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export interface Row {
  officer: string | null;
  device: string | null;
  captured: string | null;
  session: number;
  size: number;
  duration: number | null;
  important?: boolean;
  state: string;
  /** Seconds after the session's docking that the upload finished. */
  uploadedAfter?: number;
  /** The stored flag (files.late) as the daemon's deadline check set it at docking; absent: not flagged yet (NULL). */
  late?: 0 | 1;
}

export const SESSIONS: Record<number, { device: string; officer: string; docked: string }> = {
  1: { device: 'D000001', officer: '000001', docked: '2026-11-02T18:00:00+08:00' },
  2: { device: 'D000002', officer: '000002', docked: '2026-11-03T09:00:00+08:00' },
  3: { device: 'D000001', officer: '000001', docked: '2026-11-04T20:00:00+08:00' },
};

// Counts known by construction: see the expectations below, file by file.
export const ROWS: Row[] = [
  // officer 000001, recorder D000001
  {
    officer: '000001',
    device: 'D000001',
    captured: '2026-11-02T09:00:00+08:00',
    session: 1,
    size: 100,
    duration: 60,
    important: true,
    state: 'archived',
    uploadedAfter: 600,
    late: 0,
  },
  {
    officer: '000001',
    device: 'D000001',
    captured: '2026-11-02T10:00:00+08:00',
    session: 1,
    size: 200,
    duration: 120,
    state: 'uploaded',
    uploadedAfter: 1200,
    late: 0,
  },
  // 30 h before its docking: late
  {
    officer: '000001',
    device: 'D000001',
    captured: '2026-11-01T12:00:00+08:00',
    session: 1,
    size: 300,
    duration: 30,
    state: 'ready',
    late: 1,
  },
  {
    officer: '000001',
    device: 'D000001',
    captured: '2026-11-04T08:00:00+08:00', // 12 h before its docking; not flagged yet (stored since the last check)
    session: 3,
    size: 600,
    duration: 10,
    state: 'archived',
    uploadedAfter: 60,
  },
  // officer 000002, recorder D000002: a photo awaiting annotation, an important one at HQ (9.5 h: in time), one 25 h late
  {
    officer: '000002',
    device: 'D000002',
    captured: '2026-11-03T08:00:00+08:00',
    session: 2,
    size: 400,
    duration: null,
    state: 'needs-annotation',
    late: 0,
  },
  {
    officer: '000002',
    device: 'D000002',
    captured: '2026-11-02T23:30:00+08:00',
    session: 2,
    size: 500,
    duration: 90,
    important: true,
    state: 'uploaded',
    uploadedAfter: 3000,
    late: 0,
  },
  {
    officer: '000002',
    device: 'D000002',
    captured: '2026-11-02T08:00:00+08:00',
    session: 2,
    size: 700,
    duration: 0,
    state: 'ready',
    late: 1,
  },
  // a recording with no name information at all: no officer, recorder or capture time
  { officer: null, device: null, captured: null, session: 2, size: 50, duration: 5, state: 'needs-annotation' },
];

/** The sessions, ROWS and one copy still in progress (no recording yet) written into an open catalog database. */
export function writeStatsRows(db: Database.Database): void {
  const now = '2026-11-05T00:00:00.000Z';
  for (const [id, s] of Object.entries(SESSIONS))
    db.prepare(`INSERT INTO sessions (id, volume, device_serial, officer_id, docked_at) VALUES (?, ?, ?, ?, ?)`).run(
      Number(id),
      `vol${id}`,
      s.device,
      s.officer,
      s.docked,
    );
  const insert = db.prepare(`INSERT INTO files (sha256, size, state, kind, filename, source_path, device_serial, officer_id,
    captured_at, important, duration, session_id, created_at, updated_at, uploaded_at, late)
    VALUES (?, ?, ?, 'video', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  ROWS.forEach((r, i) => {
    const uploaded =
      r.uploadedAfter === undefined
        ? null
        : new Date(Date.parse(SESSIONS[r.session].docked) + r.uploadedAfter * 1000).toISOString();
    insert.run(
      sha(`f${i}`),
      r.size,
      r.state,
      `f${i}.mp4`,
      `f${i}.mp4`,
      r.device,
      r.officer,
      r.captured,
      r.important ? 1 : 0,
      r.duration,
      r.session,
      now,
      now,
      uploaded,
      r.late ?? null,
    );
  });
  // A copy in progress is no recording yet.
  insert.run(
    null,
    999,
    'copying',
    'c.mp4',
    'c.mp4',
    'D000001',
    '000001',
    '2026-11-02T09:00:00+08:00',
    0,
    null,
    1,
    now,
    now,
    null,
    null,
  );
}
