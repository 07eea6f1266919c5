import type { Logger } from '../log.ts';
import { instantInZone } from '../media/zonedTime.ts';
import type { Service, StationContext } from '../service.ts';
import type { StationEventDraft } from '../status/stationEvents.ts';
import { parsePeriod } from './period.ts';
import { nameGroups } from './statsTable.ts';

/** The last capture day whose `stats.daily` is in the outbox (kv key; survives restarts, so no day is sent twice). */
export const DAILY_SENT_KEY = 'stats.daily.lastDay';
/** After a long stop, the days missed are sent, oldest first, but no further back than this. */
const CATCH_UP_DAYS = 7;

/** YYYY-MM-DD plus `n` days (calendar arithmetic, no time zone involved). */
export function addDays(day: string, n: number): string {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

/**
 * The day's statistics as HQ receives them (event `stats.daily`): the figures of `dockctl stats --from DAY --to DAY`,
 * per officer and per recorder, over the recordings captured that day (station time), as the catalog holds them when
 * the day is over.
 */
export function dailySummary(ctx: StationContext, day: string): StationEventDraft<'stats.daily'> {
  const period = parsePeriod(day, day, ctx.timeZone);
  if (!period.ok) throw new Error(`stats.daily: ${period.message}`);
  const { config, catalog } = ctx;
  const query = { from: period.from, to: period.to, offloadWithinHours: config.rules.offloadWithinHours };
  const officers = nameGroups(catalog.statistics({ ...query, by: 'officer' }), config.devices);
  const devices = nameGroups(catalog.statistics({ ...query, by: 'device' }), config.devices);
  return {
    type: 'stats.daily',
    day,
    from: officers.from!,
    to: officers.to!,
    timeZone: ctx.timeZone,
    offloadWithinHours: officers.offloadWithinHours,
    officers: officers.groups,
    devices: devices.groups,
    totals: officers.totals,
  };
}

/**
 * Sends HQ the statistics of each capture day once it is over: just after midnight, station time (`station.timeZone`),
 * the previous day's `stats.daily` goes into the outbox (and the audit chain) together with the day sent, in one
 * transaction. A station that was stopped over midnight sends the missed days when it starts (at most a week back);
 * one that restarts the same day sends nothing again; the first start sends nothing for the days before it. The time
 * is the station's clock only (a test moves it).
 */
export class DailyStatistics implements Service {
  readonly name = 'daily statistics';
  private timer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(
    private readonly ctx: StationContext,
    private readonly opts: { intervalMs?: number } = {},
  ) {
    this.log = ctx.log.child({ component: 'stats.daily' });
  }

  async start(): Promise<void> {
    this.check();
    this.timer = setInterval(() => this.check(), this.opts.intervalMs ?? 60_000);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Queues every finished day not yet sent; returns the days queued. */
  check(): string[] {
    const { catalog, clock, timeZone } = this.ctx;
    const sent: string[] = [];
    try {
      const yesterday = addDays(instantInZone(clock.now(), timeZone).slice(0, 10), -1);
      const last = catalog.getKv<string>(DAILY_SENT_KEY);
      if (!last) {
        // The first start of a station (or of a catalog from before stats.daily): it reports the days it runs through.
        catalog.setKv(DAILY_SENT_KEY, yesterday);
        return sent;
      }
      if (last > yesterday) {
        // A day sent from the future: the clock was wrong then (or is now). Waiting for that day would stop the summary
        // for as long; go on from today as on a first start, and say so.
        this.log.warn(
          { lastSent: last, yesterday },
          'daily statistics were sent for a day after yesterday: the clock moved back',
        );
        catalog.setKv(DAILY_SENT_KEY, yesterday);
        return sent;
      }
      if (last === yesterday) return sent;
      const earliest = addDays(yesterday, -(CATCH_UP_DAYS - 1));
      let day = [addDays(last, 1), earliest].sort()[1]; // the later of the two (YYYY-MM-DD sorts as it reads)
      for (; day <= yesterday; day = addDays(day, 1)) {
        const summary = dailySummary(this.ctx, day);
        catalog.dailyStatisticsQueued({ ...summary, at: clock.now().toISOString() }, DAILY_SENT_KEY);
        this.log.info({ day, recordings: summary.totals.recordings }, 'daily statistics queued for HQ');
        sent.push(day);
      }
    } catch (err) {
      this.log.error({ err }, 'daily statistics failed');
    }
    return sent;
  }
}
