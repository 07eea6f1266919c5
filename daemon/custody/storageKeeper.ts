import fs from 'node:fs/promises';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import { diskInfo } from '../store/diskInfo.ts';
import { sleep } from '../sleep.ts';

const CHECK_EVERY_MS = 15_000;
/** Objects freed per check at most: a backlog is worked off over the next checks, never in one long pass. */
const PURGE_BATCH = 500;
const DAY_MS = 86_400_000;

/**
 * Disk pressure and retention. Local objects are freed only when archived on HQ's signed receipt and older than
 * retention.localDays since; below storage.lowWaterBytes that happens at once, with an alarm. Below
 * storage.reserveBytes no new copy starts (the recorder keeps its files) until space returns.
 */
export class StorageKeeper implements Service {
  readonly name = 'storage';
  private timer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  /** Copies waiting in waitForRoom: while any waits, DISK_FULL stays raised (only the waiter knows the size it needs). */
  private waiters = 0;

  constructor(private readonly deps: StationContext) {
    this.log = deps.log.child({ component: 'storage' });
  }

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(
      () => void this.check().catch((e) => this.log.error({ err: e }, 'storage check failed')),
      CHECK_EVERY_MS,
    );
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }

  async freeBytes(): Promise<number> {
    return (await diskInfo(this.deps.config.storage.dir, this.deps.host.statfs))?.freeBytes ?? Number.MAX_SAFE_INTEGER;
  }

  /** Frees expired archived objects, raises or clears the disk alarms. */
  async check(): Promise<void> {
    const { config, board } = this.deps;
    const freed = await this.purgeExpired();
    const free = await this.freeBytes();
    if (freed && free < config.storage.lowWaterBytes)
      this.log.warn({ freed, free }, 'still below the low-water mark after freeing expired objects');
    if (free < config.storage.lowWaterBytes) {
      board.raise(
        'DISK_LOW',
        'disk:low',
        `磁盘空间不足 disk low: ${Math.round(free / 1048576)} MiB free (alarm below ${Math.round(config.storage.lowWaterBytes / 1048576)} MiB)`,
      );
    } else {
      board.clear('disk:low');
    }
    if (free >= config.storage.reserveBytes && this.waiters === 0) board.clear('disk:full');
  }

  /**
   * Deletes archived objects past retention; returns how many. Never one without a signed receipt: receipt_at is set
   * only by a receipt verified with hq.receiptKey (an unsigned one archives with it unset).
   */
  async purgeExpired(): Promise<number> {
    const { catalog, objects, config } = this.deps;
    const cutoff = new Date(this.deps.clock.now().getTime() - config.retention.localDays * DAY_MS).toISOString();
    const rows = catalog.expiredArchived(cutoff, PURGE_BATCH);
    let n = 0;
    for (const f of rows) {
      const p = objects.pathOf(f.sha256!);
      try {
        await fs.rm(p, { force: true });
      } catch (e) {
        this.log.error({ file: f.id, err: e }, 'cannot free an expired object');
        continue;
      }
      const at = this.deps.clock.now().toISOString();
      catalog.objectFreed(f, at, `archived ${f.archived_at}, past retention of ${config.retention.localDays} day(s)`);
      n++;
    }
    if (n) this.log.info({ freed: n }, 'freed archived objects past retention');
    return n;
  }

  /** Whether `bytes` more would leave at least storage.reserveBytes free now. */
  async hasRoom(bytes: number): Promise<boolean> {
    return (await this.freeBytes()) - bytes >= this.deps.config.storage.reserveBytes;
  }

  /**
   * Waits until a copy of `bytes` leaves at least storage.reserveBytes free. While waiting, `onWait` gets a reason to
   * show, once; returns false if `signal` aborted.
   */
  async waitForRoom(bytes: number, signal: AbortSignal, onWait: (reason: string | null) => void): Promise<boolean> {
    const { config, board } = this.deps;
    let waiting = false;
    this.waiters++;
    try {
      for (;;) {
        if (signal.aborted) return false;
        const free = await this.freeBytes();
        if (free - bytes >= config.storage.reserveBytes) {
          if (waiting) {
            onWait(null);
            // Another recorder may still be waiting for more room than this one needed.
            if (this.waiters === 1) board.clear('disk:full');
            this.log.info({ free }, 'space is back: copying resumes');
          }
          return true;
        }
        if (!waiting) {
          waiting = true;
          const reason = `磁盘空间不足 disk full: ${Math.round(free / 1048576)} MiB free, a ${Math.round(bytes / 1048576)} MiB copy would go below the reserve of ${Math.round(config.storage.reserveBytes / 1048576)} MiB; copying paused, the recorder keeps its files`;
          board.raise('DISK_FULL', 'disk:full', reason);
          onWait(reason);
          this.log.warn({ free, bytes, reserve: config.storage.reserveBytes }, 'no room for the next copy: paused');
          await this.purgeExpired();
        }
        await sleep(1000, signal);
      }
    } finally {
      this.waiters--;
    }
  }
}
