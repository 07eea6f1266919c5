import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { DeadlineReads, OfficerCount } from '../store/deadlineQueries.ts';
import type { AlarmCode } from './board.ts';

const HOUR_MS = 3_600_000;
/** The deadline alarms: each key names whom it concerns (`<kind>:<officer id or recorder serial>`). */
export const DEADLINE_CODES: AlarmCode[] = ['LATE_OFFLOAD', 'ANNOTATION_OVERDUE', 'UPLOAD_OVERDUE', 'RECORDER_NOT_DOCKED'];

interface Wanted {
  code: AlarmCode;
  message: string;
}

/**
 * Watches the deadlines of the local rules (rules.*) and keeps their alarms on the board: raised when a rule is broken,
 * cleared by itself when its cause goes. Checks run on a timer and soon after recordings change state (an event was
 * queued) or a recorder docks; the time is the station's clock only, so a test moves it instead of waiting.
 */
export class DeadlineWatch implements Service {
  readonly name = 'deadlines';
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Timeout | null = null;
  private offs: (() => void)[] = [];
  private readonly log: Logger;

  constructor(
    private readonly ctx: StationContext,
    private readonly opts: { intervalMs?: number } = {},
  ) {
    this.log = ctx.log.child({ component: 'deadlines' });
  }

  async start(): Promise<void> {
    this.check();
    this.timer = setInterval(() => this.check(), this.opts.intervalMs ?? 60_000);
    this.offs.push(
      this.ctx.bus.on('outbox.added', () => this.checkSoon()),
      this.ctx.bus.on('volume.docked', () => this.checkSoon()),
    );
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.timer = this.soon = null;
  }

  /** Many changes in a burst (a docking) make one check. */
  private checkSoon(): void {
    if (this.soon || !this.timer) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.check();
    }, 250);
  }

  /** Flags late recordings, then raises what is broken now and clears what no longer is. */
  check(): void {
    const { board, catalog, config } = this.ctx;
    try {
      const { flagged, result } = catalog.deadlineCheck(config.rules.offloadWithinHours, (q) => [...this.wanted(q)]);
      if (flagged) this.log.debug({ flagged }, 'offload lateness recorded');
      const wanted = new Map<string, Wanted>(result);
      for (const [key, w] of wanted) board.raise(w.code, key, w.message);
      for (const a of [...board.alarms.values()]) if (DEADLINE_CODES.includes(a.code) && !wanted.has(a.key)) board.clear(a.key);
    } catch (err) {
      this.log.error({ err }, 'deadline check failed');
    }
  }

  private *wanted(q: DeadlineReads): Generator<[string, Wanted]> {
    const { config, clock } = this.ctx;
    const now = clock.now();
    const at = now.toISOString();
    const r = config.rules;
    for (const c of q.lateNotAtHq())
      yield [
        `late:${c.officerId ?? '-'}`,
        {
          code: 'LATE_OFFLOAD',
          message: `${this.officer(c)}: ${plural(c.n)} captured more than ${r.offloadWithinHours} h before docking, not yet at HQ · ${c.n} 个录像拍摄后超过 ${r.offloadWithinHours} 小时才采集，尚未上传`,
        },
      ];
    for (const c of q.annotationOverdue(at, r.annotateWithinHours))
      yield [
        `annotation:${c.officerId ?? '-'}`,
        {
          code: 'ANNOTATION_OVERDUE',
          message: `${this.officer(c)}: ${plural(c.n)} still without a case number ${r.annotateWithinHours} h after it was stored · ${c.n} 个录像超过 ${r.annotateWithinHours} 小时未补录案件编号`,
        },
      ];
    for (const c of q.uploadOverdue(at, r.uploadWithinHours))
      yield [
        `upload-overdue:${c.officerId ?? '-'}`,
        {
          code: 'UPLOAD_OVERDUE',
          message: `${this.officer(c)}: ${plural(c.n)} not at HQ ${r.uploadWithinHours} h after docking · ${c.n} 个录像接入超过 ${r.uploadWithinHours} 小时仍未上传`,
        },
      ];
    const since = q.inServiceSince();
    for (const d of config.devices) {
      const seen = q.lastSeen(d.serial);
      const from = seen ?? since;
      if (!from || now.getTime() - Date.parse(from) <= r.dockWithinHours * HOUR_MS) continue;
      const who = `officer ${d.officerId}${d.officerName ? ` ${d.officerName}` : ''}`;
      const when = seen ? `last seen ${seen}` : 'never seen';
      yield [
        `not-docked:${d.serial}`,
        {
          code: 'RECORDER_NOT_DOCKED',
          message: `recorder ${d.serial} (${who}) not docked for more than ${r.dockWithinHours} h (${when}) · 记录仪 ${d.serial}（${d.officerName ?? d.officerId}）超过 ${r.dockWithinHours} 小时未接入`,
        },
      ];
    }
  }

  private officer(c: OfficerCount): string {
    if (!c.officerId) return 'officer unknown';
    const name = this.ctx.config.devices.find((d) => d.officerId === c.officerId)?.officerName;
    return `officer ${c.officerId}${name ? ` ${name}` : ''}`;
  }
}

function plural(n: number): string {
  return n === 1 ? '1 recording' : `${n} recordings`;
}
