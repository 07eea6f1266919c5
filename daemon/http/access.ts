import type { Catalog } from '../store/catalog.ts';
import type { User } from '../store/users.ts';
import type { StationState } from './stationState.ts';

/**
 * Who is asking: a logged-in user (officer or admin), or, in kiosk mode, the station's own screen on loopback with
 * no login (bay tiles only, no case data).
 */
export type Viewer = { kind: 'user'; user: User; from: string } | { kind: 'kiosk'; from: string };

export const isAdmin = (v: Viewer | null): boolean => v?.kind === 'user' && v.user.role === 'admin';

/** Viewers that see the same state share a key (and one rendering of each live frame). */
export function viewKey(v: Viewer): string {
  if (v.kind === 'kiosk') return 'kiosk';
  return v.user.role === 'admin' ? 'admin' : `officer:${v.user.officerId ?? ''}`;
}

/** How a user is named in the audit trail and in `by` fields: name, role and source address. */
export function actorName(v: Viewer): string {
  return v.kind === 'user'
    ? `${v.user.name} (${v.user.role}${v.user.officerId ? ` ${v.user.officerId}` : ''}) @${v.from}`
    : `kiosk @${v.from}`;
}

/** The fields every audit entry of a web request carries. */
export function actorFields(v: Viewer): { by: string; user: string | null; role: string; from: string } {
  return v.kind === 'user'
    ? { by: actorName(v), user: v.user.name, role: v.user.role, from: v.from }
    : { by: actorName(v), user: null, role: 'kiosk', from: v.from };
}

/** An officer sees their own recordings (the recording's officer id is theirs); an admin sees all. */
export function mayRead(v: Viewer, file: { officer_id: string | null }): boolean {
  if (v.kind !== 'user') return false;
  if (v.user.role === 'admin') return true;
  return Boolean(v.user.officerId) && file.officer_id === v.user.officerId;
}

type Recorder = StationState['recorders'][number];

/** A bay tile without case data: no officer, serial, file names or error text. */
function tileOnly(r: Recorder): Record<string, unknown> {
  return {
    volume: r.volume,
    name: r.name,
    sessionId: r.sessionId,
    state: r.state,
    dockedAt: r.dockedAt,
    files: r.files,
    bytes: r.bytes,
    safeToUndock: r.safeToUndock,
    battery: r.battery ?? null,
    bay: r.bay ?? null,
    uploadsPending: r.uploadsPending,
    serial: null,
    officerId: null,
    officerName: null,
    current: null,
    error: null,
    driftMs: null,
    redacted: true,
  };
}

/**
 * The station state as this viewer may see it: an admin everything; an officer their own recorders in full and the
 * other bays as tiles, alarms by code only, and only their own held recordings counted; the kiosk only tiles.
 */
export function viewState(s: StationState, v: Viewer, catalog: Catalog): Record<string, unknown> {
  if (isAdmin(v)) return s as unknown as Record<string, unknown>;
  const officerId = v.kind === 'user' ? v.user.officerId : null;
  const held = officerId ? catalog.held(officerId) : { count: 0, latest: null };
  return {
    ...s,
    recorders: s.recorders.map((r) => (officerId && r.officerId === officerId ? r : tileOnly(r))),
    alarms: s.alarms.map((a) => ({ code: a.code, since: a.since, acknowledged: Boolean(a.acknowledged) })),
    uploads: [],
    held,
  };
}
