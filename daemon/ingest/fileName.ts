import path from 'node:path';

export type MediaKind = 'video' | 'audio' | 'photo';

const KIND_BY_EXT: Record<string, MediaKind> = {
  '.mp4': 'video',
  '.mov': 'video',
  '.avi': 'video',
  '.ts': 'video',
  '.wav': 'audio',
  '.mp3': 'audio',
  '.aac': 'audio',
  '.amr': 'audio',
  '.m4a': 'audio',
  '.jpg': 'photo',
  '.jpeg': 'photo',
};

const MIME_BY_EXT: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.mov': 'video/quicktime',
  '.avi': 'video/x-msvideo',
  '.ts': 'video/mp2t',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.aac': 'audio/aac',
  '.amr': 'audio/amr',
  '.m4a': 'audio/mp4',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/** The recording kind for a file name, or null when the extension is not a recording. */
export function mediaKind(fileName: string): MediaKind | null {
  return KIND_BY_EXT[path.extname(fileName).toLowerCase()] ?? null;
}

export function mimeType(fileName: string): string {
  return MIME_BY_EXT[path.extname(fileName).toLowerCase()] ?? 'application/octet-stream';
}

export interface ParsedName {
  officerId: string;
  serial: string;
  /** Wall-clock time as written by the recorder: YYYY-MM-DDThh:mm:ss, no zone. */
  localTime: string;
  seq: string;
  important: boolean;
  order: 'officer-first' | 'device-first';
}

// <officerId 6 digits>_<serial 7 chars>_<YYYYMMDDhhmmss>_<seq>[IMP].<ext>, or serial first.
const NAME = /^([A-Za-z0-9]{6,7})_([A-Za-z0-9]{6,7})_(\d{14})_(\d{1,8})(?:_?(IMP))?$/i;

function validWallTime(d: string): string | null {
  const [y, mo, da, h, mi, s] = [
    d.slice(0, 4),
    d.slice(4, 6),
    d.slice(6, 8),
    d.slice(8, 10),
    d.slice(10, 12),
    d.slice(12, 14),
  ].map(Number);
  if (mo < 1 || mo > 12 || da < 1 || h > 23 || mi > 59 || s > 59) return null;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (da > daysInMonth) return null;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(y, 4)}-${p(mo)}-${p(da)}T${p(h)}:${p(mi)}:${p(s)}`;
}

/** Parses a GA/T 947 style recording name; null when the name does not follow it. */
export function parseRecordingName(fileName: string): ParsedName | null {
  const base = path.basename(fileName, path.extname(fileName));
  const m = base.match(NAME);
  if (!m) return null;
  const [, a, b, stamp, seq, imp] = m;
  let officerId: string, serial: string, order: ParsedName['order'];
  if (a.length === 6 && /^\d{6}$/.test(a) && b.length === 7) {
    officerId = a;
    serial = b;
    order = 'officer-first';
  } else if (a.length === 7 && b.length === 6 && /^\d{6}$/.test(b)) {
    serial = a;
    officerId = b;
    order = 'device-first';
  } else return null;
  const localTime = validWallTime(stamp);
  if (!localTime) return null;
  return { officerId, serial, localTime, seq, important: Boolean(imp), order };
}

/** Offset of `timeZone` at the given UTC instant, in minutes east of UTC. */
function zoneOffsetMinutes(utcMs: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return Math.round((asUtc - utcMs) / 60000);
}

function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** A wall time (YYYY-MM-DDThh:mm:ss) in `timeZone` as ISO 8601 with that zone's offset. */
export function zonedIso(localTime: string, timeZone: string): string {
  const [d, t] = localTime.split('T');
  const [y, mo, da] = d.split('-').map(Number);
  const [h, mi, s] = t.split(':').map(Number);
  const wallAsUtc = Date.UTC(y, mo - 1, da, h, mi, s);
  let offset = zoneOffsetMinutes(wallAsUtc, timeZone);
  offset = zoneOffsetMinutes(wallAsUtc - offset * 60000, timeZone);
  return `${localTime}${formatOffset(offset)}`;
}

/** An instant as ISO 8601 in `timeZone` with its offset (for container creation_time, which is UTC). */
export function instantInZone(date: Date, timeZone: string): string {
  const offset = zoneOffsetMinutes(date.getTime(), timeZone);
  const local = new Date(date.getTime() + offset * 60000).toISOString().slice(0, 19);
  return `${local}${formatOffset(offset)}`;
}

export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
