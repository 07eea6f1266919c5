/**
 * Lockout of password guessing, kept apart per account and per source address, never one lock for everybody:
 * `maxAccountFailures` wrong passwords for one account lock that account (from everywhere), `maxSourceFailures`
 * failed attempts from one address (at any accounts) lock that address (for every account). Each lockout of the same
 * account or address lasts twice as long as the one before (from `baseLockMs` up to `maxLockMs`); a right password
 * ends an account's run, and 24 h without a failure forgets everything about a key.
 *
 * Attempts reserve their place before the password is hashed, so a burst of parallel guesses cannot slip past
 * the limit while the first ones are still being checked.
 */
export interface GuardOptions {
  maxAccountFailures: number;
  maxSourceFailures: number;
  baseLockMs: number;
  maxLockMs: number;
  now: () => number;
}

export type LockScope = 'account' | 'source';

export interface Locked {
  scope: LockScope;
  retryAfterMs: number;
}

/** What a finished attempt caused: locks that began with it. */
export interface AttemptOutcome {
  newLocks: { scope: LockScope; key: string; until: number; lockouts: number }[];
  accountFailures: number;
  remaining: number;
}

interface Entry {
  failures: number;
  inFlight: number;
  lockouts: number;
  lockedUntil: number;
  lastAt: number;
}

const FORGET_MS = 24 * 3600_000;
const MAX_ENTRIES = 10_000;

export class LoginGuard {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly o: GuardOptions) {}

  private entry(key: string): Entry {
    const now = this.o.now();
    let e = this.entries.get(key);
    if (e && e.lockedUntil <= now && now - e.lastAt > FORGET_MS) {
      this.entries.delete(key);
      e = undefined;
    }
    if (!e) {
      if (this.entries.size >= MAX_ENTRIES) this.evict(now);
      e = { failures: 0, inFlight: 0, lockouts: 0, lockedUntil: 0, lastAt: now };
      this.entries.set(key, e);
    }
    return e;
  }

  /** Drops the oldest entries that hold no lock (a flood of made-up names cannot grow the map without bound). */
  private evict(now: number): void {
    for (const [k, e] of this.entries) {
      if (this.entries.size < MAX_ENTRIES * 0.9) break;
      if (e.lockedUntil <= now && !e.inFlight) this.entries.delete(k);
    }
  }

  /** The lock in force for this account or address, if any (the longer one). */
  lockedFor(account: string, source: string): Locked | null {
    const now = this.o.now();
    const a = this.entries.get(`a:${account}`);
    const s = this.entries.get(`s:${source}`);
    const am = a ? a.lockedUntil - now : 0;
    const sm = s ? s.lockedUntil - now : 0;
    if (am <= 0 && sm <= 0) return null;
    return am >= sm ? { scope: 'account', retryAfterMs: am } : { scope: 'source', retryAfterMs: sm };
  }

  /**
   * Starts an attempt: `ok` when it may go ahead (then call `finish` with the result), else the lock that refuses
   * it. A refused attempt still counts against its source address (and may lock it: `newLocks`).
   */
  begin(account: string, source: string): { ok: true } | { ok: false; locked: Locked; newLocks: AttemptOutcome['newLocks'] } {
    const a = this.entry(`a:${account}`);
    const s = this.entry(`s:${source}`);
    let locked = this.lockedFor(account, source);
    // Attempts in flight fill the budget too: the next one waits for their verdict (as if locked for a moment).
    if (!locked && a.failures + a.inFlight >= this.o.maxAccountFailures) locked = { scope: 'account', retryAfterMs: 1000 };
    if (!locked && s.failures + s.inFlight >= this.o.maxSourceFailures) locked = { scope: 'source', retryAfterMs: 1000 };
    if (locked) {
      const newLocks: AttemptOutcome['newLocks'] = [];
      const now = this.o.now();
      if (s.lockedUntil <= now) {
        s.failures++;
        s.lastAt = now;
        this.lockIfDue(`s:${source}`, s, this.o.maxSourceFailures, newLocks);
        if (newLocks.length) locked = this.lockedFor(account, source)!;
      }
      return { ok: false, locked, newLocks };
    }
    a.inFlight++;
    s.inFlight++;
    return { ok: true };
  }

  finish(account: string, source: string, ok: boolean): AttemptOutcome {
    const a = this.entry(`a:${account}`);
    const s = this.entry(`s:${source}`);
    a.inFlight = Math.max(0, a.inFlight - 1);
    s.inFlight = Math.max(0, s.inFlight - 1);
    const newLocks: AttemptOutcome['newLocks'] = [];
    if (ok) {
      a.failures = 0;
      a.lockouts = 0;
      return { newLocks, accountFailures: 0, remaining: this.o.maxAccountFailures };
    }
    const now = this.o.now();
    a.failures++;
    s.failures++;
    a.lastAt = now;
    s.lastAt = now;
    const accountFailures = a.failures;
    this.lockIfDue(`a:${account}`, a, this.o.maxAccountFailures, newLocks);
    this.lockIfDue(`s:${source}`, s, this.o.maxSourceFailures, newLocks);
    return { newLocks, accountFailures, remaining: Math.max(0, this.o.maxAccountFailures - a.failures) };
  }

  private lockIfDue(key: string, e: Entry, max: number, out: AttemptOutcome['newLocks']): void {
    if (e.failures < max) return;
    e.failures = 0;
    e.lockouts++;
    const ms = Math.min(this.o.maxLockMs, this.o.baseLockMs * 2 ** Math.min(e.lockouts - 1, 30));
    e.lockedUntil = this.o.now() + ms;
    out.push({
      scope: key.startsWith('a:') ? 'account' : 'source',
      key: key.slice(2),
      until: e.lockedUntil,
      lockouts: e.lockouts,
    });
  }
}
