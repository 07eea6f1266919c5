import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configFileFromArgs,
  DEFAULT_CONFIG_FILE,
  loadConfig,
  PACKAGE_ROOT,
  validateConfig,
} from '../../daemon/config.ts';
import { checkConfigPaths } from '../../daemon/configPaths.ts';
import { runDockd } from '../helpers/daemon.ts';

/** A minimal valid document (every required key, nothing else). */
function minimal(): Record<string, any> {
  return {
    station: { id: 'dock-07' },
    storage: { dir: 'var/store' },
    dock: { mountRoots: ['var/dock'] },
    hq: { tus: { endpoint: 'https://hq.example.org/files/' }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
  };
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

function expectOneLine(e: ConfigError, line: string | RegExp): void {
  expect(e.code).toBe('CONFIG_INVALID');
  expect(e.message).not.toContain('\n');
  if (typeof line === 'string') expect(e.message).toBe(line);
  else expect(e.message).toMatch(line);
}

describe('validateConfig', () => {
  it('fills every default and resolves relative paths against the base dir', () => {
    const c = validateConfig(minimal(), '/srv/dockd');
    expect(c.storage.dir).toBe('/srv/dockd/var/store');
    expect(c.dock.mountRoots).toEqual(['/srv/dockd/var/dock']);
    expect(c.dock).toMatchObject({ concurrency: 2, settleMs: 200, settleSeconds: 2 });
    expect(c.devices).toEqual([]);
    expect(c.hq.embedded).toBe(false);
    expect(c.hq.tus).toEqual({
      endpoint: 'https://hq.example.org/files/',
      headers: {},
      concurrency: 2,
      stallTimeoutSeconds: 30,
      maxRetryDelaySeconds: 60,
      maxBytesPerSecond: 0,
      windows: [],
    });
    expect(c.rules).toEqual({ offloadWithinHours: 24, annotateWithinHours: 72, uploadWithinHours: 24, dockWithinHours: 72 });
    expect(c.hq.mqtt).toMatchObject({ url: 'mqtts://hq.example.org:8883', topicPrefix: 'dockd' });
    expect(c.log).toEqual({ level: 'info', format: 'auto' });
    expect(c.station).toEqual({ id: 'dock-07' });
  });

  it('keeps values that are given instead of the defaults', () => {
    const doc = minimal();
    doc.dock.concurrency = 4;
    doc.dock.settleMs = 0;
    doc.hq.mqtt.topicPrefix = 'evidence';
    doc.log = { level: 'debug' };
    const c = validateConfig(doc, '/x');
    expect(c.dock.concurrency).toBe(4);
    expect(c.dock.settleMs).toBe(0);
    expect(c.hq.mqtt.topicPrefix).toBe('evidence');
    expect(c.log.level).toBe('debug');
  });

  it('does not modify the document it is given', () => {
    const doc = minimal();
    const before = JSON.stringify(doc);
    validateConfig(doc, '/x');
    expect(JSON.stringify(doc)).toBe(before);
  });

  it('keeps absolute paths as they are', () => {
    const doc = minimal();
    doc.storage.dir = '/var/lib/dockd';
    doc.dock.mountRoots = ['/media/dock', 'rel/dock'];
    const c = validateConfig(doc, '/srv');
    expect(c.storage.dir).toBe('/var/lib/dockd');
    expect(c.dock.mountRoots).toEqual(['/media/dock', '/srv/rel/dock']);
  });

  it.each([
    [
      'top level',
      (d: any) => {
        d.stations = {};
      },
      'config: stations: unknown key',
    ],
    [
      'nested',
      (d: any) => {
        d.dock.mountRootz = ['x'];
      },
      'config: dock.mountRootz: unknown key',
    ],
    [
      'in a device entry',
      (d: any) => {
        d.devices = [{ serial: '1234567', officerId: '012345', name: '张三' }];
      },
      'config: devices.0.name: unknown key',
    ],
    [
      'three levels down',
      (d: any) => {
        d.hq.tus.header = {};
      },
      'config: hq.tus.header: unknown key',
    ],
  ])('names an unknown key (%s) in one line', (_what, edit, line) => {
    const doc = minimal();
    edit(doc);
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      line,
    );
  });

  it('names the misspelt key, not the required key it replaced', () => {
    const doc = minimal();
    doc.dock = { mountRootz: ['var/dock'] };
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      'config: dock.mountRootz: unknown key',
    );
  });

  it.each([
    [
      'station.id',
      (d: any) => {
        delete d.station.id;
      },
    ],
    [
      'hq',
      (d: any) => {
        delete d.hq;
      },
    ],
    [
      'hq.tus.endpoint',
      (d: any) => {
        d.hq.tus = {};
      },
    ],
    [
      'dock.mountRoots',
      (d: any) => {
        d.dock = {};
      },
    ],
    [
      'devices.0.officerId',
      (d: any) => {
        d.devices = [{ serial: '1234567' }];
      },
    ],
  ])('names a missing key: %s', (key, edit) => {
    const doc = minimal();
    edit(doc);
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      `config: ${key}: missing required key`,
    );
  });

  it.each([
    [
      'dock.concurrency',
      (d: any) => {
        d.dock.concurrency = '2';
      },
      'integer',
    ],
    [
      'dock.mountRoots',
      (d: any) => {
        d.dock.mountRoots = 'var/dock';
      },
      'array',
    ],
    [
      'hq.embedded',
      (d: any) => {
        d.hq.embedded = 'yes';
      },
      'boolean',
    ],
    [
      'station',
      (d: any) => {
        d.station = 'dock-07';
      },
      'object',
    ],
    [
      'devices.0.serial',
      (d: any) => {
        d.devices = [{ serial: 1234567, officerId: '012345' }];
      },
      'string',
    ],
    [
      'dock.settleMs',
      (d: any) => {
        d.dock.settleMs = 1.5;
      },
      'integer',
    ],
  ])('names a key of the wrong type: %s', (key, edit, type) => {
    const doc = minimal();
    edit(doc);
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      `config: ${key}: wrong type: must be ${type}`,
    );
  });

  it('names a value outside its enum and lists the allowed values', () => {
    const doc = minimal();
    doc.log = { level: 'verbose' };
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      'config: log.level: must be one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  it('names a value that does not match its pattern or range', () => {
    const id = minimal();
    id.station.id = 'dock 07';
    expectOneLine(
      errorOf(() => validateConfig(id)),
      /^config: station\.id: has an invalid value \(must match /,
    );
    const url = minimal();
    url.hq.tus.endpoint = 'ftp://hq/files/';
    expectOneLine(
      errorOf(() => validateConfig(url)),
      /^config: hq\.tus\.endpoint: has an invalid value/,
    );
    const range = minimal();
    range.dock.concurrency = 0;
    expectOneLine(
      errorOf(() => validateConfig(range)),
      'config: dock.concurrency: must be >= 1',
    );
    const roots = minimal();
    roots.dock.mountRoots = [];
    expectOneLine(
      errorOf(() => validateConfig(roots)),
      /^config: dock\.mountRoots: /,
    );
  });

  it('refuses an endpoint that is not a URL at all, naming the key', () => {
    const doc = minimal();
    doc.hq.tus.endpoint = 'http://';
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      /^config: hq\.tus\.endpoint: not a valid URL/,
    );
    const mqtt = minimal();
    mqtt.hq.embedded = true;
    mqtt.hq.tus.endpoint = 'http://127.0.0.1:1080/files/';
    mqtt.hq.mqtt.url = 'mqtt://exa mple';
    expectOneLine(
      errorOf(() => validateConfig(mqtt)),
      /^config: hq\.mqtt\.url: not a valid URL/,
    );
  });

  it.each([[null], [[]], ['station: x'], [42]])('refuses a document that is not a mapping: %j', (doc) => {
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      'config: the document must be a mapping of keys',
    );
  });

  it('refuses an unknown time zone and accepts a real one', () => {
    const bad = minimal();
    bad.station.timeZone = 'Mars/Olympus_Mons';
    expectOneLine(
      errorOf(() => validateConfig(bad)),
      'config: station.timeZone: unknown time zone "Mars/Olympus_Mons"',
    );
    const good = minimal();
    good.station.timeZone = 'Asia/Shanghai';
    expect(validateConfig(good).station.timeZone).toBe('Asia/Shanghai');
    // Not in Intl's list of canonical zones, but real: an alias, and UTC.
    for (const zone of ['Asia/Chongqing', 'Asia/Calcutta', 'UTC']) {
      const alias = minimal();
      alias.station.timeZone = zone;
      expect(validateConfig(alias).station.timeZone).toBe(zone);
    }
  });

  it('refuses a device serial listed twice, naming the second entry', () => {
    const doc = minimal();
    doc.devices = [
      { serial: '1234567', officerId: '012345' },
      { serial: '7654321', officerId: '054321' },
      { serial: '1234567', officerId: '099999' },
    ];
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      'config: devices.2.serial: duplicate serial "1234567"',
    );
  });

  it('refuses an embedded HQ whose tus endpoint is not loopback', () => {
    const doc = minimal();
    doc.hq = { embedded: true, tus: { endpoint: 'http://10.1.2.3:1080/files/' }, mqtt: { url: 'mqtt://127.0.0.1:1883' } };
    const e = errorOf(() => validateConfig(doc));
    expectOneLine(e, /^config: hq\.tus\.endpoint: hq\.embedded is true, so it must point at loopback \(got 10\.1\.2\.3\)/);
  });

  it('refuses an embedded HQ whose MQTT url is not loopback', () => {
    const doc = minimal();
    doc.hq = {
      embedded: true,
      tus: { endpoint: 'http://localhost:1080/files/' },
      mqtt: { url: 'mqtt://broker.example.org:1883' },
    };
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      /^config: hq\.mqtt\.url: hq\.embedded is true, so it must point at loopback \(got broker\.example\.org\)/,
    );
  });

  it('does not take a host that merely starts with a loopback name as loopback', () => {
    const doc = minimal();
    doc.hq = { embedded: true, tus: { endpoint: 'http://localhost.example.org/files/' }, mqtt: { url: 'mqtt://127.0.0.1:1883' } };
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      /^config: hq\.tus\.endpoint: /,
    );
  });

  it('accepts an embedded HQ on 127.0.0.1, localhost or [::1], and a remote HQ when not embedded', () => {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      const doc = minimal();
      doc.hq = { embedded: true, tus: { endpoint: `http://${host}:1080/files/` }, mqtt: { url: `mqtt://${host}:1883` } };
      expect(validateConfig(doc).hq.embedded).toBe(true);
    }
    expect(validateConfig(minimal()).hq.tus.endpoint).toBe('https://hq.example.org/files/');
  });

  it('resolves a secret from the environment and reports a missing variable by key', () => {
    const name = `DOCKD_TEST_SECRET_${process.pid}`;
    const doc = minimal();
    doc.hq.mqtt.password = { env: name };
    expectOneLine(
      errorOf(() => validateConfig(doc)),
      `config: hq.mqtt.password: environment variable ${name} is not set`,
    );
    process.env[name] = 's3cret';
    try {
      expect(validateConfig(doc).hq.mqtt.password).toBe('s3cret');
    } finally {
      delete process.env[name];
    }
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-config-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function write(name: string, text: string): Promise<string> {
    const file = path.join(dir, name);
    await fs.writeFile(file, text);
    return file;
  }

  it("loads a YAML file: relative paths against the working directory, the file's hash, defaults filled", async () => {
    const text = stringify(minimal());
    const file = await write('dockd.yaml', text);
    const loaded = loadConfig(file);
    expect(loaded.file).toBe(file);
    expect(loaded.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(loaded.config.storage.dir).toBe(path.resolve(process.cwd(), 'var/store'));
    expect(loaded.config.dock.mountRoots).toEqual([path.resolve(process.cwd(), 'var/dock')]);
    expect(loaded.config.dock.concurrency).toBe(2);
  });

  it('resolves the paths of the package default config against the package, wherever it is run from', () => {
    const loaded = loadConfig(DEFAULT_CONFIG_FILE);
    expect(loaded.config.storage.dir).toBe(path.join(PACKAGE_ROOT, 'var', 'store'));
    expect(loaded.config.dock.mountRoots).toEqual([path.join(PACKAGE_ROOT, 'var', 'dock')]);
    expect(loaded.config.hq.embedded).toBe(true);
  });

  it('reports invalid YAML in one line naming the file', async () => {
    const file = await write('bad.yaml', 'station:\n  id: dock-07\n    storage: [unclosed\n');
    expectOneLine(
      errorOf(() => loadConfig(file)),
      new RegExp(`^config: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid YAML: `),
    );
  });

  it('reports an empty file as not a mapping', async () => {
    const file = await write('empty.yaml', '');
    expectOneLine(
      errorOf(() => loadConfig(file)),
      'config: the document must be a mapping of keys',
    );
  });

  it('reports a missing file with its error code', () => {
    const file = path.join(dir, 'nope.yaml');
    expectOneLine(
      errorOf(() => loadConfig(file)),
      `config: cannot read ${file}: ENOENT`,
    );
  });

  it('reports an unknown key in a file by its dotted path', async () => {
    const doc = minimal();
    doc.hq.mqtt.topicPrefx = 'x';
    const file = await write('typo.yaml', stringify(doc));
    expectOneLine(
      errorOf(() => loadConfig(file)),
      'config: hq.mqtt.topicPrefx: unknown key',
    );
  });
});

describe('configFileFromArgs', () => {
  const saved = process.env.DOCKD_CONFIG;
  afterEach(() => {
    if (saved === undefined) delete process.env.DOCKD_CONFIG;
    else process.env.DOCKD_CONFIG = saved;
  });

  it('takes --config FILE and --config=FILE, and returns the other arguments', () => {
    expect(configFileFromArgs(['--config', '/etc/dockd.yaml', 'status', '--json'])).toEqual({
      file: '/etc/dockd.yaml',
      rest: ['status', '--json'],
    });
    expect(configFileFromArgs(['files', '--config=/etc/d.yaml'])).toEqual({ file: '/etc/d.yaml', rest: ['files'] });
  });

  it('refuses --config without a file', () => {
    expectOneLine(
      errorOf(() => configFileFromArgs(['--config'])),
      'config: --config needs a file',
    );
  });

  it('falls back to $DOCKD_CONFIG, then to the package default (an empty variable counts as unset)', () => {
    process.env.DOCKD_CONFIG = '/etc/from-env.yaml';
    expect(configFileFromArgs([]).file).toBe('/etc/from-env.yaml');
    expect(configFileFromArgs(['--config', '/a.yaml']).file).toBe('/a.yaml');
    process.env.DOCKD_CONFIG = '';
    expect(configFileFromArgs([]).file).toBe(DEFAULT_CONFIG_FILE);
    delete process.env.DOCKD_CONFIG;
    expect(configFileFromArgs([]).file).toBe(DEFAULT_CONFIG_FILE);
  });
});

describe('checkConfigPaths (every path before any service starts)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-config-paths-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A config whose paths all lie in the temp dir; `change` edits the document before validation. */
  function configWith(change: (doc: Record<string, any>) => void = () => {}) {
    const doc = minimal();
    doc.storage.dir = 'var/store';
    doc.dock.mountRoots = ['var/dock'];
    doc.dock.serialDir = 'var/serial/by-id';
    change(doc);
    return validateConfig(doc, dir);
  }

  async function refusal(change: (doc: Record<string, any>) => void): Promise<string> {
    const e = await checkConfigPaths(configWith(change)).then(
      () => null,
      (err: unknown) => err,
    );
    if (!(e instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(e)}`);
    expectOneLine(e, /^config: /);
    return e.message;
  }

  it('creates the store, nested mount roots and the embedded HQ dir, and leaves an absent serial dir to appear later', async () => {
    const config = configWith((d) => {
      d.dock.mountRoots = ['var/dock', 'deep/er/dock'];
      d.hq.embedded = true;
      d.hq.tus.endpoint = 'http://127.0.0.1:1080/files/';
      d.hq.mqtt.url = 'mqtt://127.0.0.1:1883';
    });
    await checkConfigPaths(config);
    for (const d of ['var/store', 'var/dock', 'deep/er/dock', 'var/hq'])
      expect((await fs.stat(path.join(dir, d))).isDirectory()).toBe(true);
    await expect(fs.access(path.join(dir, 'var/serial'))).rejects.toMatchObject({ code: 'ENOENT' });
    // The write check leaves nothing behind.
    expect(await fs.readdir(path.join(dir, 'var/store'))).toEqual([]);
    // And a second start finds everything in place.
    await checkConfigPaths(config);
  });

  it('refuses a mount root that is a regular file, naming its index, and one below a regular file', async () => {
    await fs.writeFile(path.join(dir, 'plain'), 'not a directory');
    expect(
      await refusal((d) => {
        d.dock.mountRoots = ['var/dock', 'plain'];
      }),
    ).toBe(`config: dock.mountRoots.1: ${path.join(dir, 'plain')} is a regular file, not a directory`);
    expect(
      await refusal((d) => {
        d.dock.mountRoots = ['plain/sub/dock'];
      }),
    ).toBe(
      `config: dock.mountRoots.0: ${path.join(dir, 'plain/sub/dock')} cannot be a directory: ${path.join(dir, 'plain')} is a regular file`,
    );
    await expect(fs.access(path.join(dir, 'var/dock'))).resolves.toBeUndefined(); // the first root was fine
  });

  it('refuses a store that is a file, and a mount root where no directory can be made (/proc), without hanging', async () => {
    await fs.writeFile(path.join(dir, 'store-file'), '');
    expect(
      await refusal((d) => {
        d.storage.dir = 'store-file';
      }),
    ).toBe(`config: storage.dir: ${path.join(dir, 'store-file')} is a regular file, not a directory`);
    expect(
      await refusal((d) => {
        d.dock.mountRoots = ['/proc/dockd-test/dock'];
      }),
    ).toBe(
      'config: dock.mountRoots.0: /proc/dockd-test/dock cannot be created (at /proc/dockd-test): this file system takes no new entries there (ENOENT)',
    );
  });

  it('refuses a serial dir that is a file, below a file, or a dangling symbolic link', async () => {
    await fs.mkdir(path.join(dir, 'var/serial'), { recursive: true });
    await fs.writeFile(path.join(dir, 'var/serial/by-id'), '');
    expect(await refusal(() => {})).toBe(
      `config: dock.serialDir: ${path.join(dir, 'var/serial/by-id')} is a regular file, not a directory`,
    );
    await fs.rm(path.join(dir, 'var/serial'), { recursive: true });
    await fs.writeFile(path.join(dir, 'var/serial'), '');
    expect(await refusal(() => {})).toBe(
      `config: dock.serialDir: ${path.join(dir, 'var/serial/by-id')} cannot be a directory: ${path.join(dir, 'var/serial')} is a regular file`,
    );
    await fs.symlink(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    expect(
      await refusal((d) => {
        d.dock.serialDir = 'dangling';
      }),
    ).toBe(`config: dock.serialDir: ${path.join(dir, 'dangling')} is a symbolic link to nothing`);
  });

  it('checks the USB paths only when USB docking is on', async () => {
    await fs.writeFile(path.join(dir, 'mnt-file'), '');
    await checkConfigPaths(
      configWith((d) => {
        d.usb = { enabled: false, runtimeMountRoot: 'mnt-file' };
      }),
    );
    expect(
      await refusal((d) => {
        d.usb = { enabled: true, runtimeMountRoot: 'mnt-file' };
      }),
    ).toBe(`config: usb.runtimeMountRoot: ${path.join(dir, 'mnt-file')} is a regular file, not a directory`);
    expect(
      await refusal((d) => {
        d.usb = { enabled: true, runtimeMountRoot: 'run/mnt', sysfsRoot: path.join(dir, 'no-sys') };
      }),
    ).toBe(`config: usb.sysfsRoot: ${path.join(dir, 'no-sys')} does not exist`);
    await fs.mkdir(path.join(dir, 'sys'));
    await fs.mkdir(path.join(dir, 'dev'));
    await checkConfigPaths(
      configWith((d) => {
        d.usb = { enabled: true, runtimeMountRoot: 'run/mnt', sysfsRoot: path.join(dir, 'sys'), devRoot: path.join(dir, 'dev') };
      }),
    );
    expect((await fs.stat(path.join(dir, 'run/mnt'))).isDirectory()).toBe(true);
  });

  it('refuses TLS files that are missing or not regular files', async () => {
    await fs.writeFile(path.join(dir, 'ca.pem'), 'x');
    await fs.mkdir(path.join(dir, 'key.pem'));
    await checkConfigPaths(
      configWith((d) => {
        d.hq.mqtt.tls = { ca: 'ca.pem' };
      }),
    );
    expect(
      await refusal((d) => {
        d.hq.mqtt.tls = { ca: 'ca.pem', cert: 'cert.pem' };
      }),
    ).toBe(`config: hq.mqtt.tls.cert: ${path.join(dir, 'cert.pem')} does not exist`);
    expect(
      await refusal((d) => {
        d.hq.mqtt.tls = { key: 'key.pem' };
      }),
    ).toBe(`config: hq.mqtt.tls.key: ${path.join(dir, 'key.pem')} is a directory, not a regular file`);
  });
});

describe('dockd with an invalid config (the real command)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-config-cmd-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  function withStorageIn(doc: Record<string, any>): Record<string, any> {
    doc.storage.dir = path.join(dir, 'store');
    doc.dock.mountRoots = [path.join(dir, 'dock')];
    return doc;
  }

  it('exits non-zero with exactly one stderr line naming an unknown key, and starts nothing', async () => {
    const doc = withStorageIn(minimal());
    doc.dock.mountRootz = ['elsewhere'];
    const file = path.join(dir, 'bad.yaml');
    await fs.writeFile(file, stringify(doc));
    const r = await runDockd(['--config', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe('config: dock.mountRootz: unknown key\n');
    expect(r.stdout).toBe('');
    await expect(fs.access(path.join(dir, 'store'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names the misspelt key when it replaces a required one', async () => {
    const doc = withStorageIn(minimal());
    doc.dock = { mountRootz: [path.join(dir, 'dock')] };
    const file = path.join(dir, 'typo.yaml');
    await fs.writeFile(file, stringify(doc));
    const r = await runDockd(['--config', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe('config: dock.mountRootz: unknown key\n');
  });

  it('exits non-zero with one line for a wrong type, invalid YAML and a missing file', async () => {
    const doc = withStorageIn(minimal());
    doc.hq.tus.concurrency = 'many';
    const typed = path.join(dir, 'typed.yaml');
    await fs.writeFile(typed, stringify(doc));
    const yamlBad = path.join(dir, 'broken.yaml');
    await fs.writeFile(yamlBad, 'station: {id: dock-07\n');
    const missing = path.join(dir, 'missing.yaml');
    const results = await Promise.all([typed, yamlBad, missing].map((f) => runDockd(['--config', f])));
    const expected = [
      'config: hq.tus.concurrency: wrong type: must be integer\n',
      new RegExp(`^config: ${yamlBad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid YAML: [^\\n]+\\n$`),
      `config: cannot read ${missing}: ENOENT\n`,
    ];
    results.forEach((r, i) => {
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      const e = expected[i];
      if (typeof e === 'string') expect(r.stderr).toBe(e);
      else expect(r.stderr).toMatch(e);
    });
  });

  it('exits non-zero with one line for an unexpected argument', async () => {
    const r = await runDockd(['--config', path.join(dir, 'x.yaml'), 'extra']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe('dockd: unexpected argument extra (usage: dockd [--config FILE])\n');
  });
});
