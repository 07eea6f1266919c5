import type Database from 'better-sqlite3';
import { dockToHqHistograms, histogramMedian, mergeHistograms } from './dockToHqMedian.ts';
import { type CountRow, compareKeys, filter, KEY, STATS_GROUPINGS, type StatsGrouping, type StatsQuery } from './statsFilter.ts';
import { summaryCounts } from './statsSummary.ts';

/**
 * Statistics over the catalog (统计分析): per officer, recorder or capture day, from totals kept per day by triggers
 * (catalog schema 12) and a histogram of the docking-to-HQ seconds of the recordings at HQ for the median. A
 * recording is a catalogued file with content (not one still being copied); the period filters on its capture time
 * (采集时间), so a recording without one is counted only when no period is given.
 */
export { STATS_GROUPINGS, type StatsGrouping, type StatsQuery } from './statsFilter.ts';

export interface StatsCounts extends Omit<CountRow, 'key'> {
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

/**
 * The counts: from the per-day totals of catalog schema 12 (daemon/store/statsSummary.ts), or, in a catalog dockd has
 * not migrated yet (dockctl opens it read-only), by counting files in one pass over the covering index files_stats.
 */
function countRows(db: Database.Database, q: StatsQuery, summarised: boolean): CountRow[] {
  if (summarised) return summaryCounts(db, q);
  const key = KEY[q.by];
  const { where, params } = filter(q);
  return db
    .prepare(`SELECT ${key} AS key,
        COUNT(*) AS recordings,
        TOTAL(f.size) AS bytes,
        TOTAL(f.duration) AS durationSeconds,
        TOTAL(f.important != 0) AS important,
        TOTAL(COALESCE(f.late,
          (SELECT (julianday(s.docked_at) - julianday(f.captured_at)) * 24 > ? FROM sessions s WHERE s.id = f.session_id))) AS late,
        TOTAL(f.state = 'needs-annotation') AS awaitingAnnotation,
        TOTAL(f.state IN ('uploaded', 'archived')) AS atHq
      FROM files f
      WHERE ${where}
      GROUP BY ${key}`)
    .all(q.offloadWithinHours, ...params) as CountRow[];
}

export function computeStatistics(db: Database.Database, q: StatsQuery): Statistics {
  if (!STATS_GROUPINGS.includes(q.by)) throw new Error(`unknown grouping ${q.by} (one of ${STATS_GROUPINGS.join(', ')})`);
  const summarised = (db.pragma('user_version', { simple: true }) as number) >= 12;
  const rows = countRows(db, q, summarised).sort((a, b) => compareKeys(a.key, b.key));
  const { where, params } = filter(q, !summarised);
  const histograms = dockToHqHistograms(db, KEY[q.by], where, params, summarised, Boolean(q.from || q.to));
  const groups = rows.map((r) => {
    const h = histograms.get(r.key);
    return {
      ...r,
      durationSeconds: Math.round(r.durationSeconds * 1000) / 1000,
      medianDockToHqSeconds: h ? histogramMedian(h) : null,
    };
  });
  const totals: StatsCounts = {
    recordings: 0,
    bytes: 0,
    durationSeconds: 0,
    important: 0,
    late: 0,
    awaitingAnnotation: 0,
    atHq: 0,
    medianDockToHqSeconds: histogramMedian(mergeHistograms(histograms.values())),
  };
  for (const g of groups)
    for (const k of ['recordings', 'bytes', 'durationSeconds', 'important', 'late', 'awaitingAnnotation', 'atHq'] as const)
      totals[k] += g[k];
  totals.durationSeconds = Math.round(totals.durationSeconds * 1000) / 1000;
  return { by: q.by, from: q.from ?? null, to: q.to ?? null, offloadWithinHours: q.offloadWithinHours, groups, totals };
}
