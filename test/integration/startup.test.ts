/**
 * A wrong path stops dockd in one line (exit 2) before anything starts; a start-up that fails once services have
 * begun stops them and exits non-zero instead of hanging half started. The real command (bin/dockd.js), real
 * directories and permissions (the read-only case runs the daemon as `nobody`, since root ignores them).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DOCKD_BIN, tempDir } from '../helpers/daemon.ts';
import { freePort } from '../helpers/ports.ts';

const TIMEOUT = 120_000;

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs dockd to its end (or kills it after 60 s: a hang shows as signal SIGTERM); `as` runs it as another user. */
function runDockd(configFile: string, as?: { uid: number; gid: number }): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DOCKD_BIN, '--config', configFile],
      {
        timeout: 60_000,
        env: { ...process.env, DOCKD_CONFIG: '', HOME: '/tmp' },
        ...(as ?? {}),
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
          ms: Date.now() - started,
        });
      },
    );
  });
}

function account(file: string, name: string): number {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in ${file}`);
  return Number(line.split(':')[2]);
}

/** A TCP server standing in for HQ: counts every connection dockd makes to it. */
async function sentinel(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => n,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function canListen(port: number): Promise<boolean> {
  const s = net.createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('dockd start-up: wrong paths and failures', () => {
  let dir: string;
  let hq: Awaited<ReturnType<typeof sentinel>>;

  beforeEach(async () => {
    dir = await tempDir('dockd-startup-');
    await fs.chmod(dir, 0o755); // the unprivileged daemon reads its config here
    hq = await sentinel();
  });

  afterEach(async () => {
    await hq.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A config pointing at the sentinel HQ, with `paths` merged in. */
  async function configWith(paths: { storage?: string; mountRoot?: string; serialDir?: string }): Promise<string> {
    const doc = {
      station: { id: 'test-st' },
      storage: { dir: paths.storage ?? path.join(dir, 'store') },
      dock: {
        mountRoots: [paths.mountRoot ?? path.join(dir, 'dock')],
        serialDir: paths.serialDir ?? path.join(dir, 'serial', 'by-id'),
      },
      hq: {
        embedded: false,
        tus: { endpoint: `http://127.0.0.1:${hq.port}/files/` },
        mqtt: { url: `mqtt://127.0.0.1:${hq.port}`, topicPrefix: 'dockd' },
      },
      http: { listen: '127.0.0.1:0' },
    };
    const file = path.join(dir, 'dockd.yaml');
    await fs.writeFile(file, stringify(doc), { mode: 0o644 });
    return file;
  }

  /** Exit 2, exactly `line` on stderr, no log line (the logger comes after the check) and no connection to HQ. */
  function expectStoppedByPath(r: Run, line: string | RegExp): void {
    expect(r.signal, `dockd hung and was killed: ${r.stderr}`).toBeNull();
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    if (typeof line === 'string') expect(r.stderr.trimEnd()).toBe(line);
    else expect(r.stderr.trimEnd()).toMatch(line);
    expect(r.stdout).toBe('');
    expect(hq.connections()).toBe(0);
    console.log(`dockd exited ${r.code} after ${r.ms} ms: ${r.stderr.trimEnd()}`);
  }

  it(
    'a mount root that is a regular file: exit 2 in one line naming the key, nothing started',
    async () => {
      const plain = path.join(dir, 'dock-file');
      await fs.writeFile(plain, 'not a directory');
      const r = await runDockd(await configWith({ mountRoot: plain }));
      expectStoppedByPath(r, `config: dock.mountRoots.0: ${plain} is a regular file, not a directory`);
      expect(await fs.readFile(plain, 'utf8')).toBe('not a directory');
    },
    TIMEOUT,
  );

  it(
    'a store under a read-only directory (daemon run as nobody): exit 2 in one line naming the key',
    async () => {
      const as = { uid: account('/etc/passwd', 'nobody'), gid: account('/etc/group', 'nogroup') };
      const ro = path.join(dir, 'read-only');
      await fs.mkdir(ro, { mode: 0o555 });
      await fs.chmod(ro, 0o555);
      const missing = await runDockd(
        await configWith({ storage: path.join(ro, 'store'), mountRoot: path.join(dir, 'dock') }),
        as,
      );
      expectStoppedByPath(
        missing,
        `config: storage.dir: ${path.join(ro, 'store')} cannot be created: permission denied (EACCES)`,
      );

      // A store that exists but that this user may not write to.
      await fs.mkdir(path.join(ro, 'store'), { mode: 0o755 });
      const unwritable = await runDockd(await configWith({ storage: path.join(ro, 'store') }), as);
      expectStoppedByPath(
        unwritable,
        `config: storage.dir: ${path.join(ro, 'store')} is not writable: permission denied (EACCES)`,
      );
      expect(await fs.readdir(path.join(ro, 'store'))).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'a serial dir that is a file, and a mount root where no directory can be made (/proc): exit 2 in one line each',
    async () => {
      const serial = path.join(dir, 'by-id');
      await fs.writeFile(serial, '');
      expectStoppedByPath(
        await runDockd(await configWith({ serialDir: serial })),
        `config: dock.serialDir: ${serial} is a regular file, not a directory`,
      );
      // Node's recursive mkdir never returns under /proc: the check must not spin there.
      expectStoppedByPath(
        await runDockd(await configWith({ mountRoot: '/proc/dockd-test-root' })),
        'config: dock.mountRoots.0: /proc/dockd-test-root cannot be created: this file system takes no new entries there (ENOENT)',
      );
    },
    TIMEOUT,
  );

  it(
    'a failure after services began (embedded HQ: tus listening, its MQTT port taken) stops them and exits non-zero, leaving no listener',
    async () => {
      const tusPort = await freePort();
      const taken = net.createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const mqttPort = (taken.address() as net.AddressInfo).port;
      try {
        const doc = {
          station: { id: 'test-st' },
          storage: { dir: path.join(dir, 'store') },
          dock: { mountRoots: [path.join(dir, 'dock')], serialDir: path.join(dir, 'serial') },
          hq: {
            embedded: true,
            tus: { endpoint: `http://127.0.0.1:${tusPort}/files/` },
            mqtt: { url: `mqtt://127.0.0.1:${mqttPort}`, topicPrefix: 'dockd' },
          },
          http: { listen: '127.0.0.1:0' },
        };
        const file = path.join(dir, 'dockd.yaml');
        await fs.writeFile(file, stringify(doc));
        const r = await runDockd(file);
        expect(r.signal, `dockd hung and was killed: ${r.stderr}`).toBeNull();
        expect(r.code).toBe(1);
        const errLines = r.stderr
          .trimEnd()
          .split('\n')
          .filter((l) => !/Deprecation|FastifyWarning|--trace-warnings/.test(l));
        expect(errLines).toEqual([
          `dockd: could not start: embedded HQ: cannot listen for MQTT on 127.0.0.1:${mqttPort}: EADDRINUSE`,
        ]);
        expect(r.stdout).toContain('dockd could not start');
        expect(r.stdout).not.toContain('"dockd started"');
        // The embedded tus server had started; it is gone with the process, and its port is free again.
        expect(await canListen(tusPort)).toBe(true);
        console.log(`dockd exited ${r.code} after ${r.ms} ms: ${errLines[0]}`);
      } finally {
        await new Promise<void>((resolve) => taken.close(() => resolve()));
      }
    },
    TIMEOUT,
  );
});
