import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { PoolRecorders } from './poolRecorders.ts';
import type { PoolRequest } from '../store/poolRequests.ts';

const POLL_MS = 250;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Carries out what dockctl asks of pool recorders (`dockctl assign`, `dockctl return`): polls the catalog's request
 * table, one request at a time, and writes each outcome back. A request whose dockctl has gone (interrupted) is
 * abandoned unexecuted: nobody would hear its outcome, and an assignment nobody saw is worse than none.
 */
export class PoolService implements Service {
  readonly name = 'pool recorders';
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly log: Logger;

  constructor(
    private readonly ctx: StationContext,
    private readonly pool: PoolRecorders,
  ) {
    this.log = ctx.log.child({ component: 'pool' });
  }

  async start(): Promise<void> {
    this.timer = setInterval(() => void this.poll(), POLL_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const r of this.ctx.catalog.poolRequests.pending()) await this.carryOut(r);
    } catch (e) {
      this.log.error({ err: e }, 'pool request failed');
    } finally {
      this.busy = false;
    }
  }

  private async carryOut(r: PoolRequest): Promise<void> {
    const { catalog, clock } = this.ctx;
    if (r.pid !== null && !processAlive(r.pid)) {
      catalog.poolRequests.finish(r.id, clock.now(), { ok: false, message: 'abandoned: the dockctl that asked is gone' });
      return;
    }
    const by = `${r.requestedBy} via dockctl`;
    const outcome =
      r.op === 'assign' ? await this.pool.assign(r.serial, r.officerId ?? '', by) : await this.pool.giveBack(r.serial, by);
    catalog.poolRequests.finish(r.id, clock.now(), { ok: outcome.ok, message: outcome.message });
  }
}
