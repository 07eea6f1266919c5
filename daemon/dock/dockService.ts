import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RecorderWipe } from '../custody/recorderWipe.ts';
import { classifyStored } from '../ingest/classify.ts';
import type { FileRow } from '../store/catalog.ts';
import { GroupCommit } from '../store/groupCommit.ts';
import { UNDOCKED, VolumeSession, type IngestContext, type SessionContext } from '../ingest/ingestVolume.ts';
import { sleep } from '../sleep.ts';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { Intake } from './intake.ts';

const PROBE_RETRY_CHECK_MS = 2000;

/**
 * The longest a stored file waits for its verification while recorders copy: then one probe runs beside the copies. A
 * station whose bays never stop copying would otherwise verify, and so upload, nothing until they did.
 */
export const PROBE_MAX_WAIT_MS = 60_000;

/**
 * Whether the first waiting verification may start: a free probe slot and no recorder copying (copies first: the
 * officer waits for copies, nobody waits for a probe), or, beside the copies, one probe at a time for a file that has
 * waited PROBE_MAX_WAIT_MS.
 */
export function probeMayStart(s: { running: number; slots: number; copying: boolean; waitedMs: number }): boolean {
  if (s.running >= s.slots) return false;
  return !s.copying || (s.running === 0 && s.waitedMs >= PROBE_MAX_WAIT_MS);
}

interface Session {
  controller: AbortController;
  done: Promise<void>;
}

/** A stored file waiting for its verification (DockService.probeQueue). */
interface ProbeWaiter {
  id: number;
  what: string | null;
  /** When it was queued (the station clock, ms). */
  queuedAtMs: number;
  resolve: (row: FileRow) => void;
  reject: (e: unknown) => void;
}

/**
 * One ingest session per docked volume, at most `dock.concurrency` copying at once. An undock aborts the session;
 * files not yet stored stay on the recorder and are taken on the next dock.
 */
export class DockService implements Service {
  readonly name = 'dock';
  private offs: (() => void)[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private probeTimer: NodeJS.Timeout | null = null;
  /** Files being verified now (by a copy, the start-up recovery or a retry), so none is probed twice at once. */
  private readonly probing = new Set<number>();
  private probesRunning = 0;
  private readonly probeSlots = Math.max(1, os.availableParallelism() - 1);
  /**
   * Files waiting for their verification, first come first served. One queue and one timer, however many wait: a
   * waiter per file that woke each second and at every probe (as before) cost O(files) at each wake, and added a
   * reaction to one shared promise at each wake while recorders copied (32 bays of distinct recordings: 8,640 waiters).
   */
  private readonly probeQueue: ProbeWaiter[] = [];
  /** While files wait for the copies to end: the queue looked at again in a second (a copy may pause without a wake). */
  private probeRecheck: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly log: Logger;

  private readonly deps: SessionContext;

  /** Volumes come from the intake (`volume.docked` / `volume.undocked` on the bus), which also says whose they are. */
  constructor(
    private readonly ctx: StationContext,
    extra: { intake: Intake; space: IngestContext['space'] },
  ) {
    this.log = ctx.log.child({ component: 'dock' });
    const { intake } = extra;
    const assignments = ctx.catalog.assignments;
    this.deps = {
      config: ctx.config,
      catalog: ctx.catalog,
      objects: ctx.objects,
      media: ctx.host.media,
      board: ctx.board,
      log: ctx.log,
      now: () => ctx.clock.now(),
      timeZone: ctx.timeZone,
      stationId: ctx.config.station.id,
      onReady: () => ctx.bus.emit('upload.wanted'),
      space: extra.space,
      identityFor: (volume) => intake.identityFor(volume),
      placeFor: (volume) => intake.placeFor(volume),
      holderAt: (serial, capturedAt) => assignments.holderAt(serial, capturedAt),
      volumeFor: (volume) => intake.volumeFor(volume),
      verify: (id) => this.verifyNow(id, null),
      commits: new GroupCommit(ctx.objects, ctx.catalog),
      threads: ctx.host.threads,
    };
  }

  async start(): Promise<void> {
    // Files stored before the last stop are verified in the background: docking must not wait for them.
    void this.recoverStored();
    this.probeTimer = setInterval(() => void this.retryProbes(), PROBE_RETRY_CHECK_MS);
    this.offs.push(
      this.ctx.bus.on('volume.docked', (v) => this.docked(v)),
      this.ctx.bus.on('volume.undocked', (v) => this.undocked(v)),
    );
  }

  /** Stops intake: no new sessions, running copies are interrupted (their partial files discarded). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.probeRecheck) clearTimeout(this.probeRecheck);
    for (const off of this.offs.splice(0)) off();
    for (const s of this.sessions.values()) s.controller.abort();
    for (const w of this.waiting.splice(0)) w();
    this.pumpProbes();
    await Promise.allSettled([...this.sessions.values()].map((s) => s.done));
  }

  /** Files stored before a crash but not yet verified are verified now (from the stored copy). */
  private async recoverStored(): Promise<void> {
    for (const f of this.deps.catalog.list('stored')) await this.verify(f.id, 'verified a file stored before the last stop');
    this.deps.onReady();
  }

  /** Stored files whose verification could not run (ffprobe timed out, killed, missing) are verified again when due. */
  private async retryProbes(): Promise<void> {
    const now = this.deps.now().toISOString();
    for (const f of this.deps.catalog.list('stored')) {
      if (this.stopping) return;
      if (f.probe_after && f.probe_after <= now)
        await this.verify(f.id, 'verified a file again after its verification could not run');
    }
  }

  private async verify(id: number, what: string): Promise<void> {
    if (this.probing.has(id)) return;
    try {
      await this.verifyNow(id, what);
    } catch (e) {
      this.log.error({ file: id, err: e }, 'cannot verify stored file');
    }
  }

  /** Verifies one stored file in the bounded pool (probes are CPU-bound: they must not starve the copies). */
  private verifyNow(id: number, what: string | null): Promise<FileRow> {
    this.probing.add(id);
    return new Promise<FileRow>((resolve, reject) => {
      this.probeQueue.push({ id, what, queuedAtMs: this.deps.now().getTime(), resolve, reject });
      this.pumpProbes();
    }).finally(() => this.probing.delete(id));
  }

  /**
   * Starts waiting probes as probeMayStart lets them (a copy paused for disk space does not count as copying, as the
   * verdicts it waits for are what frees space). Stopping: what waits is answered with its row as it is (`stored`,
   * verified at the next start).
   */
  private pumpProbes(): void {
    if (this.stopping) {
      for (const p of this.probeQueue.splice(0)) {
        try {
          p.resolve(this.deps.catalog.get(p.id)!);
        } catch (e) {
          p.reject(e);
        }
      }
      return;
    }
    while (
      this.probeQueue.length &&
      probeMayStart({
        running: this.probesRunning,
        slots: this.probeSlots,
        copying: this.copying(),
        waitedMs: this.deps.now().getTime() - this.probeQueue[0].queuedAtMs,
      })
    ) {
      const p = this.probeQueue.shift()!;
      this.probesRunning++;
      classifyStored(this.deps, p.id)
        .then((r) => {
          if (p.what && r.state !== 'stored') this.log.info({ file: p.id, state: r.state, integrity: r.integrity }, p.what);
          if (r.state === 'ready') this.deps.onReady();
          p.resolve(r);
        })
        .catch(p.reject)
        .finally(() => {
          this.probesRunning--;
          this.pumpProbes();
        });
    }
    if (this.probeQueue.length && !this.probeRecheck) {
      this.probeRecheck = setTimeout(() => {
        this.probeRecheck = null;
        this.pumpProbes();
      }, 1000);
      this.probeRecheck.unref();
    }
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
    if (this.active === 0) this.pumpProbes();
  }

  /** A recorder holds a copy slot and is copying (not paused for disk space). */
  private copying(): boolean {
    return this.active > 0 && [...this.deps.board.recorders.values()].some((r) => r.state === 'copying' && r.current !== null);
  }

  private docked(volume: string): void {
    if (this.stopping) return;
    const previous = this.sessions.get(volume)?.done;
    const controller = new AbortController();
    const { signal } = controller;
    const run = async () => {
      await previous; // a re-dock waits for the unplugged session to wind down
      if (signal.aborted) return;
      const volumeSession = new VolumeSession(this.deps, volume);
      const wipe = new RecorderWipe(this.deps, {
        volumePath: volume,
        sessionId: volumeSession.sessionId,
        forget: (p) => volumeSession.forget(p),
      });
      try {
        // A volume that has just appeared empty may be a mount in progress: it is given a moment before the first walk.
        // One that already shows its files is walked at once (the officer is waiting).
        if (await appearsEmpty(volume)) await sleep(this.deps.config.dock.settleMs, signal);
        // Scans repeat while the volume stays docked: a file still being written, or added later, is taken too.
        let last = '';
        while (!signal.aborted) {
          const scan = await volumeSession.scan();
          if (!scan) break; // the volume is gone; the undock event follows
          let outcome: 'ok' | 'unplugged' = 'ok';
          if (scan.ready.length) {
            if (!(await this.slot(signal))) break;
            try {
              outcome = await volumeSession.copy(scan, signal);
            } finally {
              this.release();
            }
          }
          let state = volumeSession.conclude(scan, signal);
          if (state === 'verifying') {
            await volumeSession.verified(signal);
            state = volumeSession.conclude(scan, signal);
          }
          const f = volumeSession.status.files;
          const summary = `${state}:${f.done}:${f.copied}:${f.alreadyStored}:${volumeSession.status.leftBehind.length}`;
          if (state !== 'copying' && summary !== last) {
            last = summary;
            this.log.info(
              {
                volume,
                session: volumeSession.sessionId,
                state,
                copied: f.copied,
                alreadyStored: f.alreadyStored,
                rejected: f.rejected,
                damaged: f.damaged,
                needsAnnotation: f.needsAnnotation,
                superseded: f.superseded,
                leftBehind: volumeSession.status.leftBehind.length,
                safeToUndock: volumeSession.status.safeToUndock,
              },
              'recorder ingest finished',
            );
          }
          if (state === 'done') this.deps.board.clear(`unplugged:${volume}`);
          if (outcome === 'unplugged' || state === 'unplugged') break;
          if (this.deps.config.dock.wipe === 'after-archive') {
            await wipe
              .run(signal, volumeSession.status.serial)
              .catch((e: Error) => this.log.error({ volume, err: e }, 'wipe gate failed (nothing more is deleted in this pass)'));
          }
          await sleep(volumeSession.nextScanDelayMs(scan), signal);
        }
      } catch (e) {
        this.log.error({ volume, err: e }, 'ingest session failed');
      } finally {
        volumeSession.close(!this.stopping);
      }
    };
    const session: Session = {
      controller,
      done: run().finally(() => {
        if (this.sessions.get(volume) === session) this.sessions.delete(volume);
      }),
    };
    this.sessions.set(volume, session);
  }

  private undocked(volume: string): void {
    const s = this.sessions.get(volume);
    s?.controller.abort(UNDOCKED);
    const status = this.deps.board.recorders.get(volume);
    this.deps.catalog.enqueue('event', {
      type: 'recorder.undocked',
      at: this.deps.now().toISOString(),
      volume,
      name: path.basename(volume),
      sessionId: status?.sessionId ?? null,
      deviceSerial: status?.serial ?? null,
      complete: Boolean(status?.safeToUndock),
      leftBehind: status?.leftBehind ?? [],
    });
    this.deps.board.clear(`left:${volume}`); // RECORDER_UNPLUGGED below says what stays on it
    if (status && !status.safeToUndock) {
      this.deps.board.raise(
        'RECORDER_UNPLUGGED',
        `unplugged:${volume}`,
        `recorder ${status.serial ?? path.basename(volume)} removed before all files were stored; dock it again`,
      );
    } else {
      this.deps.board.clear(`unplugged:${volume}`);
    }
    this.deps.board.removeRecorder(volume);
    void s?.done.then(() => {
      if (!this.sessions.has(volume)) this.deps.board.removeRecorder(volume);
    });
    this.log.info({ volume, complete: Boolean(status?.safeToUndock) }, 'recorder undocked');
  }
}

/** An empty (or not yet readable) volume root: what a mount in progress looks like. */
async function appearsEmpty(volume: string): Promise<boolean> {
  try {
    const dir = await fs.opendir(volume);
    try {
      return (await dir.read()) === null;
    } finally {
      await dir.close().catch(() => {});
    }
  } catch {
    return true;
  }
}
