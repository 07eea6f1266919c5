/** What statistics are asked for, and the SQL that picks those recordings from files (alias f). */
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

/** A group's counts before the median is added. */
export interface CountRow {
  key: string | null;
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
}

// The capture day is the date as the capture time is written: file-name times carry the station's own offset.
export const KEY: Record<StatsGrouping, string> = {
  officer: 'f.officer_id',
  device: 'f.device_serial',
  day: 'substr(f.captured_at, 1, 10)',
};

/**
 * The WHERE clause and its parameters: recordings (catalogued files with content; `content: false` leaves that
 * condition to the caller) of the period and officer asked for. The period compares julianday(captured_at), the
 * expression of the index files_captured_jd, so that a short period does not scan the whole catalog.
 */
export function filter(q: StatsQuery, content = true): { where: string; params: unknown[] } {
  const parts = content ? ['f.sha256 IS NOT NULL'] : ['true'];
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

/** Group keys in SQLite's order (`ORDER BY key IS NULL, key`: UTF-8 bytes, not known last). */
export function compareKeys(a: string | null, b: string | null): number {
  if (a === null || b === null) return (a === null ? 1 : 0) - (b === null ? 1 : 0);
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
