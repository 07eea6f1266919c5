import path from 'node:path';
import { ClipFactory, type TortureClip, type Wave } from './clips.ts';
import type { CatalogRow, StationState, TortureStation } from './station.ts';

/** What a round aims at: any point of the copying, the copy of the volume's big clip itself, or an upload. */
export type Target = 'copy' | 'mid-copy' | 'upload';
export interface KillRecord {
  round: number;
  wave: number;
  target: Target;
  /** From spawning dockd to its station page listening. */
  startMs: number;
  /** What dockd was doing at the instant of the kill, by its own state read just before it (null: not readable). */
  copying: boolean | null;
  uploading: boolean | null;
  delayMs: number;
  uploadsInFlight: number;
  /** Rows the kill left half-way, read from the catalog right after it. */
  left: { copying: number; stored: number; uploading: number; tempFiles: number };
}

const POLL_MS = 50;
/** While waiting for the big clip's copy to start: it lasts only ~0.1–0.3 s. */
const FAST_POLL_MS = 10;
const WAIT_MS = 180_000;
/** Kills aimed at uploads land within this long after the first upload is seen in flight. */
const UPLOAD_SPAN_MS = 4000;
const COPY_SPAN_MS = { min: 300, max: 5000 };
/** Kills aimed at the big clip's copy land within this long after it is seen starting. */
const MID_COPY_SPAN_MS = 120;
/** Of the rounds aimed at copying while a big clip is still to copy, the share aimed at that copy itself. */
const MID_COPY_SHARE = 0.6;
const AT_HQ = new Set(['uploaded', 'archived']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function copyingAny(s: StationState): boolean {
  return s.recorders.some((r) => r.state === 'copying' || r.state === 'identifying' || r.state === 'paused');
}

/** Recordings still on their way to HQ by the station's own queue counts. */
export function pendingInQueue(s: StationState): number {
  const q = s.queue;
  return (q.copying ?? 0) + (q.stored ?? 0) + (q.ready ?? 0) + (q.uploading ?? 0);
}

/**
 * The rounds of the torture: each starts dockd, waits until it is copying (a volume it has not finished) or uploading,
 * lets a random time pass, reads its state and kills it with SIGKILL. A wave is undocked only after dockd said it was
 * safe to undock, and a new one is docked when a round wants copying and there is nothing left to copy.
 */
export class TortureRounds {
  readonly waves: Wave[] = [];
  readonly kills: KillRecord[] = [];
  private lastRows: CatalogRow[] = [];
  private lastSeen: StationState | null = null;
  /** Running estimate of how long dockd takes per recording while copying (copy, hash, probe). */
  private msPerFile = 300;
  private copySamples: { at: number; done: number }[] = [];

  constructor(
    private readonly station: TortureStation,
    private readonly clips: ClipFactory,
    private readonly rng: () => number,
    private readonly say: (line: string) => void,
  ) {}

  get current(): Wave | undefined {
    return this.waves.at(-1);
  }

  async round(n: number): Promise<KillRecord> {
    let target = this.pickTarget();
    if (target !== 'upload' && (!this.current || this.current.safeSeen)) await this.nextWave();
    const wave = this.current!;
    const big = wave.bigs.find((c) => !this.stored(c));
    if (target === 'copy' && big && this.rng() < MID_COPY_SHARE) target = 'mid-copy';
    this.copySamples = [];
    const spawnedAt = Date.now();
    await this.station.startDaemon();
    const startMs = Date.now() - spawnedAt;
    const aim = {
      copy: () => this.aimAtCopying(wave),
      'mid-copy': () => this.aimAtBigCopy(wave, big!),
      upload: () => this.aimAtUploading(wave),
    }[target];
    const delayMs = Math.round(await aim());
    // A short delay is not stretched by a look at the state: the one that set it off is recent enough.
    let last = this.lastSeen;
    if (delayMs < MID_COPY_SPAN_MS * 2) await sleep(delayMs);
    else {
      await this.watch(delayMs);
      last = await this.station.state();
    }
    await this.station.kill9();
    await this.station.saveLogs(`round-${String(n).padStart(3, '0')}`);
    this.learnCopyRate();
    this.lastRows = this.station.catalogRows();
    const count = (state: string) => this.lastRows.filter((r) => r.state === state).length;
    const kill: KillRecord = {
      round: n,
      wave: wave.index,
      target,
      startMs,
      copying: last && copyingAny(last),
      uploading: last && last.uploads.length > 0,
      delayMs,
      uploadsInFlight: last?.uploads.length ?? 0,
      left: {
        copying: count('copying'),
        stored: count('stored'),
        uploading: count('uploading'),
        tempFiles: await this.station.tempFiles(),
      },
    };
    this.kills.push(kill);
    return kill;
  }

  /** The catalog (as the last kill left it) holds this clip, copied. */
  private stored(clip: TortureClip): boolean {
    return this.lastRows.some((r) => r.sha256 === clip.sha256);
  }

  /** Copy when there is nothing to upload, upload when the backlog grows past two volumes, else a coin toss. */
  private pickTarget(): Target {
    const wave = this.current;
    if (!wave) return 'copy';
    const pending = this.lastRows.filter((r) => !AT_HQ.has(r.state));
    if (wave.safeSeen && !pending.length) return 'copy';
    if (pending.reduce((b, r) => b + r.size, 0) > 2 * wave.bytes) return 'upload';
    return this.rng() < 0.5 ? 'copy' : 'upload';
  }

  private async nextWave(): Promise<void> {
    const previous = this.current;
    if (previous?.safeSeen && !previous.undocked) await ClipFactory.undock(previous);
    const wave = await this.clips.dock(this.waves.length + 1, this.station.world.mountRoot);
    this.waves.push(wave);
    this.say(`docked volume ${wave.index}: ${wave.clips.length} clips, ${(wave.bytes / 1e6).toFixed(1)} MB`);
  }

  private recorderOf(s: StationState, wave: Wave) {
    return s.recorders.find((r) => r.name === path.basename(wave.volume));
  }

  /** Everything learnt from one look at dockd's state. */
  private observe(s: StationState): void {
    this.lastSeen = s;
    for (const w of this.waves) if (!w.safeSeen && this.recorderOf(s, w)?.safeToUndock) w.safeSeen = true;
    const r = this.current && this.recorderOf(s, this.current);
    if (r?.state === 'copying') this.copySamples.push({ at: Date.now(), done: r.files.done });
  }

  private learnCopyRate(): void {
    const first = this.copySamples[0];
    const last = this.copySamples.at(-1);
    if (!first || !last || last.done <= first.done) return;
    this.msPerFile = 0.7 * this.msPerFile + 0.3 * ((last.at - first.at) / (last.done - first.done));
  }

  /** Polls dockd's state until `pred` holds; fails if dockd exits or nothing happens for `timeoutMs`. */
  async until<T>(
    what: string,
    pred: (s: StationState) => T | null | undefined | false,
    timeoutMs = WAIT_MS,
    everyMs = POLL_MS,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.checkAlive();
      const s = await this.station.state();
      if (s) {
        this.observe(s);
        const v = pred(s);
        if (v) return v;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
      await sleep(everyMs);
    }
  }

  /** Lets `ms` pass while watching dockd. */
  private async watch(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      this.checkAlive();
      const s = await this.station.state();
      if (s) this.observe(s);
      await sleep(Math.min(POLL_MS, Math.max(0, end - Date.now())));
    }
  }

  private checkAlive(): void {
    if (this.station.running) return;
    const p = this.station.daemon?.proc;
    throw new Error(
      `dockd exited by itself (code ${p?.exitCode}, signal ${p?.signalCode}): ${this.station.daemon?.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }

  /** Waits until dockd copies the current volume; the kill falls at a random point of the copying still to do. */
  private async aimAtCopying(wave: Wave): Promise<number> {
    const r = await this.until(`dockd to copy volume ${wave.index}`, (s) => {
      const rec = this.recorderOf(s, wave);
      return rec && (rec.state === 'copying' || rec.safeToUndock) ? rec : null;
    });
    if (r.state !== 'copying') return this.rng() * UPLOAD_SPAN_MS;
    const remaining = Math.max(1, r.files.total - r.files.done);
    return this.rng() * Math.min(COPY_SPAN_MS.max, Math.max(COPY_SPAN_MS.min, remaining * this.msPerFile));
  }

  /** Waits until dockd starts copying a big clip; the kill falls within the ~0.1–0.3 s that copy lasts. */
  private async aimAtBigCopy(wave: Wave, big: TortureClip): Promise<number> {
    await this.until(
      `dockd to copy ${big.name}`,
      (s) => {
        const rec = this.recorderOf(s, wave);
        return rec && ((rec.state === 'copying' && rec.current === big.relPath) || rec.safeToUndock);
      },
      WAIT_MS,
      FAST_POLL_MS,
    );
    return this.rng() * MID_COPY_SPAN_MS;
  }

  /** Waits until an upload is in flight (copying may go on beside it); the kill falls at a random point after. */
  private async aimAtUploading(wave: Wave): Promise<number> {
    await this.until('an upload in flight', (s) => {
      if (s.uploads.length > 0) return true;
      // Nothing left to upload (the volume copied, the queue empty): the kill falls on an idle station.
      return wave.safeSeen && !copyingAny(s) && pendingInQueue(s) === 0;
    });
    return this.rng() * UPLOAD_SPAN_MS;
  }
}
