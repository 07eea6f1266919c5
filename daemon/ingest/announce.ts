import type { RecorderTile } from '../status/recorderTile.ts';
import type { Discovery } from '../recorder/discover.ts';
import type { IngestContext } from './ingestContext.ts';
import { identifyRecorder } from './recorderIdentity.ts';

/** How many skipped entries the recorder.docked event and the catalog name one by one (the rest are counted). */
const SKIPPED_ANNOUNCED = 100;

/** What the announce step learnt that the copies need. */
export interface Announced {
  /** Recorder clock minus station clock, when the recorder reported it on its control channel. */
  driftMs: number | null;
  /** The officer the recorder named on its control channel (+UID), when it has one. */
  linkedOfficer: { officerId: string; officerName: string | null } | null;
}

/**
 * The announce step, after a session's first walk: who docked (the control channel's word, else the file names),
 * where it sits, what was found and skipped. Written to the tile, the session row and the recorder.docked event.
 */
export function announceSession(
  ctx: IngestContext,
  session: { id: number; volumePath: string; tile: RecorderTile },
  found: Discovery,
): Announced {
  const { catalog } = ctx;
  const { volumePath, tile } = session;
  const linked = ctx.identityFor?.(volumePath);
  const who = linked
    ? {
        serial: linked.serial,
        officerId: linked.officerId,
        officerName: linked.officerName ?? ctx.config.devices.find((d) => d.serial === linked.serial)?.officerName ?? null,
      }
    : identifyRecorder(tile.status.name, found.recordings, ctx.config.devices);
  const place = linked ?? ctx.placeFor?.(volumePath);
  tile.identified({
    ...who,
    ...(linked ? { battery: linked.battery, driftMs: linked.driftMs } : {}),
    ...(place ? { bay: place.bay } : {}),
  });
  const listed = found.skipped.slice(0, SKIPPED_ANNOUNCED);
  const more = found.skippedCount - listed.length;
  const skipped = listed.map((s) => ({ path: s.relPath, reason: s.reason }));
  if (more > 0) skipped.push({ path: '…', reason: `${more} more entries skipped (not recordings); not listed one by one` });
  catalog.recorderDocked(
    session.id,
    {
      device_serial: who.serial,
      officer_id: who.officerId,
      files_found: found.recordings.length,
      skipped: found.skippedCount,
      battery: linked?.battery ?? null,
      drift_ms: linked?.driftMs ?? null,
      bay: place?.bay ?? null,
      port_path: place?.portPath ?? null,
    },
    skipped,
    {
      type: 'recorder.docked',
      at: ctx.now().toISOString(),
      volume: volumePath,
      sessionId: session.id,
      deviceSerial: who.serial,
      officerId: who.officerId,
      officerName: who.officerName,
      bay: place?.bay ?? null,
      battery: linked?.battery ?? null,
      clockDriftMs: linked?.driftMs ?? null,
      files: found.recordings.length,
      bytes: found.recordings.reduce((n, r) => n + r.size, 0),
      skipped: listed,
      skippedCount: found.skippedCount,
      leftBehind: found.leftBehind,
    },
  );
  const slog = ctx.log.child({ volume: volumePath, session: session.id });
  slog.info(
    {
      serial: who.serial,
      officer: who.officerId,
      files: found.recordings.length,
      skipped: found.skippedCount,
      leftBehind: found.leftBehind.length,
    },
    'recorder docked',
  );
  for (const s of listed) slog.warn({ path: s.relPath, reason: s.reason }, 'skipped entry on recorder');
  return {
    driftMs: linked?.driftMs ?? null,
    linkedOfficer: linked ? { officerId: linked.officerId, officerName: who.officerName } : null,
  };
}
