import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, constants, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * dockctl's cache of the config file's YAML parse, one entry per user: `$XDG_CACHE_HOME/dockd/parsed-config.json`,
 * else `~/.cache/dockd/`. Starting yaml's modules and running its parser cold was ≈ 20 ms of every `dockctl status`
 * (README, Performance, eleventh round); reading this entry takes well under one.
 *
 * Only the parse is kept. Validation — defaults, secrets from the environment and from files, paths — runs every
 * time. The entry is used when it holds the same file name, the very same text and the same parser's version, and
 * when it is a regular file of this user's own that nobody else may write (a planted entry would be a planted
 * config). It keeps only what JSON carries exactly: a parse with anything else (`.inf`, -0, a `__proto__` key) is not
 * cached. One entry per user: the last config read, so that many configs (tests, several stations) leave one file.
 * Any failure to read or write it is a miss, never an error. The entry holds the config's text: a secret written in
 * the config itself (not through `env:` or `file:`) is then in it too, readable by the same user only;
 * DOCKD_CONFIG_CACHE=0 turns the cache off.
 */
export function parseWithCache(file: string, text: string, parserId: string, parse: (text: string) => unknown): unknown {
  const entryFile = cacheEntryFile();
  if (!entryFile) return parse(text);
  const key = { format: 1, file, parser: parserId, text };
  const hit = readEntry(entryFile);
  if (hit && hit.format === key.format && hit.file === file && hit.parser === parserId && hit.text === text) {
    return hit.doc;
  }
  const doc = parse(text);
  if (exactInJson(doc)) writeEntry(entryFile, JSON.stringify({ ...key, doc }));
  return doc;
}

/** Where the entry is, or null for no cache (DOCKD_CONFIG_CACHE=0, or neither variable holds an absolute path). */
function cacheEntryFile(): string | null {
  if (process.env.DOCKD_CONFIG_CACHE === '0') return null;
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? path.join(process.env.HOME, '.cache') : '');
  return path.isAbsolute(base) ? path.join(base, 'dockd', 'parsed-config.json') : null;
}

interface Entry {
  format: number;
  file: string;
  parser: string;
  text: string;
  doc: unknown;
}

function readEntry(entryFile: string): Entry | null {
  let fd: number;
  try {
    // O_NONBLOCK: something other than a regular file there (a FIFO) must not hang dockctl; it is refused below.
    fd = openSync(entryFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return null;
    const entry = JSON.parse(readFileSync(fd, 'utf8')) as Entry;
    return entry !== null && typeof entry === 'object' ? entry : null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function writeEntry(entryFile: string, json: string): void {
  const tmp = `${entryFile}.${process.pid}.tmp`;
  try {
    mkdirSync(path.dirname(entryFile), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      writeSync(fd, json);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, entryFile);
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was created
    }
  }
}

/** Whether JSON.parse(JSON.stringify(v)) gives back exactly `v`. */
function exactInJson(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0);
  if (Array.isArray(v)) return v.every(exactInJson);
  if (typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return false;
  return Object.keys(v).every((k) => k !== '__proto__' && exactInJson((v as Record<string, unknown>)[k]));
}
