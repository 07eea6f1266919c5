/** Threads that die in a row before their work moves to the event loop for a while (first 1 min, then 2, 4 … 30). */
const DEATHS_BEFORE_REST = 3;
const REST_FIRST_MS = 60_000;
const REST_MAX_MS = 30 * 60_000;

/** What `died` decided: start another thread, rest from now on, or nothing (the rest had already begun). */
export type AfterDeath = 'again' | 'rest' | 'resting';

/**
 * When worker threads that keep dying (or cannot start at all) are left alone: after three deaths in a row, for a
 * rest that doubles each time up to half an hour; their work runs on the event loop meanwhile, slower and complete,
 * and no CPU goes into starting thread after thread. One thread that does its job ends the trouble. The copy threads
 * and the digest threads each have one; `onTrouble` tells the daemon, which raises SERVICE_FAILED.
 */
export class ThreadRest {
  /** Threads that died in a row, none doing its job between them. */
  private deaths = 0;
  private restMs = REST_FIRST_MS;
  /** While threads rest (until this time on the clock), their work runs on the event loop. */
  private restUntil = 0;
  private trouble: string | null = null;
  private listener: ((trouble: string | null) => void) | null = null;
  private deathListener: ((e: Error) => void) | null = null;

  constructor(
    /** The threads and what happens while they rest, for the message: 'copy threads', 'copies run on the main thread'. */
    private readonly names: { threads: string; meanwhile: string },
    private readonly nowMs: () => number,
  ) {}

  /** `trouble` is why work runs on the event loop, null once a thread works again. One listener (the daemon's). */
  onTrouble(listener: (trouble: string | null) => void): void {
    this.listener = listener;
    if (this.trouble !== null) listener(this.trouble);
  }

  /** Hears every thread that dies (its work is done again on the event loop), before any rest it starts. */
  onDeath(listener: (e: Error) => void): void {
    this.deathListener = listener;
  }

  resting(): boolean {
    return this.trouble !== null && this.nowMs() < this.restUntil;
  }

  /** A thread did its job. */
  worked(): void {
    this.deaths = 0;
    this.restMs = REST_FIRST_MS;
    if (this.trouble !== null) {
      this.trouble = null;
      this.listener?.(null);
    }
  }

  /** A thread died of `e`. */
  died(e: Error): AfterDeath {
    this.deathListener?.(e);
    if (this.resting()) return 'resting'; // a thread started before the rest began
    if (++this.deaths < DEATHS_BEFORE_REST) return 'again';
    this.restUntil = this.nowMs() + this.restMs;
    const minutes = Math.round(this.restMs / 60_000);
    this.restMs = Math.min(REST_MAX_MS, this.restMs * 2);
    const { threads, meanwhile } = this.names;
    this.trouble = `${this.deaths} ${threads} in a row failed (the last: ${e.message}); ${meanwhile}, more slowly; threads are tried again at the first copy after ${minutes} min`;
    this.listener?.(this.trouble);
    return 'rest';
  }
}
