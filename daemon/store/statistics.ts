import type Database from 'better-sqlite3';

/**
 * Statistics over the catalog (统计分析): per officer, recorder or capture day, counted in SQL in one pass over the
 * recordings (plus one over those at HQ for the median). A recording is a catalogued file with content (not one still
 * being copied); the period filters on its capture time (采集时间), so a recording without one is counted only when
 * no period is given.
 */
export const STATS_GROUPINGS = ['officer', 'device', 'day'] as const;
export type StatsGrouping = (typeof STATS_GROUPINGS)[number];

export interface StatsQuery {
  by: StatsGrouping;
  /** Capture times from this instant on (ISO 8601 with an offset; inclusive). */
  from?: string | null;
  /** Capture times before this instant (ISO 8601 with an offset; exclusive). */
  to?: string | null;
  /**
   * rules.offloadWithinHours, for the recordings not yet flagged: a recording is flagged late (or not) for ever by the
   * daemon's deadline check soon after it is stored (`files.late`), and the statistics count that flag, as the
   * LATE_OFFLOAD alarm does; one stored since the last check counts as the check will flag it.
   */
  offloadWithinHours: number;
  /** Only this officer's recordings (an officer looking at the page); null or absent: all. */
  officerId?: string | null;
}

export interface StatsCounts {
  recordings: number;
  bytes: number;
  durationSeconds: number;
  /** Marked important (IMP) by the recorder. */
  important: number;
  /** Flagged late at docking: captured more than rules.offloadWithinHours (as it was then) before the recorder was docked. */
  late: number;
  /** Still waiting for a required field (state needs-annotation). */
  awaitingAnnotation: number;
  /** Uploaded or archived. */
  atHq: number;
  /** Median time from docking to the end of the upload, over the recordings at HQ; null when none is. */
  medianDockToHqSeconds: number | null;
}

export interface StatsGroup extends StatsCounts {
  /** The officer id, recorder serial or capture day (YYYY-MM-DD); null: not known for these recordings. */
  key: string | null;
}

export interface Statistics {
  by: StatsGrouping;
  from: string | null;
  to: string | null;
  offloadWithinHours: number;
  groups: StatsGroup[];
  totals: StatsCounts;
}

export const STATS_COUNT_FIELDS = [
  'recordings',
  'bytes',
  'durationSeconds',
  'important',
  'late',
  'awaitingAnnotation',
  'atHq',
  'medianDockToHqSeconds',
] as const satisfies readonly (keyof StatsCounts)[];

// The capture day is the date as the capture time is written: file-name times carry the station's own offset.
const KEY: Record<StatsGrouping, string> = {
  officer: 'f.officer_id',
  device: 'f.device_serial',
  day: 'substr(f.captured_at, 1, 10)',
};

const AT_HQ = `f.state IN ('uploaded', 'archived')`;

/**
 * The WHERE clause and its parameters. The period compares julianday(captured_at), the expression of the index
 * files_captured_jd, so that a short period does not scan the whole catalog.
 */
function filter(q: StatsQuery): { where: string; params: unknown[] } {
  const parts = ['f.sha256 IS NOT NULL'];
  const params: unknown[] = [];
  if (q.from) {
    parts.push('julianday(f.captured_at) >= julianday(?)');
    params.push(q.from);
  }
  if (q.to) {
    parts.push('julianday(f.captured_at) < julianday(?)');
    params.push(q.to);
  }
  if (q.officerId !== undefined && q.officerId !== null) {
    parts.push('f.officer_id = ?');
    params.push(q.officerId);
  }
  return { where: parts.join(' AND '), params };
}

interface CountRow extends Omit<StatsCounts, 'medianDockToHqSeconds'> {
  key: string | null;
}

export function computeStatistics(db: Database.Database, q: StatsQuery): Statistics {
  if (!STATS_GROUPINGS.includes(q.by)) throw new Error(`unknown grouping ${q.by} (one of ${STATS_GROUPINGS.join(', ')})`);
  const key = KEY[q.by];
  const { where, params } = filter(q);
  const rows = db
    .prepare(`SELECT ${key} AS key,
        COUNT(*) AS recordings,
        TOTAL(f.size) AS bytes,
        TOTAL(f.duration) AS durationSeconds,
        TOTAL(f.important != 0) AS important,
        TOTAL(COALESCE(f.late,
          (SELECT (julianday(s.docked_at) - julianday(f.captured_at)) * 24 > ? FROM sessions s WHERE s.id = f.session_id))) AS late,
        TOTAL(f.state = 'needs-annotation') AS awaitingAnnotation,
        TOTAL(${AT_HQ}) AS atHq
      FROM files f
      WHERE ${where}
      GROUP BY ${key}
      ORDER BY ${key} IS NULL, ${key}`)
    .all(q.offloadWithinHours, ...params) as CountRow[];
  const histograms = dockToHqHistograms(db, key, where, params);
  const groups = rows.map((r) => {
    const h = histograms.get(r.key);
    return {
      ...r,
      durationSeconds: Math.round(r.durationSeconds * 1000) / 1000,
      medianDockToHqSeconds: h ? histogramMedian(h) : null,
    };
  });
  const all = new Map<number, number>();
  for (const h of histograms.values()) for (const b of h) all.set(b.seconds, (all.get(b.seconds) ?? 0) + b.n);
  const totals: StatsCounts = {
    recordings: 0,
    bytes: 0,
    durationSeconds: 0,
    important: 0,
    late: 0,
    awaitingAnnotation: 0,
    atHq: 0,
    medianDockToHqSeconds: all.size
      ? histogramMedian([...all].map(([seconds, n]) => ({ seconds, n })).sort((a, b) => a.seconds - b.seconds))
      : null,
  };
  for (const g of groups)
    for (const k of ['recordings', 'bytes', 'durationSeconds', 'important', 'late', 'awaitingAnnotation', 'atHq'] as const)
      totals[k] += g[k];
  totals.durationSeconds = Math.round(totals.durationSeconds * 1000) / 1000;
  return { by: q.by, from: q.from ?? null, to: q.to ?? null, offloadWithinHours: q.offloadWithinHours, groups, totals };
}

interface Bucket {
  seconds: number;
  n: number;
}

/**
 * Per group, how many recordings at HQ took each number of whole seconds from docking to the end of their upload (a
 * histogram: far fewer rows than recordings, and no sort of every row as a median by window functions needs); the
 * medians are picked from it. `+f.state` keeps the planner on the narrow index files_stats rather than files_state
 * and a lookup of each wide row.
 */
function dockToHqHistograms(db: Database.Database, key: string, where: string, params: unknown[]): Map<string | null, Bucket[]> {
  const rows = db
    .prepare(`SELECT ${key} AS key,
        CAST(round((julianday(f.uploaded_at) - julianday(s.docked_at)) * 86400) AS INTEGER) AS seconds,
        COUNT(*) AS n
      FROM files f JOIN sessions s ON s.id = f.session_id
      WHERE ${where} AND +f.state IN ('uploaded', 'archived') AND f.uploaded_at IS NOT NULL
      GROUP BY 1, 2
      ORDER BY 1, 2`)
    .all(...params) as (Bucket & { key: string | null })[];
  const histograms = new Map<string | null, Bucket[]>();
  for (const r of rows) {
    const h = histograms.get(r.key) ?? [];
    h.push({ seconds: r.seconds, n: r.n });
    histograms.set(r.key, h);
  }
  return histograms;
}

/** The median of a histogram sorted by value. */
function histogramMedian(h: Bucket[]): number {
  const count = h.reduce((sum, b) => sum + b.n, 0);
  const at = (i: number): number => {
    let seen = 0;
    for (const b of h) {
      seen += b.n;
      if (i < seen) return b.seconds;
    }
    return h[h.length - 1].seconds;
  };
  return Math.round((at(Math.floor((count - 1) / 2)) + at(Math.floor(count / 2))) / 2);
}
