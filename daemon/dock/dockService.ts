import path from 'node:path';
import { MountRootWatcher } from '../../drivers/mounts/mountRootWatcher.ts';
import type { EventBus } from '../events.ts';
import { classifyStored } from '../ingest/classify.ts';
import { UNDOCKED, VolumeSession, type IngestDeps } from '../ingest/ingestVolume.ts';
import { sleep } from '../sleep.ts';
import type { Logger } from '../log.ts';

interface Session { controller: AbortController; done: Promise<void> }

/**
 * One ingest session per docked volume, at most `dock.concurrency` copying at once. An undock aborts the session;
 * files not yet stored stay on the recorder and are taken on the next dock.
 */
export class DockService {
  private watcher: MountRootWatcher | null = null;
  private readonly sessions = new Map<string, Session>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly deps: IngestDeps & { bus: EventBus; onUndocked?: (volume: string) => void }) { this.log = deps.log.child({ component: 'dock' }); }

  async start(): Promise<void> {
    await this.recoverStored();
    this.watcher = new MountRootWatcher(this.deps.config.dock.mountRoots);
    this.watcher.on('docked', (v) => this.docked(v));
    this.watcher.on('undocked', (v) => this.undocked(v));
    this.watcher.on('error', (e) => this.log.error({ err: e.message }, 'mount root watcher error'));
    await this.watcher.start();
    this.log.info({ mountRoots: this.deps.config.dock.mountRoots }, 'watching mount roots');
  }

  /** Stops intake: no new sessions, running copies are interrupted (their partial files discarded). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.watcher?.stop();
    for (const s of this.sessions.values()) s.controller.abort();
    for (const w of this.waiting.splice(0)) w();
    await Promise.allSettled([...this.sessions.values()].map((s) => s.done));
  }

  /** Files stored before a crash but not yet verified are verified now (from the stored copy). */
  private async recoverStored(): Promise<void> {
    for (const f of this.deps.catalog.list('stored')) {
      try {
        const r = await classifyStored(this.deps, f.id);
        this.log.info({ file: f.id, state: r.state }, 'verified a file stored before the last stop');
      } catch (e) { this.log.error({ file: f.id, err: (e as Error).message }, 'cannot verify stored file'); }
    }
    this.deps.onReady();
  }

  private async slot(signal: AbortSignal): Promise<boolean> {
    while (this.active >= this.deps.config.dock.concurrency) {
      if (signal.aborted || this.stopping) return false;
      await new Promise<void>((r) => this.waiting.push(r));
    }
    if (signal.aborted || this.stopping) return false;
    this.active++;
    return true;
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  /** A volume mounted by dockd itself (USB mass storage), outside the watched mount roots. */
  dockVolume(volume: string): void { this.docked(volume); }

  undockVolume(volume: string): void { this.undocked(volume); }

  private docked(volume: string): void {
    if (this.stopping) return;
    const previous = this.sessions.get(volume)?.done;
    const controller = new AbortController();
    const { signal } = controller;
    const run = async () => {
      await previous; // a re-dock waits for the unplugged session to wind down
      if (signal.aborted) return;
      const volumeSession = new VolumeSession(this.deps, volume);
      try {
        await volumeSession.settle(signal);
        // Passes repeat while the volume stays docked: a file still being written, or added later, is taken too.
        while (!signal.aborted) {
          const { todo } = await volumeSession.pending().catch(() => ({ todo: null }));
          if (todo === null) break; // the volume is gone; the undock event follows
          if (todo.length || volumeSession.status.state === 'identifying') {
            if (!(await this.slot(signal))) break;
            let state;
            try { state = await volumeSession.pass(signal); } finally { this.release(); }
            if (state === 'done') this.deps.board.clear(`unplugged:${volume}`);
            if (state === 'unplugged') break;
          }
          if (this.deps.config.dock.wipe === 'after-archive') await volumeSession.wipeArchived(signal);
          await sleep(this.deps.config.dock.rescanSeconds * 1000, signal);
        }
      } catch (e) {
        this.log.error({ volume, err: (e as Error).message }, 'ingest session failed');
      } finally {
        volumeSession.close(!this.stopping);
      }
    };
    const session: Session = { controller, done: run().finally(() => { if (this.sessions.get(volume) === session) this.sessions.delete(volume); }) };
    this.sessions.set(volume, session);
  }

  private undocked(volume: string): void {
    const s = this.sessions.get(volume);
    s?.controller.abort(UNDOCKED);
    const status = this.deps.board.recorders.get(volume);
    this.deps.catalog.enqueue('event', {
      type: 'recorder.undocked', at: this.deps.now().toISOString(), volume, name: path.basename(volume),
      sessionId: status?.sessionId ?? null, deviceSerial: status?.serial ?? null, complete: status?.state === 'done',
    });
    if (status && status.state !== 'done') {
      this.deps.board.raise('RECORDER_UNPLUGGED', `unplugged:${volume}`, `recorder ${status.serial ?? path.basename(volume)} removed before all files were stored; dock it again`);
    } else {
      this.deps.board.clear(`unplugged:${volume}`);
    }
    this.deps.board.removeRecorder(volume);
    void s?.done.then(() => { if (!this.sessions.has(volume)) this.deps.board.removeRecorder(volume); });
    this.deps.onUndocked?.(volume);
    this.log.info({ volume, complete: status?.state === 'done' }, 'recorder undocked');
  }
}
