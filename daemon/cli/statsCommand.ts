import type { Config } from '../config.ts';
import { systemTimeZone } from '../media/zonedTime.ts';
import { parsePeriod } from '../stats/period.ts';
import { nameGroups, statsCsv, type NamedStatistics } from '../stats/statsTable.ts';
import type { Catalog } from '../store/catalog.ts';
import { STATS_GROUPINGS, type StatsCounts, type StatsGrouping } from '../store/statistics.ts';
import { bytes, table } from './format.ts';

export interface StatsOptions {
  from?: string;
  to?: string;
  by?: string;
  json?: boolean;
  csv?: boolean;
}

/** Why these options are wrong, or the statistics they ask for. */
export function collectStats(config: Config, catalog: Catalog, o: StatsOptions): { error: string } | { stats: NamedStatistics } {
  if (o.json && o.csv) return { error: 'stats: --json and --csv do not go together' };
  const by = (o.by ?? 'officer') as StatsGrouping;
  if (!STATS_GROUPINGS.includes(by)) return { error: `stats: --by ${o.by}: one of ${STATS_GROUPINGS.join(', ')}` };
  const period = parsePeriod(o.from, o.to, config.station.timeZone ?? systemTimeZone());
  if (!period.ok) return { error: `stats: ${period.message}` };
  const stats = catalog.statistics({ by, from: period.from, to: period.to, offloadWithinHours: config.rules.offloadWithinHours });
  return { stats: nameGroups(stats, config.devices) };
}

export function renderStats(s: NamedStatistics, o: StatsOptions): string {
  if (o.json) return JSON.stringify(s, null, 2);
  if (o.csv) return statsCsv(s).replace(/\r\n$/, '');
  const head = { officer: 'OFFICER', device: 'RECORDER', day: 'DAY' }[s.by];
  const period = `capture time ${s.from ?? 'any'} … ${s.to ?? 'any'}; late: captured more than ${s.offloadWithinHours} h before docking`;
  if (!s.groups.length) return `no recordings (${period})`;
  const row = (key: string, name: string, c: StatsCounts) => [
    key,
    name,
    String(c.recordings),
    hours(c.durationSeconds),
    bytes(c.bytes),
    String(c.important),
    String(c.late),
    String(c.awaitingAnnotation),
    String(c.atHq),
    c.medianDockToHqSeconds === null ? '-' : span(c.medianDockToHqSeconds),
  ];
  return `${period}\n${table([
    [head, 'NAME', 'RECORDINGS', 'HOURS', 'SIZE', 'IMP', 'LATE', 'AWAITING', 'AT HQ', 'DOCK→HQ (MEDIAN)'],
    ...s.groups.map((g) => row(g.key ?? '(unknown)', g.name ?? '', g)),
    row('TOTAL', '', s.totals),
  ])}`;
}

const hours = (seconds: number) => `${(seconds / 3600).toFixed(1)} h`;

function span(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}
