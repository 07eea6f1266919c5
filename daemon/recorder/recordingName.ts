import path from 'node:path';

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
