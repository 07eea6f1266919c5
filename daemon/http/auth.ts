import { randomBytes } from 'node:crypto';
import { verifyPassword, type PasswordHash } from './password.ts';

export type AuthFailure =
  | { ok: false; code: 'NOT_CONFIGURED'; status: 403; message: string }
  | { ok: false; code: 'WRONG_PASSWORD'; status: 401; message: string; remaining: number }
  | { ok: false; code: 'LOCKED_OUT'; status: 429; message: string; retryAfterSeconds: number };

const SESSION_MS = 12 * 3600_000;
const MAX_SESSIONS = 64;

/** The loopback addresses: a page listening only there is open; anywhere else changes need the admin password. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The admin password check: scrypt + timingSafeEqual, one attempt at a time, and a lockout after `maxFailures`
 * wrong passwords in a row, during which even the right one is refused. A right password opens a session (a random
 * token kept in memory, for a cookie) so the page does not send the password with every change.
 */
export class AdminAuth {
  private failures = 0;
  private lockedUntil = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly sessions = new Map<string, number>();

  constructor(private readonly o: {
    hash: PasswordHash | undefined; maxFailures: number; lockoutMs: number; now: () => number;
    /** Told of each wrong password and of each lockout (for the log and the audit trail). */
    onFailure?: (failures: number, lockedUntil: number | null) => void;
  }) {}

  get configured(): boolean { return Boolean(this.o.hash); }

  /** Milliseconds left of a lockout (0: not locked). */
  lockedForMs(): number { return Math.max(0, this.lockedUntil - this.o.now()); }

  /** Checks a password; attempts are serialized so a burst cannot slip past the lockout. */
  checkPassword(candidate: string): Promise<{ ok: true } | AuthFailure> {
    const attempt = this.queue.then(() => this.check(candidate));
    this.queue = attempt.catch(() => {});
    return attempt;
  }

  private async check(candidate: string): Promise<{ ok: true } | AuthFailure> {
    if (!this.o.hash) return { ok: false, code: 'NOT_CONFIGURED', status: 403, message: 'no admin password is configured (http.adminPassword): changes are only possible on a loopback-only page' };
    const locked = this.lockedForMs();
    if (locked) return this.lockedOut(locked);
    if (await verifyPassword(candidate, this.o.hash)) { this.failures = 0; return { ok: true }; }
    this.failures++;
    if (this.failures >= this.o.maxFailures) {
      this.failures = 0;
      this.lockedUntil = this.o.now() + this.o.lockoutMs;
      this.o.onFailure?.(this.o.maxFailures, this.lockedUntil);
      return this.lockedOut(this.o.lockoutMs);
    }
    this.o.onFailure?.(this.failures, null);
    const remaining = this.o.maxFailures - this.failures;
    return { ok: false, code: 'WRONG_PASSWORD', status: 401, message: `密码错误 wrong password (${remaining} attempt(s) left before a lockout)`, remaining };
  }

  private lockedOut(ms: number): AuthFailure {
    const retryAfterSeconds = Math.ceil(ms / 1000);
    return { ok: false, code: 'LOCKED_OUT', status: 429, message: `too many wrong passwords: locked for ${retryAfterSeconds} s`, retryAfterSeconds };
  }

  /** A new session token after a right password. */
  openSession(): string {
    const now = this.o.now();
    for (const [t, until] of this.sessions) if (until <= now) this.sessions.delete(t);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const token = randomBytes(32).toString('base64url');
    this.sessions.set(token, now + SESSION_MS);
    return token;
  }

  hasSession(token: string | undefined): boolean {
    if (!token) return false;
    const until = this.sessions.get(token);
    if (until === undefined) return false;
    if (until <= this.o.now()) { this.sessions.delete(token); return false; }
    return true;
  }

  closeSession(token: string | undefined): void { if (token) this.sessions.delete(token); }
}

export const SESSION_COOKIE = 'dockd_session';
export const SESSION_MAX_AGE_S = SESSION_MS / 1000;

/** The value of one cookie from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The password of an `Authorization: Basic` header (the user name is ignored). */
export function basicPassword(header: string | undefined): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i >= 0 ? decoded.slice(i + 1) : undefined;
}
