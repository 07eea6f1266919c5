import { instantInZone, zonedIso } from './zonedTime.ts';

/**
 * 采集时间 typed by a person (`dockctl annotate --captured-at`, the station page): a real calendar date and time of
 * day with its zone offset. Date.parse is no judge of that: it rolls 2026-02-30 over to March 2 and takes a string
 * without an offset as local time, and either would go to HQ as evidence metadata. On failure, `why` is the message
 * without the field's name and the text, for callers that name them their own way.
 */
export type CapturedAtResult = { ok: true; iso: string } | { ok: false; message: string; why: string };

const EXAMPLE = 'e.g. 2026-11-28T09:30:00+08:00';
const WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const WALL_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Why these fields are no real date and time of day, or null when they are one. */
function calendarProblem(y: string, mo: string, d: string, h: string, mi: string, s: string | undefined): string | null {
  const month = Number(mo);
  if (month < 1 || month > 12) return `there is no month ${mo}`;
  const days = daysInMonth(Number(y), month);
  if (Number(d) < 1 || Number(d) > days) return `${MONTHS[month - 1]} ${y} has no day ${d} (it has ${days} days)`;
  if (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))
    return `${h}:${mi}${s !== undefined ? `:${s}` : ''} is not a time of day`;
  return null;
}

function offsetProblem(offset: string): string | null {
  if (offset === 'Z') return null;
  const [h, m] = offset.slice(1).split(':').map(Number);
  return h > 14 || m > 59 || (h === 14 && m > 0) ? `${offset} is not a zone offset (they run from -12:00 to +14:00)` : null;
}

/**
 * Strict ISO 8601 with an offset (`Z` or `±hh:mm`), e.g. 2026-11-28T09:30:00+08:00. With `wallTimeZone`, a time
 * without an offset (as a datetime-local field sends it) is taken as wall time in that zone and given its offset.
 * The text is kept as written (trimmed), only checked.
 */
export function parseCapturedAt(text: string, opts: { wallTimeZone?: string } = {}): CapturedAtResult {
  const value = text.trim();
  const bad = (why: string): CapturedAtResult => ({
    ok: false,
    message: `capture time (采集时间) ${JSON.stringify(value)}: ${why}`,
    why,
  });
  const full = value.match(WITH_OFFSET);
  if (full) {
    const [, y, mo, d, h, mi, s, , offset] = full;
    const problem = calendarProblem(y, mo, d, h, mi, s) ?? offsetProblem(offset);
    return problem ? bad(problem) : { ok: true, iso: value };
  }
  const wall = value.match(WALL_TIME);
  if (wall) {
    const [, y, mo, d, h, mi, s] = wall;
    const problem = calendarProblem(y, mo, d, h, mi, s);
    if (problem) return bad(problem);
    if (!opts.wallTimeZone) return bad(`has no zone offset; add Z or ±hh:mm (${EXAMPLE})`);
    const local = `${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}`;
    const iso = zonedIso(local, opts.wallTimeZone);
    // A wall time skipped when the clocks went forward names no instant in that zone.
    if (instantInZone(new Date(iso), opts.wallTimeZone).slice(0, 19) !== local)
      return bad(`does not exist in ${opts.wallTimeZone} (the clocks skipped it)`);
    return { ok: true, iso };
  }
  return bad(`is not a date and time in ISO 8601 with a zone offset (${EXAMPLE})`);
}
