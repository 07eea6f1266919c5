import { STATS_SUMMARY_MIGRATION } from './statsSchema.ts';

/** Catalog schema. Bump SCHEMA_VERSION and add a step to MIGRATIONS to change it. */
export const SCHEMA_VERSION = 13;

export const MIGRATIONS: Record<number, string> = {
  1: `
  CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    sha256 TEXT UNIQUE,                 -- NULL while copying
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    filename TEXT NOT NULL,             -- name on the recorder
    source_path TEXT NOT NULL,          -- path inside the recorder volume
    device_serial TEXT,
    officer_id TEXT,
    captured_at TEXT,
    captured_at_source TEXT,            -- file-name | creation_time
    recorder_time TEXT,                 -- capture time exactly as the recorder wrote it
    collector TEXT,
    case_no TEXT,
    purpose TEXT,
    place TEXT,
    important INTEGER NOT NULL DEFAULT 0,
    reason TEXT,                        -- why rejected / what annotation is missing
    probe TEXT,                         -- JSON: format, duration, streams
    duration REAL,
    creation_time TEXT,
    upload_url TEXT,
    upload_offset INTEGER NOT NULL DEFAULT 0,
    upload_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    session_id INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    uploaded_at TEXT
  );
  CREATE INDEX files_state ON files(state);
  CREATE TABLE sightings (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    session_id INTEGER,
    device_serial TEXT,
    source_path TEXT NOT NULL,
    source_size INTEGER NOT NULL,
    source_mtime_ms INTEGER NOT NULL,
    copied INTEGER NOT NULL,            -- 1: this sighting wrote the object; 0: already stored
    seen_at TEXT NOT NULL
  );
  CREATE INDEX sightings_source ON sightings(device_serial, source_path, source_size, source_mtime_ms);
  CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    volume TEXT NOT NULL,
    device_serial TEXT,
    officer_id TEXT,
    docked_at TEXT NOT NULL,
    undocked_at TEXT,
    result TEXT,
    files_found INTEGER,
    files_copied INTEGER,
    files_known INTEGER,
    skipped INTEGER,
    error TEXT
  );
  CREATE TABLE skipped (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen_at TEXT NOT NULL
  );
  CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
  );
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,                -- suffix after P/S/, e.g. "event"
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  2: `
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,            -- 1, 2, 3 … with no gaps
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT,                       -- sha256, recorder serial, volume … what the entry is about
    data TEXT NOT NULL,                 -- canonical JSON
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL                  -- sha256(prev_hash, seq, at, type, subject, data)
  );
  CREATE INDEX audit_subject ON audit(subject);
  ALTER TABLE files ADD COLUMN sm3 TEXT;
  ALTER TABLE files ADD COLUMN receipt_at TEXT;
  ALTER TABLE files ADD COLUMN archived_at TEXT;
  ALTER TABLE files ADD COLUMN local_deleted_at TEXT;
  ALTER TABLE files ADD COLUMN announced_at TEXT;
  ALTER TABLE sightings ADD COLUMN volume TEXT;
  ALTER TABLE sightings ADD COLUMN wiped_at TEXT;
  `,
  3: `
  ALTER TABLE files ADD COLUMN clock_drift_ms INTEGER;  -- recorder clock minus station clock, measured at dock
  ALTER TABLE sessions ADD COLUMN battery INTEGER;
  ALTER TABLE sessions ADD COLUMN drift_ms INTEGER;
  ALTER TABLE sessions ADD COLUMN bay TEXT;
  ALTER TABLE sessions ADD COLUMN port_path TEXT;
  `,
  4: `
  ALTER TABLE files ADD COLUMN integrity TEXT;                 -- ok | damaged (NULL until probed)
  ALTER TABLE files ADD COLUMN integrity_note TEXT;            -- the probe's reason for damaged
  ALTER TABLE files ADD COLUMN probe_attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE files ADD COLUMN probe_after TEXT;               -- a probe that failed for a reason of the station's own: retry after
  ALTER TABLE files ADD COLUMN source_path_hex TEXT;           -- the recorder's path bytes, when they are not valid UTF-8
  ALTER TABLE files ADD COLUMN supersedes INTEGER;             -- an earlier copy of the same recorder path that changed after it was copied
  ALTER TABLE files ADD COLUMN derived_sha256 TEXT;            -- a playable copy made from a damaged recording (never instead of it)
  ALTER TABLE skipped ADD COLUMN left_behind INTEGER NOT NULL DEFAULT 0;  -- 1: a recording that is not in the store
  ALTER TABLE skipped ADD COLUMN path_hex TEXT;
  -- Damaged recordings are evidence too: what an earlier dockd rejected for its content (not for being empty) is
  -- probed again and goes on as damaged.
  INSERT INTO history (file_id, at, from_state, to_state, detail)
    SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'rejected', 'stored', 'catalog schema 4: a damaged recording is not rejected; verified again'
    FROM files WHERE state = 'rejected' AND size > 0 AND sha256 IS NOT NULL;
  UPDATE files SET state = 'stored', probe_after = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE state = 'rejected' AND size > 0 AND sha256 IS NOT NULL;
  `,
  5: `
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,                                 -- admins log in with it
    role TEXT NOT NULL CHECK (role IN ('officer', 'admin')),
    officer_id TEXT UNIQUE,                                    -- 警号: officers log in with it; their own recordings carry it
    hash TEXT NOT NULL,                                        -- scrypt$N$r$p$salt$key (never the password)
    disabled INTEGER NOT NULL DEFAULT 0,
    from_config INTEGER NOT NULL DEFAULT 0,                    -- 1: the bootstrap admin of http.adminPassword
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,                               -- sha256 of the cookie's token (the token itself is not kept)
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    source TEXT                                                -- the address it was opened from
  );
  CREATE INDEX web_sessions_user ON web_sessions(user_id);
  `,
  6: `
  -- Statistics (daemon/store/statistics.ts): a period filters on the capture time as an instant (offsets differ).
  CREATE INDEX files_captured_jd ON files(julianday(captured_at));
  -- Every column statistics read, so that counting scans this narrow index instead of the wide rows.
  CREATE INDEX files_stats ON files(officer_id, device_serial, captured_at, state, size, duration, important, session_id, uploaded_at, sha256);
  `,
  7: `
  -- A catalog of 1,000,000 recordings (a busy station's year): lookups that scanned a whole table use an index.
  CREATE INDEX history_file ON history(file_id);                   -- a file's history; dropping a duplicate copy's rows
  CREATE INDEX files_officer ON files(officer_id);                 -- an officer's recordings (page, dockctl files)
  CREATE INDEX files_case ON files(case_no);                       -- one case's recordings
  -- What retention may free: archived with a signed receipt, object not yet deleted (a row leaves it once freed).
  CREATE INDEX files_to_free ON files(archived_at)
    WHERE state = 'archived' AND receipt_at IS NOT NULL AND local_deleted_at IS NULL;
  `,
  8: `
  ALTER TABLE files ADD COLUMN late INTEGER;                   -- 1: captured more than rules.offloadWithinHours before it was docked (NULL until known; set once, kept for ever)
  CREATE INDEX files_late_unknown ON files(id) WHERE late IS NULL;
  CREATE INDEX files_late ON files(officer_id) WHERE late = 1;
  CREATE INDEX sessions_serial ON sessions(device_serial);
  `,
  9: `
  -- Pool recorders: who held which recorder when. A recording is attributed to the holder at its capture time.
  CREATE TABLE recorder_assignments (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    officer_id TEXT NOT NULL,
    officer_name TEXT,
    started_at TEXT NOT NULL,                                  -- station clock when the recorder took the officer id
    ended_at TEXT,                                             -- returned (NULL: held now)
    assigned_by TEXT NOT NULL,
    returned_by TEXT
  );
  CREATE UNIQUE INDEX recorder_assignments_held ON recorder_assignments(serial) WHERE ended_at IS NULL;
  CREATE INDEX recorder_assignments_serial ON recorder_assignments(serial, started_at);
  -- dockctl asks, dockd (which holds the recorders' control channels) carries out and answers here.
  CREATE TABLE recorder_requests (
    id INTEGER PRIMARY KEY,
    op TEXT NOT NULL CHECK (op IN ('assign', 'return')),
    serial TEXT NOT NULL,
    officer_id TEXT,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    done_at TEXT,
    outcome TEXT,                                              -- JSON: {ok, message}
    pid INTEGER                                                -- the dockctl that asked
  );
  CREATE INDEX recorder_requests_pending ON recorder_requests(done_at);
  `,
  10: `
  -- Statistics count the late flag stored at docking (files.late): the covering index of schema 6 takes that column too,
  -- so that counting still reads only the index, never the wide rows.
  DROP INDEX files_stats;
  CREATE INDEX files_stats ON files(officer_id, device_serial, captured_at, state, size, duration, important, session_id, uploaded_at, sha256, late);
  `,
  11: `
  -- How many recordings are in each state, kept by triggers in the transaction of every change: the state snapshot
  -- (dockctl status, /api/state, MQTT) reads a handful of rows instead of counting 1,000,000.
  CREATE TABLE file_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO file_counts (state, n) SELECT state, COUNT(*) FROM files GROUP BY state;
  CREATE TRIGGER file_counts_insert AFTER INSERT ON files BEGIN
    INSERT INTO file_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER file_counts_delete AFTER DELETE ON files BEGIN
    UPDATE file_counts SET n = n - 1 WHERE state = OLD.state;
  END;
  CREATE TRIGGER file_counts_state AFTER UPDATE OF state ON files WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE file_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO file_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
  END;
  `,
  // Statistics read per-day totals and each recording's docking-to-HQ seconds kept by triggers (daemon/store/statsSchema.ts).
  12: STATS_SUMMARY_MIGRATION,
  13: `
  -- The bytes not yet uploaded (dockctl status, the state snapshot: catalogReads.bytesPending) read from this index
  -- alone, not from the rows: at 1,000,000 recordings with a thousand held for annotation, reading their rows took
  -- 2.3 ms of every dockctl status. Partial: only recordings not yet uploaded are in it.
  CREATE INDEX files_pending ON files(state, size, upload_offset)
    WHERE state IN ('ready', 'uploading', 'needs-annotation', 'stored');
  `,
};
