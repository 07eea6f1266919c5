import type Database from 'better-sqlite3';
import { type CountRow, filter, KEY, type StatsQuery } from './statsFilter.ts';

/**
 * The counts of statistics from stats_days (catalog schema 12: per officer, recorder and capture day, kept by triggers),
 * exact as counting files is: a row of stats_days lies wholly inside the period asked for (its earliest and latest
 * capture instants do), or it is counted from files instead (a period that cuts a day, as only a time rather than a
 * day of the station's zone does); the late flag of a recording not flagged yet is worked out from its docking, as
 * when counting files.
 */
const COLUMN = { officer: 'd.officer_id', device: 'd.device_serial', day: 'd.day' } as const;

interface Sums {
  recordings: number;
  bytes: number;
  durationUs: number;
  important: number;
  late: number;
  awaitingAnnotation: number;
  atHq: number;
}

const SUMS = ['recordings', 'bytes', 'durationUs', 'important', 'late', 'awaitingAnnotation', 'atHq'] as const;

export function summaryCounts(db: Database.Database, q: StatsQuery): CountRow[] {
  const groups = new Map<string | null, Sums>();
  const addTo = (key: string | null, s: Partial<Sums>) => {
    const g = groups.get(key) ?? {
      recordings: 0,
      bytes: 0,
      durationUs: 0,
      important: 0,
      late: 0,
      awaitingAnnotation: 0,
      atHq: 0,
    };
    for (const k of SUMS) g[k] += s[k] ?? 0;
    groups.set(key, g);
  };
  const officer = q.officerId !== undefined && q.officerId !== null ? q.officerId : null;
  const period = Boolean(q.from || q.to);
  const bounds = [q.from, q.to].filter((b): b is string => Boolean(b));
  const inside = period
    ? `(d.no_instant = 0${q.from ? ' AND d.min_jd >= julianday(?)' : ''}${q.to ? ' AND d.max_jd < julianday(?)' : ''})`
    : 'true';
  const mine = officer === null ? 'true' : 'd.officer_id = ?';
  const mineParams = officer === null ? [] : [officer];
  const whole = db
    .prepare(`SELECT ${COLUMN[q.by]} AS key, SUM(d.recordings) AS recordings, SUM(d.bytes) AS bytes,
        SUM(d.duration_us) AS durationUs, SUM(d.important) AS important, SUM(d.late) AS late,
        SUM(d.awaiting) AS awaitingAnnotation, SUM(d.at_hq) AS atHq
      FROM stats_days d
      WHERE d.recordings > 0 AND ${mine} AND ${inside}
      GROUP BY 1`)
    .all(...mineParams, ...bounds) as (Sums & { key: string | null })[];
  for (const r of whole) addTo(r.key, r);
  if (period) for (const b of cutDays(db, q, inside, mine, mineParams, bounds)) addTo(b.key, b);
  for (const r of notYetFlagged(db, q)) addTo(r.key, { late: r.late });
  return [...groups].map(([key, g]) => ({
    key,
    recordings: g.recordings,
    bytes: g.bytes,
    durationSeconds: Math.round(g.durationUs / 1000) / 1000,
    important: g.important,
    late: g.late,
    awaitingAnnotation: g.awaitingAnnotation,
    atHq: g.atHq,
  }));
}

interface Day {
  officer: string | null;
  device: string | null;
  day: string;
}

/** The rows of stats_days the period cuts, each counted from files (late: the stored flags only, as in stats_days). */
function cutDays(
  db: Database.Database,
  q: StatsQuery,
  inside: string,
  mine: string,
  mineParams: unknown[],
  bounds: string[],
): (Partial<Sums> & { key: string | null })[] {
  const overlap = `${q.from ? 'd.max_jd >= julianday(?)' : 'true'} AND ${q.to ? 'd.min_jd < julianday(?)' : 'true'}`;
  const days = db
    .prepare(`SELECT d.officer_id AS officer, d.device_serial AS device, d.day AS day FROM stats_days d
      WHERE d.recordings > 0 AND d.day IS NOT NULL AND ${mine} AND NOT ${inside} AND ${overlap}`)
    .all(...mineParams, ...bounds, ...bounds) as Day[];
  if (!days.length) return [];
  const { where, params } = filter(q);
  // files_stats leads with (officer_id, device_serial, captured_at): a day's recordings are one range of it. Every
  // capture time written with the prefix `day` sorts from `day` to `day` with its last character's successor.
  const count = db.prepare(`SELECT COUNT(*) AS recordings, TOTAL(f.size) AS bytes,
      TOTAL(CAST(round(COALESCE(f.duration, 0) * 1000000) AS INTEGER)) AS durationUs, TOTAL(f.important != 0) AS important,
      TOTAL(COALESCE(f.late, 0)) AS late, TOTAL(f.state = 'needs-annotation') AS awaitingAnnotation,
      TOTAL(f.state IN ('uploaded', 'archived')) AS atHq
    FROM files f INDEXED BY files_stats
    WHERE f.officer_id IS ? AND f.device_serial IS ? AND f.captured_at >= ? AND f.captured_at < ?
      AND substr(f.captured_at, 1, 10) = ? AND ${where}`);
  const key = { officer: (d: Day) => d.officer, device: (d: Day) => d.device, day: (d: Day) => d.day }[q.by];
  return days
    .map((d) => ({ key: key(d), ...(count.get(d.officer, d.device, d.day, successor(d.day), d.day, ...params) as Sums) }))
    .filter((c) => c.recordings > 0);
}

/** The smallest string above every string that starts with `s` (code point order, which is UTF-8 byte order). */
function successor(s: string): string {
  const chars = Array.from(s);
  const last = chars.pop();
  if (last === undefined) return '\u{10FFFF}';
  return chars.join('') + String.fromCodePoint((last.codePointAt(0) as number) + 1);
}

/** Recordings stored since the deadline check last ran (late still NULL): late or not by the rule given, from their docking. */
function notYetFlagged(db: Database.Database, q: StatsQuery): { key: string | null; late: number }[] {
  const { where, params } = filter(q);
  return db
    .prepare(`SELECT ${KEY[q.by]} AS key,
        TOTAL((SELECT (julianday(s.docked_at) - julianday(f.captured_at)) * 24 > ? FROM sessions s WHERE s.id = f.session_id)) AS late
      FROM files f INDEXED BY files_late_unknown
      WHERE f.late IS NULL AND ${where}
      GROUP BY 1`)
    .all(q.offloadWithinHours, ...params) as { key: string | null; late: number }[];
}
