import { nodeCrypto } from '../nodeCrypto.ts';
import type Database from 'better-sqlite3';
import { systemClock } from '../clock.ts';
import { decodeHash, encodeHash, type PasswordHash, type Role } from '../security/password.ts';
import { CodedError } from '../../drivers/errors.ts';

/** A station user as dockd shows it (never with its hash). */
export interface User {
  id: number;
  name: string;
  role: Role;
  officerId: string | null;
  disabled: boolean;
  fromConfig: boolean;
  createdAt: string;
  updatedAt: string;
}

interface UserRow {
  id: number;
  name: string;
  role: Role;
  officer_id: string | null;
  hash: string;
  disabled: number;
  from_config: number;
  created_at: string;
  updated_at: string;
}

export type UserErrorCode = 'INVALID' | 'EXISTS' | 'NOT_FOUND';

export class UserError extends CodedError<UserErrorCode> {}

// No white space and no ':' (Basic credentials split there); Chinese names are fine.
const NAME = /^[^\s:\p{Cc}\p{Cf}]{1,64}$/u;
const OFFICER_ID = /^[A-Za-z0-9_-]{1,32}$/;

export function nameProblem(name: string): string | null {
  return NAME.test(name)
    ? null
    : `user name ${JSON.stringify(name)} must be 1-64 characters without spaces, ':' or control characters`;
}

export function officerIdProblem(id: string): string | null {
  return OFFICER_ID.test(id) ? null : `officer id ${JSON.stringify(id)} must be 1-32 letters, digits, '-' or '_'`;
}

const toUser = (r: UserRow): User => ({
  id: r.id,
  name: r.name,
  role: r.role,
  officerId: r.officer_id,
  disabled: Boolean(r.disabled),
  fromConfig: Boolean(r.from_config),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const tokenHash = (token: string): string => nodeCrypto().createHash('sha256').update(token).digest('hex');

/**
 * The station's users and their web sessions, in the catalog (tables `users` and `web_sessions`, schema 5), so the
 * daemon and dockctl see the same accounts and a session survives a restart. Only scrypt hashes are kept; a session
 * is kept as the SHA-256 of its token, so reading the catalog does not let anyone take over a session.
 */
export class UserStore {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date = systemClock.now,
  ) {}

  private stamp(): string {
    return this.now().toISOString();
  }

  private row(name: string): UserRow | undefined {
    return this.db.prepare(`SELECT * FROM users WHERE name = ?`).get(name) as UserRow | undefined;
  }

  get(name: string): User | undefined {
    const r = this.row(name);
    return r && toUser(r);
  }

  /** Every user, with the number of sessions still open. */
  list(): (User & { openSessions: number })[] {
    const rows = this.db
      .prepare(`SELECT u.*, (SELECT COUNT(*) FROM web_sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ?) open_sessions
      FROM users u ORDER BY u.name`)
      .all(this.stamp()) as (UserRow & { open_sessions: number })[];
    return rows.map((r) => ({ ...toUser(r), openSessions: r.open_sessions }));
  }

  /**
   * A new user. An officer needs an officer id (警号, what they log in with); an admin logs in with the name. A login
   * name is never ambiguous: no admin's name equals anyone's officer id and no officer id equals an admin's name.
   */
  add(u: { name: string; role: Role; officerId?: string | null; hash: PasswordHash; fromConfig?: boolean }): User {
    const problem = nameProblem(u.name) ?? (u.officerId ? officerIdProblem(u.officerId) : null);
    if (problem) throw new UserError('INVALID', problem);
    if (u.role === 'officer' && !u.officerId)
      throw new UserError('INVALID', `officer ${u.name} needs an officer id (警号): it is what they log in with`);
    const at = this.stamp();
    return this.db
      .transaction(() => {
        if (this.row(u.name)) throw new UserError('EXISTS', `user ${u.name} exists already`);
        if (u.officerId) {
          const holder = this.db
            .prepare(`SELECT name FROM users WHERE officer_id = ? OR (role = 'admin' AND name = ?)`)
            .get(u.officerId, u.officerId) as { name: string } | undefined;
          if (holder) throw new UserError('EXISTS', `officer id ${u.officerId} is already a login of user ${holder.name}`);
        }
        if (u.role === 'admin') {
          const holder = this.db.prepare(`SELECT name FROM users WHERE role = 'officer' AND officer_id = ?`).get(u.name) as
            | { name: string }
            | undefined;
          if (holder)
            throw new UserError(
              'EXISTS',
              `${u.name} is the officer id of user ${holder.name}: an admin's name must not be an officer's login`,
            );
        }
        this.db
          .prepare(
            `INSERT INTO users (name, role, officer_id, hash, disabled, from_config, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)`,
          )
          .run(u.name, u.role, u.officerId ?? null, encodeHash(u.hash), u.fromConfig ? 1 : 0, at, at);
        return this.get(u.name)!;
      })
      .immediate();
  }

  /** A new password (or PIN); every open session of the user is revoked. The user is managed here from now on. */
  setPassword(name: string, hash: PasswordHash): { user: User; revoked: number } {
    return this.db
      .transaction(() => {
        const r = this.row(name);
        if (!r) throw new UserError('NOT_FOUND', `no user ${name}`);
        this.db
          .prepare(`UPDATE users SET hash = ?, from_config = 0, updated_at = ? WHERE id = ?`)
          .run(encodeHash(hash), this.stamp(), r.id);
        return { user: this.get(name)!, revoked: this.revokeSessions(r.id) };
      })
      .immediate();
  }

  /** Disables (and revokes every session of) a user, or enables them again. */
  setDisabled(name: string, disabled: boolean): { user: User; changed: boolean; revoked: number } {
    return this.db
      .transaction(() => {
        const r = this.row(name);
        if (!r) throw new UserError('NOT_FOUND', `no user ${name}`);
        const changed = Boolean(r.disabled) !== disabled;
        if (changed)
          this.db.prepare(`UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`).run(disabled ? 1 : 0, this.stamp(), r.id);
        return { user: this.get(name)!, changed, revoked: disabled ? this.revokeSessions(r.id) : 0 };
      })
      .immediate();
  }

  /** The user a login name names: an officer by officer id, an admin by name. */
  forLogin(login: string): { user: User; hash: PasswordHash } | undefined {
    const r = this.db
      .prepare(`SELECT * FROM users WHERE (role = 'officer' AND officer_id = ?) OR (role = 'admin' AND name = ?)`)
      .get(login, login) as UserRow | undefined;
    if (!r) return undefined;
    try {
      return { user: toUser(r), hash: decodeHash(r.hash) };
    } catch {
      return undefined;
    }
  }

  /**
   * The bootstrap admin of http.adminPassword: created as `admin` when missing, its hash replaced on each start while
   * it still comes from the config. An `admin` created or changed with dockctl is left alone.
   */
  ensureConfigAdmin(hash: PasswordHash): 'created' | 'updated' | 'managed-by-dockctl' {
    return this.db
      .transaction(() => {
        const r = this.row('admin');
        if (!r) {
          this.add({ name: 'admin', role: 'admin', hash, fromConfig: true });
          return 'created' as const;
        }
        if (!r.from_config) return 'managed-by-dockctl' as const;
        this.db.prepare(`UPDATE users SET hash = ?, updated_at = ? WHERE id = ?`).run(encodeHash(hash), this.stamp(), r.id);
        return 'updated' as const;
      })
      .immediate();
  }

  // ---- web sessions ------------------------------------------------------

  openSession(userId: number, source: string, lifetimeMs: number): { token: string; expiresAt: string } {
    const token = nodeCrypto().randomBytes(32).toString('base64url');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + lifetimeMs).toISOString();
    this.db
      .prepare(`INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at, source) VALUES (?, ?, ?, ?, ?)`)
      .run(tokenHash(token), userId, now.toISOString(), expiresAt, source);
    return { token, expiresAt };
  }

  /** The user of a session that is open (not expired, not revoked) and whose user is not disabled. */
  sessionUser(token: string | undefined): User | undefined {
    if (!token || token.length > 100) return undefined;
    const r = this.db
      .prepare(`SELECT u.* FROM web_sessions s JOIN users u ON u.id = s.user_id
      WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled = 0`)
      .get(tokenHash(token), this.stamp()) as UserRow | undefined;
    return r && toUser(r);
  }

  revokeSession(token: string | undefined): boolean {
    if (!token) return false;
    return (
      this.db
        .prepare(`UPDATE web_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL`)
        .run(this.stamp(), tokenHash(token)).changes > 0
    );
  }

  revokeSessions(userId: number): number {
    return this.db
      .prepare(`UPDATE web_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`)
      .run(this.stamp(), userId, this.stamp()).changes;
  }

  /** Forgets sessions that ended (expired or revoked) more than `keepMs` ago; logins stay in the audit trail. */
  pruneSessions(keepMs: number): number {
    const before = new Date(this.now().getTime() - keepMs).toISOString();
    return this.db.prepare(`DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?`).run(before, before).changes;
  }
}
