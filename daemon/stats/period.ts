import { parseCapturedAt } from '../media/capturedAt.ts';
import { zonedIso } from '../media/zonedTime.ts';

/**
 * The period of `dockctl stats --from/--to` and `GET /api/stats?from=&to=`, over capture times (采集时间).
 * A DATE is either a day, YYYY-MM-DD, in the station's time zone (`--from` from its first second, `--to` through its
 * last: the whole day is in), or a time, ISO 8601 with an offset (2026-12-01T08:00:00+08:00, …Z) or without one
 * (2026-12-01T08:00, station time): `--from` inclusive, `--to` exclusive.
 */
export type PeriodResult = { ok: true; from: string | null; to: string | null } | { ok: false; message: string };

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const EXAMPLES = 'give a day (2026-12-01, station time) or a time (2026-12-01T08:00:00+08:00)';

function bound(name: 'from' | 'to', text: string, timeZone: string): { ok: true; iso: string } | { ok: false; message: string } {
  const value = text.trim();
  const day = value.match(DAY);
  const checked = parseCapturedAt(day ? `${value}T00:00:00` : value, { wallTimeZone: timeZone });
  if (!checked.ok) {
    const { why } = checked;
    return {
      ok: false,
      message: `--${name} ${JSON.stringify(value)}: ${day ? why.replace(/T00:00:00/, '') : why} (${EXAMPLES})`,
    };
  }
  if (!day || name === 'from') return { ok: true, iso: checked.iso };
  const next = new Date(Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]) + 1)).toISOString().slice(0, 10);
  return { ok: true, iso: zonedIso(`${next}T00:00:00`, timeZone) };
}

export function parsePeriod(from: string | undefined | null, to: string | undefined | null, timeZone: string): PeriodResult {
  let fromIso: string | null = null;
  let toIso: string | null = null;
  if (from?.trim()) {
    const b = bound('from', from, timeZone);
    if (!b.ok) return b;
    fromIso = b.iso;
  }
  if (to?.trim()) {
    const b = bound('to', to, timeZone);
    if (!b.ok) return b;
    toIso = b.iso;
  }
  if (fromIso && toIso && Date.parse(fromIso) >= Date.parse(toIso))
    return { ok: false, message: `the period is empty: --from ${from} is not before --to ${to}` };
  return { ok: true, from: fromIso, to: toIso };
}
