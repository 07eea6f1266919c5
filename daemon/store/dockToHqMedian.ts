import type Database from 'better-sqlite3';

/** How many recordings at HQ took this many whole seconds from docking to the end of their upload. */
export interface Bucket {
  seconds: number;
  n: number;
}

/**
 * Per group, the histogram of docking-to-HQ seconds (far fewer rows than recordings, and no sort of every row as a
 * median by window functions needs); the medians are picked from it. `where` filters files f as statistics do
 * (for `stored`, without the condition on sha256: a recording at HQ has one, and the index of the grouping does not).
 *
 * `stored` (catalog schema 12 on): reads files.dock_to_hq_seconds, set by triggers once a recording is at HQ; without
 * a period SQLite reads it in order from the index of the grouping (files_hq_officer, _device, _day), one pass over
 * the recordings at HQ and no sort; a period reads the recordings it holds through the capture-time index (the
 * grouping's index would have the planner look up every recording at HQ). Otherwise (a catalog dockd has not migrated yet) each recording at HQ is joined
 * to its docking; `+f.state` keeps the planner on the narrow index files_stats rather than files_state.
 */
export function dockToHqHistograms(
  db: Database.Database,
  key: string,
  where: string,
  params: unknown[],
  stored: boolean,
  period: boolean,
): Map<string | null, Bucket[]> {
  const sql = stored
    ? `SELECT ${key} AS key, f.dock_to_hq_seconds AS seconds, COUNT(*) AS n
      FROM files f ${period ? 'INDEXED BY files_captured_jd' : ''}
      WHERE ${where} AND f.dock_to_hq_seconds IS NOT NULL
      GROUP BY 1, 2
      ORDER BY 1, 2`
    : `SELECT ${key} AS key,
        CAST(round((julianday(f.uploaded_at) - julianday(s.docked_at)) * 86400) AS INTEGER) AS seconds,
        COUNT(*) AS n
      FROM files f JOIN sessions s ON s.id = f.session_id
      WHERE ${where} AND +f.state IN ('uploaded', 'archived') AND f.uploaded_at IS NOT NULL
      GROUP BY 1, 2
      ORDER BY 1, 2`;
  const rows = db.prepare(sql).all(...params) as (Bucket & { key: string | null })[];
  const histograms = new Map<string | null, Bucket[]>();
  for (const r of rows) {
    const h = histograms.get(r.key) ?? [];
    h.push({ seconds: r.seconds, n: r.n });
    histograms.set(r.key, h);
  }
  return histograms;
}

/** All the groups' histograms as one, sorted by value. */
export function mergeHistograms(histograms: Iterable<Bucket[]>): Bucket[] {
  const all = new Map<number, number>();
  for (const h of histograms) for (const b of h) all.set(b.seconds, (all.get(b.seconds) ?? 0) + b.n);
  return [...all].map(([seconds, n]) => ({ seconds, n })).sort((a, b) => a.seconds - b.seconds);
}

/** The median of a histogram sorted by value: the middle value, or the mean of the two middle ones rounded; null when empty. */
export function histogramMedian(h: Bucket[]): number | null {
  if (!h.length) return null;
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
