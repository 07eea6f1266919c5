import fs from 'node:fs/promises';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import { diskInfo } from '../store/diskInfo.ts';
import { sleep } from '../sleep.ts';

const CHECK_EVERY_MS = 15_000;
/** Objects freed per check at most: a backlog is worked off over the next checks, never in one long pass. */
const PURGE_BATCH = 500;
const DAY_MS = 86_400_000;
/** A free-space figure older than this is read again before a copy is let in (see freeForCopies). */
const READING_TTL_MS = 1000;
/** Nearer the reserve than this, a copy is let in only on a figure read just now. */
const NEAR_RESERVE = 64 << 20;

/** A copy's bytes counted against the store's free space from its start to its end (StorageKeeper.claim). */
export interface SpaceClaim {
  /** The copy has written `n` bytes so far. */
  wrote(n: number): void;
  /** The copy ended (stored or failed). */
  end(): void;
}

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
  /** The store's free bytes as last read, and when. */
  private reading: { free: number; atMs: number } | null = null;
  /** Bytes the copies under way (every recorder's) have still to write. */
  private unwritten = 0;
  /** Bytes copies wrote since the last reading (that reading may not show them). */
  private writtenSince = 0;

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

  /**
   * Counts a copy of `bytes` against the free space until it ends, whichever recorder makes it: a copy is let in only
   * if it fits beside everything the copies under way have still to write.
   */
  claim(bytes: number): SpaceClaim {
    let written = 0;
    let open = true;
    this.unwritten += bytes;
    return {
      wrote: (n) => {
        if (!open || n <= written) return;
        const delta = Math.min(n, bytes) - written;
        written += delta;
        this.unwritten -= delta;
        this.writtenSince += delta;
      },
      end: () => {
        if (!open) return;
        open = false;
        this.unwritten -= bytes - written;
      },
    };
  }

  /**
   * The free bytes now, less what the copies under way have still to write. The file system is asked again when its
   * last answer is older than READING_TTL_MS, when `fresh`, or when the answer would be near the line (so a copy
   * is not let in on an estimate); else the last answer less what copies wrote since. A station copying a day's
   * photos thus asks once a second, not twice for every file.
   */
  private async freeForCopies(bytes: number, fresh: boolean): Promise<number> {
    const estimate = () => (this.reading ? this.reading.free - this.writtenSince - this.unwritten : 0);
    const nowMs = this.deps.clock.now().getTime();
    const stale = !this.reading || fresh || nowMs - this.reading.atMs > READING_TTL_MS;
    if (stale || estimate() - bytes < this.deps.config.storage.reserveBytes + NEAR_RESERVE) {
      const before = this.writtenSince;
      const free = await this.freeBytes();
      // What was written before the question is in the answer; what was written while it was asked may not be.
      this.writtenSince -= before;
      this.reading = { free, atMs: nowMs };
    }
    return estimate();
  }

  /**
   * Whether a copy of `bytes` would leave at least storage.reserveBytes free now, beside what the copies under way
   * have still to write.
   */
  async hasRoom(bytes: number): Promise<boolean> {
    return (await this.freeForCopies(bytes, false)) - bytes >= this.deps.config.storage.reserveBytes;
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
        const free = await this.freeForCopies(bytes, waiting);
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
