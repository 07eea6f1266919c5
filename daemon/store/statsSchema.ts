/**
 * Catalog schema 12 (issue 11: `dockctl stats` over 1,000,000 recordings in under a second). Text of a migration: never
 * change it once released; add a new migration instead.
 *
 * - `files.dock_to_hq_seconds`: a recording's whole seconds from its docking to the end of its upload, once it is at
 *   HQ (NULL otherwise), kept by triggers in the transaction of every change; the median reads it in order from one
 *   index per grouping instead of joining every recording to its docking.
 * - `stats_days`: per officer, recorder and capture day, the counts statistics print, kept by triggers the same way
 *   (like file_counts of schema 11). `min_jd`/`max_jd` are the earliest and latest capture instants ever counted in
 *   a row (not narrowed when a recording leaves it: a wider range only makes a period count that row from files).
 */

/** The whole seconds from the docking (the row's session) to the end of the upload, for a recording at HQ. */
const dockToHq = (r: string) => `CASE WHEN ${r}.state IN ('uploaded', 'archived') AND ${r}.sha256 IS NOT NULL
      AND ${r}.uploaded_at IS NOT NULL THEN CAST(round((julianday(${r}.uploaded_at)
      - julianday((SELECT s.docked_at FROM sessions s WHERE s.id = ${r}.session_id))) * 86400) AS INTEGER) END`;

const key = (r: string) => `json_array(${r}.officer_id, ${r}.device_serial, substr(${r}.captured_at, 1, 10))`;
// Durations as whole microseconds (ffprobe's precision): integer sums stay exact however often a row is taken out and
// put back, where floating-point ones would drift.
const durationUs = (r: string) => `CAST(round(COALESCE(${r}.duration, 0) * 1000000) AS INTEGER)`;

/** The recording of `r` (NEW or OLD) counted into its stats_days row. */
const add = (r: string) => `INSERT INTO stats_days (k, officer_id, device_serial, day, recordings, bytes, duration_us,
      important, late, awaiting, at_hq, no_instant, min_jd, max_jd)
    SELECT ${key(r)}, ${r}.officer_id, ${r}.device_serial, substr(${r}.captured_at, 1, 10), 1, ${r}.size, ${durationUs(r)},
      ${r}.important != 0, COALESCE(${r}.late, 0), ${r}.state = 'needs-annotation', ${r}.state IN ('uploaded', 'archived'),
      julianday(${r}.captured_at) IS NULL, julianday(${r}.captured_at), julianday(${r}.captured_at)
    WHERE ${r}.sha256 IS NOT NULL
    ON CONFLICT (k) DO UPDATE SET recordings = recordings + 1, bytes = bytes + excluded.bytes,
      duration_us = duration_us + excluded.duration_us, important = important + excluded.important,
      late = late + excluded.late, awaiting = awaiting + excluded.awaiting, at_hq = at_hq + excluded.at_hq,
      no_instant = no_instant + excluded.no_instant,
      min_jd = min(COALESCE(min_jd, excluded.min_jd), COALESCE(excluded.min_jd, min_jd)),
      max_jd = max(COALESCE(max_jd, excluded.max_jd), COALESCE(excluded.max_jd, max_jd));`;

/** The recording of `r` taken out of its stats_days row. */
const remove = (r: string) => `UPDATE stats_days SET recordings = recordings - 1, bytes = bytes - ${r}.size,
      duration_us = duration_us - ${durationUs(r)}, important = important - (${r}.important != 0),
      late = late - COALESCE(${r}.late, 0), awaiting = awaiting - (${r}.state = 'needs-annotation'),
      at_hq = at_hq - (${r}.state IN ('uploaded', 'archived')), no_instant = no_instant - (julianday(${r}.captured_at) IS NULL)
    WHERE k = ${key(r)} AND ${r}.sha256 IS NOT NULL;`;

const COUNTED = ['sha256', 'size', 'state', 'officer_id', 'device_serial', 'captured_at', 'duration', 'important', 'late'];

export const STATS_SUMMARY_MIGRATION = `
  ALTER TABLE files ADD COLUMN dock_to_hq_seconds INTEGER;   -- docking to the end of the upload, once at HQ (triggers)
  UPDATE files SET dock_to_hq_seconds = ${dockToHq('files')} WHERE state IN ('uploaded', 'archived');
  CREATE TRIGGER files_dock_to_hq_insert AFTER INSERT ON files WHEN NEW.state IN ('uploaded', 'archived') BEGIN
    UPDATE files SET dock_to_hq_seconds = ${dockToHq('NEW')} WHERE id = NEW.id;
  END;
  CREATE TRIGGER files_dock_to_hq_update AFTER UPDATE OF state, sha256, uploaded_at, session_id ON files
    WHEN NEW.state IN ('uploaded', 'archived') OR NEW.dock_to_hq_seconds IS NOT NULL BEGIN
    UPDATE files SET dock_to_hq_seconds = ${dockToHq('NEW')} WHERE id = NEW.id;
  END;
  CREATE INDEX files_hq_officer ON files(officer_id, dock_to_hq_seconds) WHERE dock_to_hq_seconds IS NOT NULL;
  CREATE INDEX files_hq_device ON files(device_serial, dock_to_hq_seconds) WHERE dock_to_hq_seconds IS NOT NULL;
  -- captured_at too, so that SQLite reads this index alone (it does not take the day from the expression's values)
  CREATE INDEX files_hq_day ON files(substr(captured_at, 1, 10), dock_to_hq_seconds, captured_at)
    WHERE dock_to_hq_seconds IS NOT NULL;

  CREATE TABLE stats_days (
    k TEXT PRIMARY KEY,                 -- json_array(officer_id, device_serial, day): NULL and '' stay apart
    officer_id TEXT,
    device_serial TEXT,
    day TEXT,                           -- substr(captured_at, 1, 10): the capture day as written
    recordings INTEGER NOT NULL,        -- catalogued with content (sha256 known)
    bytes INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    important INTEGER NOT NULL,
    late INTEGER NOT NULL,              -- the stored flags (a recording not flagged yet counts 0 here)
    awaiting INTEGER NOT NULL,          -- needs-annotation
    at_hq INTEGER NOT NULL,             -- uploaded or archived
    no_instant INTEGER NOT NULL,        -- capture time missing or not one julianday() reads
    min_jd REAL,
    max_jd REAL
  ) WITHOUT ROWID;
  INSERT INTO stats_days (k, officer_id, device_serial, day, recordings, bytes, duration_us, important, late, awaiting,
      at_hq, no_instant, min_jd, max_jd)
    SELECT json_array(officer_id, device_serial, substr(captured_at, 1, 10)), officer_id, device_serial,
      substr(captured_at, 1, 10), COUNT(*), SUM(size), SUM(${durationUs('files')}), SUM(important != 0),
      SUM(COALESCE(late, 0)), SUM(state = 'needs-annotation'), SUM(state IN ('uploaded', 'archived')),
      SUM(julianday(captured_at) IS NULL), MIN(julianday(captured_at)), MAX(julianday(captured_at))
    FROM files WHERE sha256 IS NOT NULL
    GROUP BY officer_id, device_serial, substr(captured_at, 1, 10);
  CREATE TRIGGER stats_days_insert AFTER INSERT ON files WHEN NEW.sha256 IS NOT NULL BEGIN
    ${add('NEW')}
  END;
  CREATE TRIGGER stats_days_delete AFTER DELETE ON files WHEN OLD.sha256 IS NOT NULL BEGIN
    ${remove('OLD')}
  END;
  CREATE TRIGGER stats_days_update AFTER UPDATE OF ${COUNTED.join(', ')} ON files
    WHEN ${COUNTED.map((c) => `OLD.${c} IS NOT NEW.${c}`).join(' OR ')} BEGIN
    ${remove('OLD')}
    ${add('NEW')}
  END;
`;
