/** One formatter per zone: building an Intl.DateTimeFormat costs far more than using one (it is done per recording). */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Offset of `timeZone` at the given UTC instant, in minutes east of UTC. */
function zoneOffsetMinutes(utcMs: number, timeZone: string): number {
  const parts = formatterFor(timeZone).formatToParts(new Date(utcMs));
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
