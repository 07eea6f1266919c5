import Database from 'better-sqlite3';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, SECRET_VALUES, validateConfig } from '../../daemon/config.ts';
import { fieldTextProblem } from '../../daemon/ingest/fieldText.ts';
import {
  Authenticator,
  basicCredentials,
  cookieValue,
  sessionCookie,
  sourceAddress,
  type AuthNotice,
} from '../../daemon/http/auth.ts';
import { isLoopbackHost } from '../../daemon/security/loopback.ts';
import { LoginGuard } from '../../daemon/http/loginGuard.ts';
import { decodeHash, encodeHash, hashPassword, passwordProblem, verifyPassword } from '../../daemon/security/password.ts';
import { crossOrigin } from '../../daemon/http/server.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { UserError, type UserStore } from '../../daemon/store/users.ts';

const base = {
  station: { id: 'st' },
  storage: { dir: 'store' },
  dock: { mountRoots: ['dock'] },
  hq: { tus: { endpoint: 'http://127.0.0.1:1/files/' }, mqtt: { url: 'mqtt://127.0.0.1:2' } },
};

describe('passwords', () => {
  it('keeps only a salted scrypt hash, in a text form that round-trips, and compares in constant time', async () => {
    const a = hashPassword('开门 sesame');
    const b = hashPassword('开门 sesame');
    expect(a.hash.length).toBe(32);
    expect(a.salt.equals(b.salt)).toBe(false);
    const text = encodeHash(a);
    expect(text).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(text).not.toContain('sesame');
    const back = decodeHash(text);
    expect(await verifyPassword('开门 sesame', back)).toBe(true);
    expect(await verifyPassword('开门 sesame ', back)).toBe(false);
    expect(() => decodeHash('md5$abc')).toThrow(/not a dockd password hash/);
  });

  it.each([
    ['officer', '12345', /at least 6/],
    ['officer', '123456', null],
    ['admin', 'short-pw1', /at least 10/],
    ['admin', 'long-enough-1', null],
    ['admin', `x${'y'.repeat(1024)}`, /at most 1024/],
    ['officer', '1234\u001b[2J', /control characters/],
  ] as const)('a %s may have %j: %s', (role, pw, problem) => {
    const p = passwordProblem(role, pw);
    if (problem) expect(p).toMatch(problem);
    else expect(p).toBeNull();
  });
});

describe('lockout per account and per source address, with growing delays', () => {
  const opts = (now: () => number) => ({
    maxAccountFailures: 3,
    maxSourceFailures: 6,
    baseLockMs: 60_000,
    maxLockMs: 3600_000,
    now,
  });

  it('locks the account after its wrong passwords, from every address, and doubles each next lockout', () => {
    let now = 1_000_000;
    const g = new LoginGuard(opts(() => now));
    const fail = (acct: string, src: string) => {
      expect(g.begin(acct, src)).toEqual({ ok: true });
      return g.finish(acct, src, false);
    };
    fail('012345', '10.0.0.1');
    expect(fail('012345', '10.0.0.2').remaining).toBe(1);
    expect(fail('012345', '10.0.0.3').newLocks).toEqual([{ scope: 'account', key: '012345', until: now + 60_000, lockouts: 1 }]);
    expect(g.begin('012345', '10.0.0.9')).toMatchObject({ ok: false, locked: { scope: 'account', retryAfterMs: 60_000 } });
    // Another account, even from the same address, is not locked.
    expect(g.begin('054321', '10.0.0.3')).toEqual({ ok: true });
    g.finish('054321', '10.0.0.3', true);
    now += 60_000;
    for (const src of ['10.0.0.4', '10.0.0.5']) fail('012345', src);
    expect(fail('012345', '10.0.0.6').newLocks).toEqual([{ scope: 'account', key: '012345', until: now + 120_000, lockouts: 2 }]);
    now += 120_000;
    // A right password ends the run: the next lockout starts from the base again.
    expect(g.begin('012345', '10.0.0.7')).toEqual({ ok: true });
    g.finish('012345', '10.0.0.7', true);
    for (let i = 0; i < 2; i++) fail('012345', '10.0.0.8');
    expect(fail('012345', '10.0.0.8').newLocks[0]).toMatchObject({ scope: 'account', until: now + 60_000, lockouts: 1 });
  });

  it('locks an address spraying many accounts, for every account, and never the other addresses', () => {
    const now = 5_000_000;
    const g = new LoginGuard(opts(() => now));
    const locks = [];
    for (let i = 0; i < 6; i++) {
      expect(g.begin(`acct-${i}`, '10.9.9.9')).toEqual({ ok: true });
      locks.push(...g.finish(`acct-${i}`, '10.9.9.9', false).newLocks);
    }
    expect(locks).toEqual([{ scope: 'source', key: '10.9.9.9', until: now + 60_000, lockouts: 1 }]);
    expect(g.begin('chief', '10.9.9.9')).toMatchObject({ ok: false, locked: { scope: 'source' } });
    expect(g.begin('chief', '10.1.1.1')).toEqual({ ok: true });
  });

  it('lets no burst of parallel guesses past the limit while the first are still being hashed', () => {
    const g = new LoginGuard(opts(() => 0));
    const started = Array.from({ length: 10 }, () => g.begin('012345', '10.0.0.1'));
    expect(started.filter((s) => s.ok)).toHaveLength(3);
    // The refused ones count against the address too: this one is locked by now.
    expect(started[3]).toMatchObject({ ok: false, locked: { scope: 'account' } });
    expect(started[9]).toMatchObject({ ok: false, locked: { scope: 'source' } });
  });
});

describe('users and sessions in the catalog', () => {
  let dir: string;
  let catalog: Catalog;
  let now: Date;
  let users: UserStore;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-users-'));
    now = new Date('2026-12-01T08:00:00Z');
    catalog = Catalog.open(dir, { now: () => now });
    users = catalog.users;
  });
  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('finds officers by officer id and admins by name, never ambiguously', () => {
    users.add({ name: '张三', role: 'officer', officerId: '012345', hash: hashPassword('246810') });
    users.add({ name: 'chief', role: 'admin', hash: hashPassword('chief-pass-1') });
    expect(users.forLogin('012345')?.user).toMatchObject({ name: '张三', role: 'officer', officerId: '012345', disabled: false });
    expect(users.forLogin('张三')).toBeUndefined();
    expect(users.forLogin('chief')?.user).toMatchObject({ role: 'admin' });
    const refuse = (f: () => unknown, code: string, m: RegExp) => {
      try {
        f();
        throw new Error('not refused');
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        expect((e as UserError).code).toBe(code);
        expect((e as Error).message).toMatch(m);
      }
    };
    refuse(
      () => users.add({ name: '012345', role: 'admin', hash: hashPassword('x-password-1') }),
      'EXISTS',
      /officer id of user 张三/,
    );
    refuse(
      () => users.add({ name: 'wang', role: 'officer', officerId: 'chief', hash: hashPassword('123456') }),
      'EXISTS',
      /login of user chief/,
    );
    refuse(
      () => users.add({ name: 'li', role: 'officer', officerId: '012345', hash: hashPassword('123456') }),
      'EXISTS',
      /already a login/,
    );
    refuse(
      () => users.add({ name: 'no id', role: 'officer', officerId: '1', hash: hashPassword('123456') }),
      'INVALID',
      /without spaces/,
    );
    refuse(() => users.add({ name: 'li', role: 'officer', hash: hashPassword('123456') }), 'INVALID', /needs an officer id/);
    expect(JSON.stringify(users.list())).not.toMatch(/scrypt|hash/);
  });

  it('keeps sessions as hashes of their tokens; they expire, end on logout, password change or disable', () => {
    const u = users.add({ name: 'chief', role: 'admin', hash: hashPassword('chief-pass-1') });
    const a = users.openSession(u.id, '127.0.0.1', 3600_000);
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const raw = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
    expect(JSON.stringify(raw.prepare('SELECT * FROM web_sessions').all())).not.toContain(a.token);
    raw.close();
    expect(users.sessionUser(a.token)?.name).toBe('chief');
    expect(users.sessionUser(`${a.token}x`)).toBeUndefined();
    now = new Date(now.getTime() + 3600_000);
    expect(users.sessionUser(a.token)).toBeUndefined();
    const b = users.openSession(u.id, '127.0.0.1', 3600_000);
    expect(users.revokeSession(b.token)).toBe(true);
    expect(users.sessionUser(b.token)).toBeUndefined();
    const c = users.openSession(u.id, '10.0.0.5', 3600_000);
    expect(users.list()[0].openSessions).toBe(1);
    expect(users.setPassword('chief', hashPassword('chief-pass-2')).revoked).toBe(1);
    expect(users.sessionUser(c.token)).toBeUndefined();
    const d = users.openSession(u.id, '10.0.0.5', 3600_000);
    expect(users.setDisabled('chief', true)).toMatchObject({ changed: true, revoked: 1 });
    expect(users.sessionUser(d.token)).toBeUndefined();
    expect(users.setDisabled('chief', false)).toMatchObject({ changed: true, revoked: 0 });
    expect(() => users.setDisabled('nobody', true)).toThrow(/no user nobody/);
  });

  it('makes the bootstrap admin of http.adminPassword, and leaves one managed with dockctl alone', async () => {
    expect(users.ensureConfigAdmin(hashPassword('config-pass-1'))).toBe('created');
    expect(users.get('admin')).toMatchObject({ role: 'admin', fromConfig: true });
    expect(users.ensureConfigAdmin(hashPassword('config-pass-2'))).toBe('updated');
    expect(await verifyPassword('config-pass-2', users.forLogin('admin')!.hash)).toBe(true);
    users.setPassword('admin', hashPassword('dockctl-pass-1'));
    expect(users.ensureConfigAdmin(hashPassword('config-pass-3'))).toBe('managed-by-dockctl');
    expect(await verifyPassword('dockctl-pass-1', users.forLogin('admin')!.hash)).toBe(true);
  });

  it('answers an unknown name like a wrong password, a disabled user with 403, and reports failures and lockouts', async () => {
    users.add({ name: '张三', role: 'officer', officerId: '012345', hash: hashPassword('246810') });
    const notices: AuthNotice[] = [];
    const auth = new Authenticator({
      users,
      guard: new LoginGuard({
        maxAccountFailures: 2,
        maxSourceFailures: 10,
        baseLockMs: 60_000,
        maxLockMs: 600_000,
        now: () => 0,
      }),
      notify: (n) => notices.push(n),
    });
    expect(await auth.check('012345', '246810', '127.0.0.1')).toMatchObject({ ok: true, user: { name: '张三' } });
    expect(await auth.check('999999', '246810', '127.0.0.1')).toMatchObject({ ok: false, code: 'WRONG_PASSWORD', status: 401 });
    expect(await auth.check('012345', '000000', '127.0.0.1')).toMatchObject({ ok: false, code: 'WRONG_PASSWORD', remaining: 1 });
    expect(await auth.check('012345', '000001', '127.0.0.1')).toMatchObject({
      ok: false,
      code: 'LOCKED_OUT',
      status: 429,
      scope: 'account',
      retryAfterSeconds: 60,
    });
    expect(await auth.check('012345', '246810', '127.0.0.1')).toMatchObject({ code: 'LOCKED_OUT' });
    expect(notices.map((n) => (n.type === 'lockout' ? `lockout ${n.scope} ${n.key}` : `failed ${n.login} ${n.reason}`))).toEqual([
      'failed 999999 wrong-password',
      'failed 012345 wrong-password',
      'failed 012345 wrong-password',
      'lockout account 012345',
      'failed 012345 locked',
    ]);
    users.add({ name: '李四', role: 'officer', officerId: '054321', hash: hashPassword('135791') });
    users.setDisabled('李四', true);
    expect(await auth.check('054321', '135791', '127.0.0.1')).toMatchObject({ ok: false, code: 'ACCOUNT_DISABLED', status: 403 });
    expect(await auth.check('054321', '000000', '127.0.0.1')).toMatchObject({ ok: false, code: 'WRONG_PASSWORD' });
  });
});

describe('request helpers', () => {
  it('reads cookies, Basic credentials, loopback names and source addresses', () => {
    expect(cookieValue('a=1; dockd_session=abc; b=2', 'dockd_session')).toBe('abc');
    expect(cookieValue('xdockd_session=abc', 'dockd_session')).toBeUndefined();
    expect(cookieValue(undefined, 'dockd_session')).toBeUndefined();
    expect(basicCredentials(`Basic ${Buffer.from('012345:p:w 密').toString('base64')}`)).toEqual({
      login: '012345',
      password: 'p:w 密',
    });
    expect(basicCredentials('Bearer abc')).toBeUndefined();
    expect(basicCredentials(`Basic ${Buffer.from('no-colon').toString('base64')}`)).toBeUndefined();
    expect(basicCredentials(`Basic ${Buffer.from(`a:${'x'.repeat(10_000)}`).toString('base64')}`)).toBeUndefined();
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.10', 'dock.example', '127.0.0.1.evil.example'])
      expect(isLoopbackHost(h), h).toBe(false);
    expect(sourceAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(sourceAddress('fd00::2')).toBe('fd00::2');
    expect(sessionCookie('tok', 60, true)).toBe('dockd_session=tok; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=60');
    expect(sessionCookie('tok', 60, false)).toBe('dockd_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=60');
  });

  it.each([
    [{ host: 'dock:8443', origin: 'https://dock:8443' }, 'https:', null],
    [{ host: 'dock:8443' }, 'https:', null],
    [{ host: 'dock:8443', origin: 'http://dock:8443' }, 'https:', 'http://dock:8443'],
    [{ host: 'dock:8443', origin: 'https://evil.example' }, 'https:', 'https://evil.example'],
    [{ host: 'dock:8443', origin: 'null' }, 'https:', 'null'],
    [{ host: 'dock:8443', 'sec-fetch-site': 'cross-site' }, 'https:', 'Sec-Fetch-Site: cross-site'],
    [{ host: 'dock:8443', 'sec-fetch-site': 'same-origin', origin: 'https://dock:8443' }, 'https:', null],
  ] as const)('a change with %j over %s is refused as: %s', (headers, scheme, refused) => {
    expect(crossOrigin(headers, scheme)).toBe(refused);
  });

  it.each([
    ['ESC', '\u001b[2J'],
    ['BEL', 'a\u0007'],
    ['CR', 'C-1\r'],
    ['NUL', 'x\u0000y'],
    ['DEL', '\u007f'],
    ['C1', '\u009b31m'],
    ['RLO', 'abc\u202etxt.exe'],
  ])('refuses %s in an annotation field', (_n, v) => {
    expect(fieldTextProblem('caseNo', v)).toMatch(/^caseNo contains a control character \(U\+[0-9A-F]{4}\)/);
  });

  it('accepts ordinary text, Chinese included', () => {
    expect(fieldTextProblem('place', '幸福路12号 (东门) – A/B #3')).toBeNull();
  });
});

describe('http config keys', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-httpcfg-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('defaults: loopback, no TLS needed, no kiosk, 12 h sessions, 5 failures per account, 20 per address, 300 s', () => {
    const c = validateConfig(structuredClone(base));
    expect(c.http).toEqual({
      listen: '127.0.0.1:8080',
      maxFailures: 5,
      maxSourceFailures: 20,
      lockoutSeconds: 300,
      allowPlainHttp: false,
      kiosk: false,
      sessionHours: 12,
      requestTimeoutSeconds: 30,
    });
  });

  it('keeps the bootstrap admin password only as a hash, the metrics token as a secret, and resolves the TLS paths', async () => {
    await fs.writeFile(path.join(dir, 'pw'), 'file-admin-pw-314\n');
    await fs.writeFile(path.join(dir, 'cert.pem'), 'x');
    await fs.writeFile(path.join(dir, 'key.pem'), 'x');
    const c = validateConfig(
      {
        ...structuredClone(base),
        http: {
          listen: '0.0.0.0:8443',
          adminPassword: { file: 'pw' },
          tls: { cert: 'cert.pem', key: 'key.pem' },
          metricsToken: 'a-metrics-token-of-32-characters',
        },
      },
      dir,
    );
    expect(c.http.tls).toEqual({ cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') });
    expect('adminPassword' in c.http).toBe(false);
    expect(await verifyPassword('file-admin-pw-314', c.http.adminPasswordHash!)).toBe(true);
    expect(JSON.stringify(c)).not.toContain('file-admin-pw-314');
    expect(SECRET_VALUES.has('file-admin-pw-314')).toBe(false);
    expect(c.http.metricsToken).toBe('a-metrics-token-of-32-characters');
  });

  it('allows plain HTTP beyond loopback only on purpose', () => {
    expect(
      validateConfig({ ...structuredClone(base), http: { listen: '0.0.0.0:8080', allowPlainHttp: true } }).http.allowPlainHttp,
    ).toBe(true);
    expect(validateConfig({ ...structuredClone(base), http: { listen: 'localhost:8080' } }).http.listen).toBe('localhost:8080');
  });

  it.each([
    [{ listen: '8080' }, 'config: http.listen: has an invalid value'],
    [{ listen: '127.0.0.1:99999' }, 'config: http.listen: port must be 0-65535 (got 99999)'],
    [
      { listen: '0.0.0.0:8080' },
      'config: http.tls: http.listen 0.0.0.0:8080 is beyond loopback, so the station page needs HTTPS (http.tls: {cert, key}); set http.allowPlainHttp: true to serve plain HTTP there on purpose',
    ],
    [
      { listen: '192.0.2.2:8443', tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } },
      'config: http.tls.cert: no such file /nonexistent/cert.pem',
    ],
    [{ tls: { cert: 'c.pem' } }, 'config: http.tls.key: missing required key'],
    [{ listen: '[::1]:8080', adminPassword: '' }, 'config: http.adminPassword: must not be empty'],
    [
      { adminPassword: { env: 'DOCKD_TEST_NO_SUCH_VAR' } },
      'config: http.adminPassword: environment variable DOCKD_TEST_NO_SUCH_VAR is not set',
    ],
    [{ metricsToken: 'short' }, 'config: http.metricsToken: must have at least 16 characters'],
    [{ maxFailures: 0 }, 'config: http.maxFailures'],
    [{ sessionHours: 0 }, 'config: http.sessionHours'],
    [{ kiosk: 'yes' }, 'config: http.kiosk: wrong type: must be boolean'],
    [{ lisen: '127.0.0.1:8080' }, 'config: http.lisen: unknown key'],
  ])('refuses http %j with one line naming the key', (http, message) => {
    expect(() => validateConfig({ ...structuredClone(base), http })).toThrow(ConfigError);
    expect(() => validateConfig({ ...structuredClone(base), http })).toThrow(message);
  });
});
