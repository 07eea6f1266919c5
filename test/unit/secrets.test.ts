/**
 * Secrets in the config (hq.mqtt.password, hq.tus.headers.*): inline, {env: NAME} or {file: PATH}. A missing variable
 * or unreadable file is one clear config error naming the key; resolved values replace the references.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ConfigError, SECRET_VALUES, loadConfig, validateConfig } from '../../daemon/config.ts';
import { createLogger } from '../../daemon/log.ts';
import { MIN_SCRUBBED_SECRET_LENGTH, redactSecrets } from '../../daemon/redact.ts';
import { runDockd, tempDir } from '../helpers/daemon.ts';

const UNSET = 'DOCKD_TEST_SURELY_UNSET_VARIABLE';
const SET = 'DOCKD_TEST_SECRET_VALUE';

function doc(hq: { password?: unknown; headers?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    station: { id: 'st-1' },
    storage: { dir: 'store' },
    dock: { mountRoots: ['dock'] },
    hq: {
      tus: { endpoint: 'http://127.0.0.1:1080/files/', ...(hq.headers ? { headers: hq.headers } : {}) },
      mqtt: { url: 'mqtts://127.0.0.1:8883', username: 'u', ...(hq.password !== undefined ? { password: hq.password } : {}) },
    },
  };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('config secrets: {env} and {file}', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await tempDir('dockd-secrets-');
    delete process.env[UNSET];
  });

  afterEach(async () => {
    delete process.env[SET];
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('{env} of an unset variable: one-line ConfigError naming the key and the variable', () => {
    const e = configError(() => validateConfig(doc({ password: { env: UNSET } }), dir));
    expect(e.message).not.toContain('\n');
    expect(e.message).toContain('hq.mqtt.password');
    expect(e.message).toContain(UNSET);
    expect(e.message).toMatch(/not set/);

    const h = configError(() => validateConfig(doc({ headers: { Authorization: { env: UNSET } } }), dir));
    expect(h.message).not.toContain('\n');
    expect(h.message).toContain('hq.tus.headers.Authorization');
    expect(h.message).toContain(UNSET);
  });

  it('{file} that is missing or not a file: a clear error naming the key, the file and why', async () => {
    const missing = path.join(dir, 'no-such-secret');
    const e = configError(() => validateConfig(doc({ password: { file: missing } }), dir));
    expect(e.message).not.toContain('\n');
    expect(e.message).toContain('hq.mqtt.password');
    expect(e.message).toContain(missing);
    expect(e.message).toMatch(/ENOENT/);

    await fs.mkdir(path.join(dir, 'a-directory'));
    const d = configError(() => validateConfig(doc({ headers: { Authorization: { file: 'a-directory' } } }), dir));
    expect(d.message).not.toContain('\n');
    expect(d.message).toContain('hq.tus.headers.Authorization');
    expect(d.message).toContain('a-directory');
    expect(d.message).toMatch(/EISDIR/);
  });

  it('malformed secret references are rejected by the schema, naming the key', () => {
    for (const bad of [{ env: '' }, { env: 'A', file: 'b' }, { vault: 'x' }, 42]) {
      const e = configError(() => validateConfig(doc({ password: bad }), dir));
      expect(e.message, JSON.stringify(bad)).toContain('hq.mqtt.password');
      expect(e.message).not.toContain('\n');
    }
  });

  it('resolves {env}, {file} (one trailing newline dropped, relative to the config) and inline values', async () => {
    process.env[SET] = 'Bearer env-secret-123';
    await fs.writeFile(path.join(dir, 'mqtt.pw'), 'file-secret-456\n');
    await fs.writeFile(path.join(dir, 'api.key'), 'crlf-secret-789\r\n');
    const c = validateConfig(
      doc({
        password: { file: 'mqtt.pw' },
        headers: { Authorization: { env: SET }, 'X-Api-Key': { file: path.join(dir, 'api.key') }, 'X-Plain': 'inline-value' },
      }),
      dir,
    );
    expect(c.hq.mqtt.password).toBe('file-secret-456');
    expect(c.hq.tus.headers).toEqual({
      Authorization: 'Bearer env-secret-123',
      'X-Api-Key': 'crlf-secret-789',
      'X-Plain': 'inline-value',
    });
    // Resolved values are remembered (for redaction).
    for (const v of ['file-secret-456', 'Bearer env-secret-123', 'crlf-secret-789']) expect(SECRET_VALUES.has(v)).toBe(true);

    const inline = validateConfig(doc({ password: 'inline-pw' }), dir);
    expect(inline.hq.mqtt.password).toBe('inline-pw');
    // No password at all stays absent (anonymous broker).
    expect(validateConfig(doc(), dir).hq.mqtt.password).toBeUndefined();
  });

  it('a file secret is read as is: only the final newline goes, inner whitespace and newlines stay', async () => {
    await fs.writeFile(path.join(dir, 'pw'), ' two words \n\n');
    const c = validateConfig(doc({ password: { file: 'pw' } }), dir);
    expect(c.hq.mqtt.password).toBe(' two words \n');
  });

  it('loadConfig resolves secrets from a YAML file, and dockd refuses to start on a missing variable with one line', async () => {
    process.env[SET] = 'Bearer from-env';
    const file = path.join(dir, 'dockd.yaml');
    await fs.writeFile(file, stringify(doc({ headers: { Authorization: { env: SET } } })));
    expect(loadConfig(file).config.hq.tus.headers.Authorization).toBe('Bearer from-env');

    await fs.writeFile(file, stringify(doc({ password: { env: UNSET } })));
    const r = await runDockd(['--config', file]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('hq.mqtt.password');
    expect(lines[0]).toContain(UNSET);
    expect(r.stdout).toBe('');
  });

  it('free text echoing a resolved secret of 8+ characters (whole, after its scheme, JSON-escaped) is scrubbed', async () => {
    process.env[SET] = 'Bearer tok-9f8e7d6c5b4a';
    await fs.writeFile(path.join(dir, 'pw'), 'pw-"quoted"-secret\n');
    validateConfig(doc({ password: { file: 'pw' }, headers: { Authorization: { env: SET } } }), dir);
    expect(MIN_SCRUBBED_SECRET_LENGTH).toBe(8);
    expect(redactSecrets('HTTP 401: invalid credentials: Bearer tok-9f8e7d6c5b4a, try again')).toBe(
      'HTTP 401: invalid credentials: [redacted], try again',
    );
    expect(redactSecrets('unknown token tok-9f8e7d6c5b4a')).toBe('unknown token [redacted]');
    expect(redactSecrets('{"echo":"pw-\\"quoted\\"-secret"}')).toBe('{"echo":"[redacted]"}');
    expect(redactSecrets('nothing secret here')).toBe('nothing secret here');
  });

  it('log fields are redacted by key at any usual depth, and never by value: other fields keep their exact text', () => {
    process.env[SET] = 'Bearer tok-9f8e7d6c5b4a';
    validateConfig(doc({ headers: { Authorization: { env: SET } } }), dir);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger('debug', sink);
    log.info(
      {
        password: 'by-key-1',
        headers: { Authorization: 'by-key-2' },
        device: { password: 'by-key-3' },
        authorization: 'by-key-4',
        config: {
          hq: { mqtt: { password: 'by-key-5' } },
          dock: { recorderPassword: 'by-key-6' },
          devices: [{ serial: '1234567', password: 'by-key-7' }],
        },
      },
      'key paths',
    );
    // An echoed secret in a field that is not a secret's key is the caller's to scrub (redactSecrets where it enters):
    // the logger never rewrites values, so a number or a hash is never damaged by a short secret.
    log.warn({ err: 'HQ said: Bearer tok-9f8e7d6c5b4a is wrong' }, 'unscrubbed on purpose');
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]) as Record<string, unknown>;
    for (let i = 1; i <= 7; i++) expect(lines[0]).not.toContain(`by-key-${i}`);
    expect(first).toMatchObject({
      password: '[redacted]',
      headers: '[redacted]',
      device: { password: '[redacted]' },
      authorization: '[redacted]',
      config: {
        hq: { mqtt: { password: '[redacted]' } },
        dock: { recorderPassword: '[redacted]' },
        devices: [{ serial: '1234567', password: '[redacted]' }],
      },
    });
    expect(JSON.parse(lines[1])).toMatchObject({ err: 'HQ said: Bearer tok-9f8e7d6c5b4a is wrong' });
  });

  it('the default recorder password 000000 is never searched for in text: a line holding 10000000 stays valid, exact JSON', () => {
    const c = validateConfig(
      {
        ...doc(),
        dock: { mountRoots: ['dock'], recorderPassword: '000000' },
        devices: [{ serial: '7654321', officerId: '000001', password: '1000000' }],
      },
      dir,
    );
    expect(c.dock.recorderPassword).toBe('000000');
    expect(SECRET_VALUES.has('000000')).toBe(true);
    expect(redactSecrets('size 10000000 bytes, at 2026-01-01T00:00:00.000Z')).toBe(
      'size 10000000 bytes, at 2026-01-01T00:00:00.000Z',
    );

    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger('debug', sink);
    const sha = `${'0'.repeat(32)}1000000${'0'.repeat(25)}`;
    log.info(
      { size: 10_000_000, sha256: sha, offset: 1_000_000, note: 'copied 10000000 of 10000000 bytes' },
      'starting upload of 10000000 bytes',
    );
    log.info({ file: { size: 100000000, password: '000000' } }, 'nested');
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(JSON.parse(lines[0])).toMatchObject({
      size: 10_000_000,
      sha256: sha,
      offset: 1_000_000,
      note: 'copied 10000000 of 10000000 bytes',
      msg: 'starting upload of 10000000 bytes',
    });
    expect(JSON.parse(lines[1])).toMatchObject({ file: { size: 100000000, password: '[redacted]' } });
  });
});
