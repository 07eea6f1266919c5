import { isIP } from 'node:net';
import type { User, UserStore } from '../store/users.ts';
import type { LoginGuard, LockScope } from './loginGuard.ts';
import { NO_USER_HASH, verifyPassword } from '../security/password.ts';

export type AuthFailure =
  | { ok: false; code: 'WRONG_PASSWORD'; status: 401; message: string; remaining: number }
  | { ok: false; code: 'ACCOUNT_DISABLED'; status: 403; message: string }
  | { ok: false; code: 'LOCKED_OUT'; status: 429; message: string; scope: LockScope; retryAfterSeconds: number };

/** What the authenticator reports, for the log and the audit trail. */
export type AuthNotice =
  | {
      type: 'login-failed';
      login: string;
      from: string;
      reason: 'wrong-password' | 'disabled' | 'locked';
      accountFailures?: number;
    }
  | { type: 'lockout'; scope: LockScope; key: string; until: string; lockouts: number };

/** A request's source address as dockd names it (an IPv4 address mapped into IPv6 is shown as IPv4). */
export function sourceAddress(ip: string): string {
  const m = ip.match(/^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i);
  return m ? m[1] : isIP(ip) ? ip : 'unknown';
}

/**
 * Checks a login name and a password: officers log in with their officer id (警号) and PIN, admins with their name
 * and password (scrypt, timingSafeEqual). The guard locks an account or a source address after repeated failures,
 * never everybody. An unknown name costs as much as a known one and gets the same answer.
 */
export class Authenticator {
  constructor(private readonly o: { users: UserStore; guard: LoginGuard; notify: (n: AuthNotice) => void }) {}

  async check(login: string, password: string, from: string): Promise<{ ok: true; user: User } | AuthFailure> {
    const started = this.o.guard.begin(login, from);
    if (!started.ok) {
      this.reportLocks(started.newLocks);
      this.o.notify({ type: 'login-failed', login, from, reason: 'locked' });
      return this.lockedOut(started.locked.scope, started.locked.retryAfterMs);
    }
    let ok = false;
    let disabled = false;
    let user: User | undefined;
    let remaining = 0;
    try {
      const found = this.o.users.forLogin(login);
      ok = (await verifyPassword(password, found?.hash ?? NO_USER_HASH)) && Boolean(found);
      user = found?.user;
      if (ok && user!.disabled) {
        ok = false;
        disabled = true;
      }
    } finally {
      const outcome = this.o.guard.finish(login, from, ok || disabled);
      remaining = outcome.remaining;
      if (!ok) {
        this.o.notify({
          type: 'login-failed',
          login,
          from,
          reason: disabled ? 'disabled' : 'wrong-password',
          accountFailures: outcome.accountFailures,
        });
        this.reportLocks(outcome.newLocks);
      }
    }
    if (disabled)
      return { ok: false, code: 'ACCOUNT_DISABLED', status: 403, message: `账号已停用 account ${user!.name} is disabled` };
    if (ok) return { ok: true, user: user! };
    const locked = this.o.guard.lockedFor(login, from);
    if (locked) return this.lockedOut(locked.scope, locked.retryAfterMs);
    return {
      ok: false,
      code: 'WRONG_PASSWORD',
      status: 401,
      message: `密码错误 wrong name or password (${remaining} attempt(s) left before a lockout)`,
      remaining,
    };
  }

  private reportLocks(locks: { scope: LockScope; key: string; until: number; lockouts: number }[]): void {
    for (const l of locks)
      this.o.notify({
        type: 'lockout',
        scope: l.scope,
        key: l.key,
        until: new Date(l.until).toISOString(),
        lockouts: l.lockouts,
      });
  }

  private lockedOut(scope: LockScope, ms: number): AuthFailure {
    const retryAfterSeconds = Math.max(1, Math.ceil(ms / 1000));
    const what = scope === 'account' ? 'this account' : 'this address';
    return {
      ok: false,
      code: 'LOCKED_OUT',
      status: 429,
      scope,
      retryAfterSeconds,
      message: `密码错误次数过多 too many wrong passwords for ${what}: locked for ${retryAfterSeconds} s`,
    };
  }
}

export const SESSION_COOKIE = 'dockd_session';

/** The Set-Cookie value of a session (or of its removal, with maxAgeS 0). */
export function sessionCookie(token: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}; Max-Age=${maxAgeS}`;
}

/** The value of one cookie from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The name and password of an `Authorization: Basic` header. */
export function basicCredentials(header: string | undefined): { login: string; password: string } | undefined {
  const m = (header ?? '').match(/^Basic\s+([A-Za-z0-9+/=]{1,2800})\s*$/i);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i >= 0 ? { login: decoded.slice(0, i), password: decoded.slice(i + 1) } : undefined;
}
