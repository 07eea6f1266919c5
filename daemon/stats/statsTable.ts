import type { DeviceEntry } from '../config.ts';
import { STATS_COUNT_FIELDS, type Statistics, type StatsGroup } from '../store/statistics.ts';

/** Statistics as dockctl and the station page hand them out: groups named from the device registry, and as CSV. */
export interface NamedStatistics extends Statistics {
  groups: (StatsGroup & { name: string | null })[];
}

/** Officer groups get the officer's name, recorder groups the name of the officer it is registered to. */
export function nameGroups(stats: Statistics, devices: DeviceEntry[]): NamedStatistics {
  const byOfficer = new Map(devices.filter((d) => d.officerName).map((d) => [d.officerId, d.officerName!]));
  const bySerial = new Map(devices.filter((d) => d.officerName).map((d) => [d.serial, d.officerName!]));
  const name = (key: string | null): string | null => {
    if (key === null) return null;
    if (stats.by === 'officer') return byOfficer.get(key) ?? null;
    if (stats.by === 'device') return bySerial.get(key) ?? null;
    return null;
  };
  return { ...stats, groups: stats.groups.map((g) => ({ ...g, name: name(g.key) })) };
}

/** One RFC 4180 field: quoted when it holds a comma, a quote or a line break (quotes doubled). */
function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const CSV_COLUMNS = ['key', 'name', ...STATS_COUNT_FIELDS] as const;

/** A header line and one line per group (CRLF line ends, RFC 4180). */
export function statsCsv(stats: NamedStatistics): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const g of stats.groups) lines.push(CSV_COLUMNS.map((c) => csvField(g[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
