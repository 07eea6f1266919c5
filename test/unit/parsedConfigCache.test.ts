import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../daemon/config.ts';
import { validatorId } from '../../daemon/configValidator.ts';
import { fnv64, PARSE_CACHE_ENTRIES, parseCacheEntry, parseWithCache } from '../../daemon/parsedConfigCache.ts';
import { parseYaml, yamlParserId } from '../../daemon/yamlParse.ts';
import { runDockctl, tempDir } from '../helpers/daemon.ts';

let dir: string;
let cacheHome: string;
let cacheDir: string;
/** The cache entry of config file `file` (under this test's XDG_CACHE_HOME). */
const entryOf = (file: string) => parseCacheEntry(file)!;
const saved = {
  XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
  HOME: process.env.HOME,
  DOCKD_CONFIG_CACHE: process.env.DOCKD_CONFIG_CACHE,
};

beforeEach(async () => {
  dir = await tempDir();
  cacheHome = path.join(dir, 'cache');
  cacheDir = path.join(cacheHome, 'dockd');
  process.env.XDG_CACHE_HOME = cacheHome;
});

afterEach(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await fs.rm(dir, { recursive: true, force: true });
});

/** yaml's parse, counting its calls: whether the cache answered is whether the parser ran. */
function countingParser(): { parse: (text: string) => unknown; calls: () => number } {
  let calls = 0;
  return {
    parse: (text) => {
      calls++;
      return parseYaml(text);
    },
    calls: () => calls,
  };
}

const TEXT = 'station: { id: dock-01 }\ndock:\n  bays: [{ id: "1", tty: a }]\nn: 12.5\nflag: true\nnone: ~\n';

describe('the parse cache of dockctl', () => {
  it("names an entry by FNV-1a 64 of the config's path, as it always did (an upgrade keeps the entries)", () => {
    // the published FNV-1a 64 vectors (ASCII: one byte per UTF-16 unit), then BigInt arithmetic, the earlier form
    expect([fnv64(''), fnv64('a'), fnv64('foobar')]).toEqual(['cbf29ce484222325', 'af63dc4c8601ec8c', '85944171f73967e8']);
    const bigint = (s: string) => {
      let h = 0xcbf29ce484222325n;
      for (let i = 0; i < s.length; i++) h = ((h ^ BigInt(s.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
      return h.toString(16).padStart(16, '0');
    };
    for (const name of ['/etc/dockd/dockd.yaml', '/srv/采集站/配置.yaml', '\uffff'.repeat(40), 'x'.repeat(4096)])
      expect(fnv64(name)).toBe(bigint(name));
    expect(path.basename(parseCacheEntry('/etc/dockd/dockd.yaml')!)).toBe(
      `parsed-config-${bigint('/etc/dockd/dockd.yaml')}.json`,
    );
  });

  it('answers the same text of the same file by the same parser without parsing it again', async () => {
    const p = countingParser();
    const first = parseWithCache('/etc/dockd/a.yaml', TEXT, 'yaml 1', p.parse);
    expect(p.calls()).toBe(1);
    const entry = entryOf('/etc/dockd/a.yaml');
    expect(path.dirname(entry)).toBe(cacheDir);
    expect(path.basename(entry)).toMatch(/^parsed-config-[0-9a-f]{16}\.json$/);
    expect((await fs.stat(entry)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(cacheDir)).mode & 0o777).toBe(0o700);
    const second = parseWithCache('/etc/dockd/a.yaml', TEXT, 'yaml 1', p.parse);
    expect(p.calls()).toBe(1);
    expect(second).toEqual(first);
    expect(second).toEqual({
      station: { id: 'dock-01' },
      dock: { bays: [{ id: '1', tty: 'a' }] },
      n: 12.5,
      flag: true,
      none: null,
    });
  });

  it('parses again when the text, the file or the parser differs', async () => {
    const p = countingParser();
    parseWithCache('/etc/dockd/a.yaml', TEXT, 'yaml 1', p.parse);
    expect(parseWithCache('/etc/dockd/a.yaml', TEXT.replace('dock-01', 'dock-02'), 'yaml 1', p.parse)).toMatchObject({
      station: { id: 'dock-02' },
    });
    expect(p.calls()).toBe(2);
    parseWithCache('/etc/dockd/b.yaml', TEXT, 'yaml 1', p.parse);
    expect(p.calls()).toBe(3);
    parseWithCache('/etc/dockd/b.yaml', TEXT, 'yaml 2', p.parse);
    expect(p.calls()).toBe(4);
    parseWithCache('/etc/dockd/b.yaml', TEXT, 'yaml 2', p.parse);
    expect(p.calls()).toBe(4);
    // A planted entry of another file under this file's name is not this file's parse.
    await fs.copyFile(entryOf('/etc/dockd/b.yaml'), `${entryOf('/etc/dockd/c.yaml')}.tmp`);
    await fs.rename(`${entryOf('/etc/dockd/c.yaml')}.tmp`, entryOf('/etc/dockd/c.yaml'));
    parseWithCache('/etc/dockd/c.yaml', TEXT, 'yaml 2', p.parse);
    expect(p.calls()).toBe(5);
  });

  it('keeps an entry for each of a few configs, and the newest eight of many', async () => {
    const p = countingParser();
    // Two configs in turn (a station's and a test one, or the bench's two catalogs): each parsed once.
    for (let i = 0; i < 3; i++) {
      parseWithCache('/etc/dockd/station.yaml', TEXT, 'yaml 1', p.parse);
      parseWithCache('/tmp/other.yaml', TEXT, 'yaml 1', p.parse);
    }
    expect(p.calls()).toBe(2);
    // Then ten more: the two first are the oldest and go; the cache holds eight.
    for (let i = 0; i < 10; i++) {
      parseWithCache(`/tmp/config-${i}.yaml`, TEXT, 'yaml 1', p.parse);
      await new Promise((r) => setTimeout(r, 5)); // distinct modification times
    }
    const left = await fs.readdir(cacheDir);
    expect(left).toHaveLength(PARSE_CACHE_ENTRIES);
    expect(left.sort()).toEqual(Array.from({ length: 8 }, (_, i) => path.basename(entryOf(`/tmp/config-${i + 2}.yaml`))).sort());
    await fs.writeFile(path.join(cacheDir, 'notes.txt'), 'not an entry'); // what is not an entry is left alone
    parseWithCache('/etc/dockd/station.yaml', TEXT, 'yaml 1', p.parse);
    expect(p.calls()).toBe(13);
    expect(await fs.readdir(cacheDir)).toHaveLength(PARSE_CACHE_ENTRIES + 1);
    await fs.stat(path.join(cacheDir, 'notes.txt'));
  });

  it('removes the temporary entry a killed dockctl left, once it is a minute old, not one being written', async () => {
    const p = countingParser();
    parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse);
    const left = `${entryOf('/a.yaml')}.4242.tmp`;
    const writing = `${entryOf('/b.yaml')}.4243.tmp`;
    await fs.writeFile(left, '{"format":');
    await fs.writeFile(writing, '{"format":');
    const past = new Date(Date.now() - 61_000);
    await fs.utimes(left, past, past);
    parseWithCache('/a.yaml', TEXT.replace('dock-01', 'dock-09'), 'yaml 1', p.parse); // a write, then the pruning
    await expect(fs.stat(left)).rejects.toThrow(/ENOENT/);
    await fs.stat(writing);
  });

  it("does not trust an entry others may write, that is not its user's own, or that is a link", async () => {
    const p = countingParser();
    const entry = entryOf('/a.yaml');
    parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse);
    // A planted entry for the same text with another document: it must not be believed.
    const planted = JSON.parse(await fs.readFile(entry, 'utf8'));
    planted.doc = { station: { id: 'planted' } };
    const plant = async (mode: number) => {
      await fs.rm(entry, { force: true });
      await fs.writeFile(entry, JSON.stringify(planted), { mode });
      await fs.chmod(entry, mode);
    };
    await plant(0o600);
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'planted' } }); // own: used
    await plant(0o620);
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
    await plant(0o602);
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
    if (process.getuid?.() === 0) {
      await plant(0o600);
      await fs.chown(entry, 65534, 65534);
      expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
    }
    await plant(0o600);
    await fs.rename(entry, path.join(dir, 'elsewhere.json'));
    await fs.symlink(path.join(dir, 'elsewhere.json'), entry);
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
    await fs.rm(entry);
    execFileSync('mkfifo', ['-m', '600', entry]); // would block a plain open for reading
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
    await fs.rm(entry, { force: true });
    await fs.writeFile(entry, '{"format": 1, "file": "/a.yaml", "te', { mode: 0o600 });
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ station: { id: 'dock-01' } });
  });

  it('caches no parse that JSON would change', async () => {
    const entry = entryOf('/a.yaml');
    for (const text of ['n: .inf\n', 'n: .nan\n', 'n: -0.0\n', '__proto__: { a: 1 }\n']) {
      const p = countingParser();
      await fs.rm(entry, { force: true });
      const doc = parseWithCache('/a.yaml', text, 'yaml 1', p.parse);
      expect(doc).toEqual(parseYaml(text));
      await expect(fs.stat(entry), text).rejects.toMatchObject({ code: 'ENOENT' });
      parseWithCache('/a.yaml', text, 'yaml 1', p.parse);
      expect(p.calls(), text).toBe(2);
    }
  });

  it('parses without a cache when there is no place for one, or it cannot be written', async () => {
    const p = countingParser();
    const entry = entryOf('/a.yaml');
    process.env.DOCKD_CONFIG_CACHE = '0'; // turned off
    expect(parseCacheEntry('/a.yaml')).toBeNull();
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ n: 12.5 });
    await expect(fs.stat(entry)).rejects.toMatchObject({ code: 'ENOENT' });
    delete process.env.DOCKD_CONFIG_CACHE;
    delete process.env.XDG_CACHE_HOME;
    delete process.env.HOME;
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ n: 12.5 });
    process.env.XDG_CACHE_HOME = 'relative/cache'; // the XDG rule: a relative path is ignored
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ n: 12.5 });
    await expect(fs.stat('relative')).rejects.toMatchObject({ code: 'ENOENT' });
    const file = path.join(dir, 'a-file');
    await fs.writeFile(file, '');
    process.env.XDG_CACHE_HOME = file; // not a directory
    expect(parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse)).toMatchObject({ n: 12.5 });
    process.env.HOME = dir;
    delete process.env.XDG_CACHE_HOME;
    parseWithCache('/a.yaml', TEXT, 'yaml 1', p.parse);
    expect(p.calls()).toBe(5);
    expect(entryOf('/a.yaml')).toBe(path.join(dir, '.cache', 'dockd', path.basename(entry)));
    await fs.stat(entryOf('/a.yaml'));
  });

  it('keeps the parse as the schema checked it; the other checks, secrets and paths are worked out again', async () => {
    const file = path.join(dir, 'dockd.yaml');
    await fs.writeFile(
      file,
      stringify({
        station: { id: 'dock-07' },
        storage: { dir: 'store' },
        dock: { mountRoots: ['dock'], recorderPassword: { env: 'DOCKD_TEST_RECORDER_PASSWORD' } },
        hq: { tus: { endpoint: 'https://hq.example.org/files/' }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
      }),
    );
    process.env.DOCKD_TEST_RECORDER_PASSWORD = 'first';
    try {
      expect(loadConfig(file, { parseCache: true }).config.dock.recorderPassword).toBe('first');
      const cached = JSON.parse(await fs.readFile(entryOf(file), 'utf8'));
      // ICU's versions too: the time zone checked by one runtime's zones is checked again by another's
      const parser = `${yamlParserId()}; ${validatorId()}; icu ${process.versions.icu} tz ${process.versions.tz}`;
      expect(cached).toMatchObject({ format: 2, file, parser });
      expect(yamlParserId()).toMatch(/^yaml \d+\.\d+\.\d+/);
      expect(validatorId()).toMatch(/^(validator [0-9a-f]{64}|schema [0-9a-f]{64} ajv \d+\.\d+\.\d+ )/);
      // the schema's defaults are in it; the secret is not (only its reference), nor the resolved paths
      expect(cached.doc.dock).toMatchObject({ concurrency: 2, recorderPassword: { env: 'DOCKD_TEST_RECORDER_PASSWORD' } });
      expect(cached.doc.storage.dir).toBe('store');
      expect(JSON.stringify(cached)).not.toContain('first');
      process.env.DOCKD_TEST_RECORDER_PASSWORD = 'second';
      const again = loadConfig(file, { parseCache: true }).config;
      expect(again.dock.recorderPassword).toBe('second');
      expect(again.dock.concurrency).toBeGreaterThan(0); // defaults filled again
      expect(again.storage.dir).toBe(path.join(process.cwd(), 'store'));
    } finally {
      delete process.env.DOCKD_TEST_RECORDER_PASSWORD;
    }
  });

  it('keeps nothing for a config the schema refuses, or one whose other checks fail: refused again each time', async () => {
    const file = path.join(dir, 'dockd.yaml');
    const good = {
      station: { id: 'dock-08' },
      storage: { dir: 'store' },
      dock: { mountRoots: ['dock'] },
      hq: { tus: { endpoint: 'https://hq.example.org/files/' }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
    };
    await fs.writeFile(file, stringify({ ...good, dock: { mountRoots: ['dock'], concurency: 3 } }));
    for (let i = 0; i < 2; i++)
      expect(() => loadConfig(file, { parseCache: true })).toThrow(/config: dock.concurency: unknown key/);
    await expect(fs.stat(entryOf(file))).rejects.toThrow(/ENOENT/);
    // A time zone this runtime's ICU does not know: checked with the schema, so nothing is kept either.
    await fs.writeFile(file, stringify({ ...good, station: { id: 'dock-08', timeZone: 'Mars/Olympus' } }));
    for (let i = 0; i < 2; i++) expect(() => loadConfig(file, { parseCache: true })).toThrow(/unknown time zone "Mars\/Olympus"/);
    await expect(fs.stat(entryOf(file))).rejects.toThrow(/ENOENT/);
    // Beyond the schema and the zone: checked at every load, from a cached parse too.
    const twice = { serial: '7', officerId: '1' };
    await fs.writeFile(file, stringify({ ...good, devices: [twice, twice] }));
    for (let i = 0; i < 2; i++) expect(() => loadConfig(file, { parseCache: true })).toThrow(/duplicate serial "7"/);
    expect(JSON.parse(await fs.readFile(entryOf(file), 'utf8')).doc.devices).toHaveLength(2);
  });
});

describe('dockctl with its parse cache', () => {
  it('reads an edited config at once, and a broken one is still an error', async () => {
    const file = path.join(dir, 'dockd.yaml');
    const doc = {
      station: { id: 'dock-31' },
      storage: { dir: path.join(dir, 'store') },
      dock: { mountRoots: [path.join(dir, 'dock')] },
      hq: { tus: { endpoint: 'https://hq.example.org/files/' }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
    };
    await fs.writeFile(file, stringify(doc));
    const env = { ...process.env, XDG_CACHE_HOME: cacheHome };
    // Without a catalog, dockctl status names the config's store: enough to see which config it read.
    const first = await runDockctl(file, ['status'], env);
    expect(first.stderr).toContain(path.join(dir, 'store', 'catalog.sqlite'));
    expect(JSON.parse(await fs.readFile(entryOf(file), 'utf8')).file).toBe(file);
    await fs.writeFile(file, stringify({ ...doc, storage: { dir: path.join(dir, 'other') } }));
    const second = await runDockctl(file, ['status'], env);
    expect(second.stderr).toContain(path.join(dir, 'other', 'catalog.sqlite'));
    await fs.writeFile(file, `${stringify(doc)}station: [\n`);
    const broken = await runDockctl(file, ['status'], env);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/is not valid YAML/);
  });
});
