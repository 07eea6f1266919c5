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
import { redactSecrets } from '../../daemon/redact.ts';
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
  try { fn(); }
  catch (e) {
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
    const c = validateConfig(doc({
      password: { file: 'mqtt.pw' },
      headers: { Authorization: { env: SET }, 'X-Api-Key': { file: path.join(dir, 'api.key') }, 'X-Plain': 'inline-value' },
    }), dir);
    expect(c.hq.mqtt.password).toBe('file-secret-456');
    expect(c.hq.tus.headers).toEqual({ Authorization: 'Bearer env-secret-123', 'X-Api-Key': 'crlf-secret-789', 'X-Plain': 'inline-value' });
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

  it('text echoing a resolved secret (whole, or the credential after its scheme) is scrubbed, in logs too', async () => {
    process.env[SET] = 'Bearer tok-9f8e7d6c5b4a';
    await fs.writeFile(path.join(dir, 'pw'), 'pw-"quoted"-secret\n');
    validateConfig(doc({ password: { file: 'pw' }, headers: { Authorization: { env: SET } } }), dir);
    expect(redactSecrets('HTTP 401: invalid credentials: Bearer tok-9f8e7d6c5b4a, try again')).toBe('HTTP 401: invalid credentials: [redacted], try again');
    expect(redactSecrets('unknown token tok-9f8e7d6c5b4a')).toBe('unknown token [redacted]');
    expect(redactSecrets('nothing secret here')).toBe('nothing secret here');

    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const log = createLogger('debug', sink);
    log.warn({ err: 'HQ said: Bearer tok-9f8e7d6c5b4a is wrong', detail: { body: 'pw-"quoted"-secret' } }, 'refused with pw-"quoted"-secret');
    log.info({ password: 'by-key', headers: { Authorization: 'by-key-too' } }, 'key paths');
    expect(lines).toHaveLength(2);
    const all = lines.join('');
    for (const leak of ['tok-9f8e7d6c5b4a', 'pw-"quoted"-secret', 'pw-\\"quoted\\"-secret', 'by-key']) expect(all).not.toContain(leak);
    const first = JSON.parse(lines[0]) as { err: string; detail: { body: string }; msg: string };
    expect(first).toMatchObject({ err: 'HQ said: [redacted] is wrong', detail: { body: '[redacted]' }, msg: 'refused with [redacted]' });
  });
});
