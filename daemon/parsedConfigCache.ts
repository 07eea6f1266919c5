import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

/**
 * dockctl's cache of the config file's parse, per user and config file: `$XDG_CACHE_HOME/dockd/`, else
 * `~/.cache/dockd/`, one `parsed-config-<hash of the file's path>.json` per config, the 8 last written kept.
 * Starting yaml's modules and running its parser cold was 6–20 ms of every `dockctl status` (README, Performance,
 * eleventh round), loading the schema's validator 3–4 ms more (twelfth round); reading an entry takes well under one.
 *
 * What `parse` returns is kept: for loadConfig, the YAML parse as the schema checked it, with the schema's defaults
 * (and its time zone checked against ICU's list). The rest of validation — the other checks a schema cannot make,
 * secrets from the environment and from files, paths — runs every time. The entry is used when it holds the same file
 * name, the very same text and the same `parserId` (for loadConfig: yaml's version, the validator's digest and ICU's
 * versions), and when it is a regular file of this user's own that nobody else may write (a planted entry would be a
 * planted config). Nothing is kept when `parse` throws (a config
 * that is not valid YAML, or that the schema refuses, is refused again at the next command). It keeps only what JSON
 * carries exactly: a parse with anything else (`.inf`, -0, a `__proto__` key) is not cached. Eight entries: an
 * admin's few configs each keep theirs, and many (tests) leave no more than eight files.
 * Any failure to read or write it is a miss, never an error. The entry holds the config's text: a secret written in
 * the config itself (not through `env:` or `file:`) is then in it too, readable by the same user only;
 * DOCKD_CONFIG_CACHE=0 turns the cache off.
 */
export function parseWithCache(file: string, text: string, parserId: string, parse: (text: string) => unknown): unknown {
  const entryFile = parseCacheEntry(file);
  if (!entryFile) return parse(text);
  // format 2: the parse as the schema checked it (format 1 held the bare parse)
  const key = { format: 2, file, parser: parserId, text };
  const hit = readEntry(entryFile);
  if (hit && hit.format === key.format && hit.file === file && hit.parser === parserId && hit.text === text) {
    return hit.doc;
  }
  const doc = parse(text);
  if (exactInJson(doc) && writeEntry(entryFile, JSON.stringify({ ...key, doc }))) keepNewest(path.dirname(entryFile));
  return doc;
}

/** How many configs keep an entry. */
export const PARSE_CACHE_ENTRIES = 8;
const ENTRY = /^parsed-config-[0-9a-f]{16}\.json$/;
/** An entry being written (writeEntry's temporary name), or left behind by a dockctl killed while it wrote. */
const PARTIAL = /^parsed-config-[0-9a-f]{16}\.json\.\d+\.tmp$/;
/** A temporary entry older than this was left behind: no dockctl takes a minute to write a few KB. */
const PARTIAL_STALE_MS = 60_000;

/**
 * The entry of config file `file` (an absolute path), or null for no cache (DOCKD_CONFIG_CACHE=0, or neither variable
 * holds an absolute path). The entry itself holds the path: two paths of the same hash just take turns.
 */
export function parseCacheEntry(file: string): string | null {
  if (process.env.DOCKD_CONFIG_CACHE === '0') return null;
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? path.join(process.env.HOME, '.cache') : '');
  return path.isAbsolute(base) ? path.join(base, 'dockd', `parsed-config-${fnv64(file)}.json`) : null;
}

/**
 * 64-bit FNV-1a of the string's UTF-16 code units, in hex: a name, not a check (node:crypto costs ≈ 6 ms to load).
 * In two 32-bit halves: with BigInt it took ≈ 1 ms of every `dockctl` command. The prime is 2^40 + 0x1b3, so
 * h × prime = (h << 40) + h × 0x1b3 (mod 2^64); every sum below stays under 2^53, exact in a double.
 */
export function fnv64(s: string): string {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < s.length; i++) {
    lo ^= s.charCodeAt(i);
    const low = (lo >>> 0) * 0x1b3;
    const carry = Math.floor(low / 0x100000000);
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = low >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/**
 * Removes all but the PARSE_CACHE_ENTRIES newest entries, and temporary entries a killed dockctl left (after a write,
 * so only when a config's text changed).
 */
function keepNewest(dir: string): void {
  try {
    const names = readdirSync(dir);
    const entries = names
      .filter((n) => ENTRY.test(n))
      .map((n) => ({ file: path.join(dir, n), at: lstatSync(path.join(dir, n)).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    for (const old of entries.slice(PARSE_CACHE_ENTRIES)) rmSync(old.file, { force: true });
    for (const n of names.filter((n) => PARTIAL.test(n)))
      if (Date.now() - lstatSync(path.join(dir, n)).mtimeMs > PARTIAL_STALE_MS) rmSync(path.join(dir, n), { force: true });
  } catch {
    // another dockctl pruned at the same time: nothing lost, it is a cache
  }
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

/** Writes the entry atomically; whether it was written. */
function writeEntry(entryFile: string, json: string): boolean {
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
    return true;
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was created
    }
    return false;
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
