/**
 * The recorder's clock format, `YYYYMMDDhhmmss`: a wall-clock time without a zone. It is read and written in a time
 * zone given by the caller (an IANA name such as `Asia/Shanghai`), or in the process's local zone when none is given.
 * Resolution is one second; sub-second parts are truncated when formatting.
 */

export const BC_TIME_PATTERN = /^\d{14}$/;

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws a RangeError when `timeZone` is not a zone this runtime knows. */
export function assertTimeZone(timeZone: string): void {
  formatterFor(timeZone);
}

function wallClockIn(ms: number, timeZone: string | undefined): WallClock {
  if (timeZone === undefined) {
    const d = new Date(ms);
    return {
      year: d.getFullYear(),
      month: d.getMonth() + 1,
      day: d.getDate(),
      hour: d.getHours(),
      minute: d.getMinutes(),
      second: d.getSeconds(),
    };
  }
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour, minute: parts.minute, second: parts.second };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `date` as the recorder writes it, in `timeZone` (local when undefined). */
export function formatBcTime(date: Date, timeZone?: string): string {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('formatBcTime: invalid date');
  const w = wallClockIn(ms, timeZone);
  if (w.year < 1000 || w.year > 9999) throw new RangeError(`formatBcTime: year ${w.year} does not fit YYYY`);
  return `${w.year}${pad(w.month)}${pad(w.day)}${pad(w.hour)}${pad(w.minute)}${pad(w.second)}`;
}

/** The wall clock fields of a `YYYYMMDDhhmmss` string, or null when it is not a real date and time. */
export function parseBcWallClock(text: string): WallClock | null {
  if (!BC_TIME_PATTERN.test(text)) return null;
  const w: WallClock = {
    year: Number(text.slice(0, 4)),
    month: Number(text.slice(4, 6)),
    day: Number(text.slice(6, 8)),
    hour: Number(text.slice(8, 10)),
    minute: Number(text.slice(10, 12)),
    second: Number(text.slice(12, 14)),
  };
  if (w.year < 1900 || w.month < 1 || w.month > 12 || w.day < 1 || w.hour > 23 || w.minute > 59 || w.second > 59) return null;
  const daysInMonth = new Date(Date.UTC(w.year, w.month, 0)).getUTCDate();
  if (w.day > daysInMonth) return null;
  return w;
}

/** The instant a `YYYYMMDDhhmmss` wall clock names in `timeZone` (local when undefined), or null when invalid. */
export function parseBcTime(text: string, timeZone?: string): Date | null {
  const w = parseBcWallClock(text);
  if (!w) return null;
  if (timeZone === undefined) return new Date(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  // The zone's offset at a guess, then at the corrected instant (they differ only around a DST change).
  let t = asUtc - offsetAt(asUtc, timeZone);
  t = asUtc - offsetAt(t, timeZone);
  return new Date(t);
}

/** Offset of `timeZone` from UTC at instant `ms`, in ms (Asia/Shanghai: +8 h). */
function offsetAt(ms: number, timeZone: string): number {
  const w = wallClockIn(ms, timeZone);
  const wallAsUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return wallAsUtc - Math.floor(ms / 1000) * 1000;
}
