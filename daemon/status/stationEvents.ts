import type { FileRow, FileState } from '../store/fileRow.ts';
import type { StatsCounts, StatsGroup } from '../store/statistics.ts';

/**
 * The events dockd publishes on P/S/event (and appends to the audit chain), by `type`: the contract of DESIGN.md and
 * the README's MQTT section. Every payload also carries `type` and `at`. Model: zigbee2mqtt's lib/types/api.ts.
 */

/** What every file event says about its recording. */
export interface FileFacts {
  id: number;
  sha256: string | null;
  size: number;
  filename: string;
  sourcePath: string;
  deviceSerial: string | null;
  officerId: string | null;
  capturedAt: string | null;
  important: boolean;
  state: FileState;
  integrity: string | null;
  integrityNote?: string;
  supersedes?: number;
}

/** What a file event adds to the facts, by type. */
export interface FileEventExtras {
  'file.ingested': Record<never, never>;
  'file.rejected': { reason: string };
  'file.damaged': { reason: string | null };
  'file.needs-annotation': { missing: string[] };
  'file.uploaded': { uploadUrl: string | null; reannounced?: boolean };
  'file.archived': { signedReceipt: boolean };
  'file.reupload': { reason: string };
  'file.reprobed': {
    by: string;
    previous: string | null;
    sentToHqAs?: string;
    user?: string | null;
    role?: string;
    from?: string;
  };
}

export type FileEventType = keyof FileEventExtras;

export type SkippedEntryFacts = { relPath: string; reason: string };
export type LeftBehindFacts = { path: string; reason: string; pathHex?: string };

export type StationEvents = { [K in FileEventType]: FileFacts & FileEventExtras[K] } & {
  'file.annotated': {
    id: number;
    sha256: string | null;
    state: FileState;
    by: string;
    old: { caseNo: string | null; purpose: string | null; place: string | null; collector: string | null; capturedAt?: null };
    new: { caseNo: string | null; purpose: string | null; place: string | null; collector: string | null; capturedAt?: string };
    missing: string[];
  };
  'recorder.docked': {
    volume: string;
    sessionId: number;
    deviceSerial: string | null;
    officerId: string | null;
    officerName: string | null;
    bay: string | null;
    battery: number | null;
    clockDriftMs: number | null;
    files: number;
    bytes: number;
    skipped: SkippedEntryFacts[];
    skippedCount: number;
    leftBehind: LeftBehindFacts[];
  };
  'recorder.safe-to-undock': {
    volume: string;
    sessionId: number;
    deviceSerial: string | null;
    files: number;
    bytes: number;
    msSinceDocked: number;
  };
  'recorder.undocked': {
    volume: string;
    name: string;
    sessionId: number | null;
    deviceSerial: string | null;
    complete: boolean;
    leftBehind: LeftBehindFacts[];
  };
  'recorder.file-deleted': {
    sha256: string | null;
    id: number;
    path: string;
    deviceSerial: string | null;
    method: string;
    why: string;
  };
  alarm: { code: string; key: string; message: string; active: boolean; since: string };
  /** A capture day's statistics (daemon/stats/dailySummary.ts), sent once just after that day ends. */
  'stats.daily': {
    /** YYYY-MM-DD in the station's time zone. */
    day: string;
    /** The day's first instant and the next day's (exclusive), ISO 8601 with the station's offset. */
    from: string;
    to: string;
    timeZone: string;
    offloadWithinHours: number;
    officers: (StatsGroup & { name: string | null })[];
    devices: (StatsGroup & { name: string | null })[];
    totals: StatsCounts;
  };
};

export type StationEventType = keyof StationEvents;

/** An event as published: its payload with `type` and `at`. */
export type StationEvent<K extends StationEventType = StationEventType> = {
  [T in K]: { type: T; at: string } & StationEvents[T];
}[K];

/** An event before the store stamps it with the time of the change it reports. */
export type StationEventDraft<K extends StationEventType = StationEventType> = {
  [T in K]: { type: T; at?: string } & StationEvents[T];
}[K];

/** The event payload that names a file on MQTT. */
export function fileEvent<K extends FileEventType>(
  type: K,
  f: FileRow,
  ...[extra]: keyof FileEventExtras[K] extends never ? [] : [FileEventExtras[K]]
): StationEventDraft<K> {
  return {
    type,
    id: f.id,
    sha256: f.sha256,
    size: f.size,
    filename: f.filename,
    sourcePath: f.source_path,
    deviceSerial: f.device_serial,
    officerId: f.officer_id,
    capturedAt: f.captured_at,
    important: Boolean(f.important),
    state: f.state,
    integrity: f.integrity,
    ...(f.integrity_note ? { integrityNote: f.integrity_note } : {}),
    ...(f.supersedes ? { supersedes: f.supersedes } : {}),
    ...extra,
  } as unknown as StationEventDraft<K>;
}

/** What goes through the catalog's outbox, by topic (only events: state and the audit head are published directly). */
export interface OutboxTopics {
  event: StationEvent;
}
