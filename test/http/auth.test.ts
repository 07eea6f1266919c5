import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, SECRET_VALUES, validateConfig } from '../../daemon/config.ts';
import { AdminAuth, basicPassword, cookieValue, isLoopbackHost } from '../../daemon/http/auth.ts';
import { hashPassword, verifyPassword } from '../../daemon/http/password.ts';

const base = {
  station: { id: 'st' }, storage: { dir: 'store' }, dock: { mountRoots: ['dock'] },
  hq: { tus: { endpoint: 'http://127.0.0.1:1/files/' }, mqtt: { url: 'mqtt://127.0.0.1:2' } },
};

describe('admin password and lockout', () => {
  it('keeps only a salted scrypt hash and compares in constant time', async () => {
    const a = hashPassword('开门 sesame');
    const b = hashPassword('开门 sesame');
    expect(a.hash.length).toBe(32);
    expect(a.salt.equals(b.salt)).toBe(false);
    expect(a.hash.equals(b.hash)).toBe(false);
    expect(await verifyPassword('开门 sesame', a)).toBe(true);
    expect(await verifyPassword('开门 sesame ', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('locks after maxFailures wrong passwords in a row, refuses even the right one while locked, and unlocks after lockoutMs', async () => {
    let now = 1_000_000;
    const seen: [number, number | null][] = [];
    const auth = new AdminAuth({ hash: hashPassword('right'), maxFailures: 3, lockoutMs: 300_000, now: () => now, onFailure: (n, until) => seen.push([n, until]) });
    expect(await auth.checkPassword('wrong')).toMatchObject({ ok: false, code: 'WRONG_PASSWORD', status: 401, remaining: 2 });
    expect(await auth.checkPassword('right')).toEqual({ ok: true }); // a right one resets the count
    expect(await auth.checkPassword('w1')).toMatchObject({ code: 'WRONG_PASSWORD', remaining: 2 });
    expect(await auth.checkPassword('w2')).toMatchObject({ code: 'WRONG_PASSWORD', remaining: 1 });
    expect(await auth.checkPassword('w3')).toMatchObject({ code: 'LOCKED_OUT', status: 429, retryAfterSeconds: 300 });
    expect(seen).toEqual([[1, null], [1, null], [2, null], [3, 1_300_000]]);
    now += 299_000;
    expect(auth.lockedForMs()).toBe(1000);
    expect(await auth.checkPassword('right')).toMatchObject({ code: 'LOCKED_OUT', retryAfterSeconds: 1 });
    now += 1000;
    expect(auth.lockedForMs()).toBe(0);
    expect(await auth.checkPassword('right')).toEqual({ ok: true });
  });

  it('serializes a burst of attempts so none slips past the lockout', async () => {
    const auth = new AdminAuth({ hash: hashPassword('right'), maxFailures: 5, lockoutMs: 60_000, now: Date.now });
    const results = await Promise.all([...Array.from({ length: 8 }, (_, i) => auth.checkPassword(`guess-${i}`)), auth.checkPassword('right')]);
    expect(results.map((r) => (r.ok ? 'ok' : r.code))).toEqual([
      'WRONG_PASSWORD', 'WRONG_PASSWORD', 'WRONG_PASSWORD', 'WRONG_PASSWORD', 'LOCKED_OUT', 'LOCKED_OUT', 'LOCKED_OUT', 'LOCKED_OUT', 'LOCKED_OUT',
    ]);
  });

  it('refuses every password when none is configured', async () => {
    const auth = new AdminAuth({ hash: undefined, maxFailures: 5, lockoutMs: 1000, now: Date.now });
    expect(auth.configured).toBe(false);
    expect(await auth.checkPassword('anything')).toMatchObject({ ok: false, code: 'NOT_CONFIGURED', status: 403 });
  });

  it('opens sessions that expire, and closes them', () => {
    let now = 0;
    const auth = new AdminAuth({ hash: hashPassword('x'), maxFailures: 5, lockoutMs: 1000, now: () => now });
    const token = auth.openSession();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.hasSession(token)).toBe(true);
    expect(auth.hasSession(`${token}x`)).toBe(false);
    expect(auth.hasSession(undefined)).toBe(false);
    now += 12 * 3600_000;
    expect(auth.hasSession(token)).toBe(false);
    const other = auth.openSession();
    auth.closeSession(other);
    expect(auth.hasSession(other)).toBe(false);
  });

  it('reads cookies, Basic credentials and loopback names', () => {
    expect(cookieValue('a=1; dockd_session=abc; b=2', 'dockd_session')).toBe('abc');
    expect(cookieValue('xdockd_session=abc', 'dockd_session')).toBeUndefined();
    expect(cookieValue(undefined, 'dockd_session')).toBeUndefined();
    expect(basicPassword(`Basic ${Buffer.from('admin:p:w 密').toString('base64')}`)).toBe('p:w 密');
    expect(basicPassword('Bearer abc')).toBeUndefined();
    expect(basicPassword(`Basic ${Buffer.from('no-colon').toString('base64')}`)).toBeUndefined();
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.10', 'dock.example', '127.0.0.1.evil.example']) expect(isLoopbackHost(h), h).toBe(false);
  });
});

describe('http config keys', () => {
  it('defaults to 127.0.0.1:8080, 5 failures, 300 s', () => {
    const c = validateConfig(structuredClone(base));
    expect(c.http).toEqual({ listen: '127.0.0.1:8080', maxFailures: 5, lockoutSeconds: 300 });
  });

  it('keeps the admin password only as a hash (from a file secret), not as text nor in the redaction set', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-httpcfg-'));
    try {
      await fs.writeFile(path.join(dir, 'pw'), 'file-admin-pw-314\n');
      const c = validateConfig({ ...structuredClone(base), http: { listen: '0.0.0.0:8443', adminPassword: { file: 'pw' } } }, dir);
      expect(c.http.listen).toBe('0.0.0.0:8443');
      expect('adminPassword' in c.http).toBe(false);
      expect(await verifyPassword('file-admin-pw-314', c.http.adminPasswordHash!)).toBe(true);
      expect(JSON.stringify(c)).not.toContain('file-admin-pw-314');
      expect(SECRET_VALUES.has('file-admin-pw-314')).toBe(false);
    } finally { await fs.rm(dir, { recursive: true, force: true }); }
  });

  it('takes port 0 as "any free port" (the daemon logs the one it got)', () => {
    expect(validateConfig({ ...structuredClone(base), http: { listen: '127.0.0.1:0' } }).http.listen).toBe('127.0.0.1:0');
  });

  it.each([
    [{ listen: '8080' }, 'config: http.listen: has an invalid value'],
    [{ listen: '127.0.0.1:99999' }, 'config: http.listen: port must be 0-65535 (got 99999)'],
    [{ listen: '[::1]:8080', adminPassword: '' }, 'config: http.adminPassword: must not be empty'],
    [{ adminPassword: { env: 'DOCKD_TEST_NO_SUCH_VAR' } }, 'config: http.adminPassword: environment variable DOCKD_TEST_NO_SUCH_VAR is not set'],
    [{ maxFailures: 0 }, 'config: http.maxFailures'],
    [{ lisen: '127.0.0.1:8080' }, 'config: http.lisen: unknown key'],
  ])('refuses http %j with one line naming the key', (http, message) => {
    expect(() => validateConfig({ ...structuredClone(base), http })).toThrow(ConfigError);
    expect(() => validateConfig({ ...structuredClone(base), http })).toThrow(message);
  });
});
