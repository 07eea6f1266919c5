import type { Logger } from '../log.ts';

/**
 * At most one warning per key and interval, so that a broker or HQ repeating the same mistake cannot flood the
 * journal; the next warning says how many were left out in between. The first of each key is always written.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly everyMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {}

  warn(log: Logger, key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.clock();
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.everyMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    log.warn(suppressed ? { ...fields, suppressed, suppressedSinceMs: now - seen!.at } : fields, msg);
  }
}
