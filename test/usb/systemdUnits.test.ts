import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { YOUNG_GENERATION_CAP } from '../../daemon/heapGrowth.ts';
import { BUILTIN_FINGERPRINTS } from '../../drivers/usb/fingerprints.ts';
import { hex4 } from '../../drivers/usb/sysfs.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const SYSTEMD = path.join(REPO, 'systemd');
const PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin:/usr/bin:/bin`;

function tool(name: string): void {
  if (spawnSync('sh', ['-c', `command -v ${name}`], { env: { ...process.env, PATH } }).status !== 0) {
    throw new Error(`${name} is missing: install the Debian package systemd (apt-get install systemd; .ci/run does)`);
  }
}
const run = (file: string, args: string[]) => spawnSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH } });

const temps: string[] = [];
afterEach(async () => {
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-systemd-'));
  temps.push(d);
  return d;
}

const NODE_LTS = '/opt/dockd-node/node_modules/node/bin/node'; // README, "Runtime"

/**
 * The units, side by side in a temp dir, with the Node of ExecStart= pointing at this one and /opt/dockd at this
 * checkout (verify insists that the program exists). Returns the path of `name`.
 */
async function unitHere(name = 'dockd.service'): Promise<string> {
  const dir = await tempDir();
  for (const unit of ['dockd.service', 'dockd-mount.service', 'dockd-mount.socket']) {
    const text = readFileSync(path.join(SYSTEMD, unit), 'utf8').replace(
      /^ExecStart=(\S+) ((?:--\S+ )*)\/opt\/dockd\/(\S+)/m,
      (_, node: string, options: string, script: string) => {
        expect(node).toBe(NODE_LTS);
        return `ExecStart=${process.execPath} ${options}${path.join(REPO, script)}`;
      },
    );
    await fs.writeFile(path.join(dir, unit), text);
  }
  return path.join(dir, name);
}

function keysOf(unitName: string): (k: string) => string[] {
  const unit = readFileSync(path.join(SYSTEMD, unitName), 'utf8');
  return (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

function exposure(file: string): number {
  const r = run('systemd-analyze', ['security', '--offline=yes', '--no-pager', file]);
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(`${r.stdout}${r.stderr}`);
  expect(m, r.stdout + r.stderr).not.toBeNull();
  return Number(m![1]);
}

describe('systemd/dockd.service', () => {
  const key = keysOf('dockd.service');

  it("passes systemd-analyze verify without a single diagnostic about it or the mount helper's units", async () => {
    tool('systemd-analyze');
    const file = await unitHere();
    const files = ['dockd.service', 'dockd-mount.service', 'dockd-mount.socket'].map((u) => path.join(path.dirname(file), u));
    const r = run('systemd-analyze', ['verify', ...files]);
    const aboutUs = `${r.stdout}${r.stderr}`
      .split('\n')
      .filter((l) => files.some((f) => l.includes(path.basename(f)) || l.includes(f)));
    expect(aboutUs).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('a broken unit does fail verify (the check above can fail)', async () => {
    tool('systemd-analyze');
    const file = await unitHere();
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node'));
    expect(run('systemd-analyze', ['verify', file]).status).not.toBe(0);
  });

  it('is Type=notify with a watchdog, and hardened as documented', () => {
    expect(key('Type')).toEqual(['notify']);
    expect(key('NotifyAccess')).toEqual(['all']); // messages come from the systemd-notify helper
    expect(key('WatchdogSec')).toEqual(['30']);
    expect(key('ExecStart')).toEqual([`${NODE_LTS} ${YOUNG_GENERATION_CAP.join(' ')} /opt/dockd/bin/dockd.js`]);
    expect(key('User')).toEqual(['dockd']);
    expect(key('NoNewPrivileges')).toEqual(['yes']);
    expect(key('ProtectSystem')).toEqual(['strict']);
    expect(key('ReadWritePaths')).toEqual(['/var/lib/dockd']);
    expect(key('PrivateTmp')).toEqual(['yes']);
    expect(key('ProtectHome')).toEqual(['yes']);
    // No capability at all: the mount helper mounts (usb.mountHelper), reached over its socket.
    expect(key('CapabilityBoundingSet')).toEqual(['']);
    expect(key('AmbientCapabilities')).toEqual([]);
    expect(key('Wants')[0]!.split(/\s+/)).toContain('dockd-mount.socket');
    expect(key('After')[0]!.split(/\s+/)).toContain('dockd-mount.socket');
    expect(key('SystemCallFilter')).toEqual(['@system-service', '~@privileged @resources']);
    expect(key('DevicePolicy')).toEqual(['closed']);
    expect(key('DeviceAllow').map((d) => d.split(/\s+/)[0])).toEqual(['char-ttyACM', 'char-ttyUSB', 'char-usb_device']);
    // /run/dockd must not be writable (nor a RuntimeDirectory of dockd's): the helper's mount root is root's.
    expect(key('RuntimeDirectory')).toEqual([]);
  });

  it('is rated 3.0 or less by systemd-analyze security (it was 3.3 holding CAP_SYS_ADMIN and CAP_SETUID)', async () => {
    tool('systemd-analyze');
    expect(exposure(await unitHere())).toBeLessThanOrEqual(3); // 0 = locked down … 10 = unprotected
  });
});

describe('systemd/dockd-mount.service and .socket', () => {
  const service = keysOf('dockd-mount.service');
  const socket = keysOf('dockd-mount.socket');

  it('listen where the README tells usb.mountHelper to point, for root and the dockd group only', () => {
    expect(socket('ListenStream')).toEqual(['/run/dockd-mount.sock']);
    expect(socket('SocketUser')).toEqual(['root']);
    expect(socket('SocketGroup')).toEqual(['dockd']);
    expect(socket('SocketMode')).toEqual(['0660']);
    expect(socket('Accept')).toEqual(['no']);
    expect(readFileSync(path.join(REPO, 'README.md'), 'utf8')).toContain('mountHelper: /run/dockd-mount.sock');
  });

  it('run the helper as root with CAP_SYS_ADMIN only, on the runtime mount root of the default config, in the host mount namespace', () => {
    const schema = JSON.parse(readFileSync(path.join(REPO, 'config/schema.json'), 'utf8')) as {
      properties: { usb: { properties: { runtimeMountRoot: { default: string } } } };
    };
    expect(service('ExecStart')).toEqual([
      `${NODE_LTS} /opt/dockd/bin/dockd-mount.js --runtime-root ${schema.properties.usb.properties.runtimeMountRoot.default} --owner dockd`,
    ]);
    expect(service('User')).toEqual(['root']);
    expect(service('CapabilityBoundingSet')).toEqual(['CAP_SYS_ADMIN']);
    expect(service('NoNewPrivileges')).toEqual(['yes']);
    expect(service('RestrictAddressFamilies')).toEqual(['AF_UNIX']);
    expect(service('Requires')).toEqual(['dockd-mount.socket']);
    // Any of these gives the unit a mount namespace of its own, and its mounts would never reach dockd's.
    for (const k of [
      'PrivateTmp',
      'PrivateMounts',
      'PrivateDevices',
      'ProtectSystem',
      'ProtectHome',
      'ReadWritePaths',
      'ReadOnlyPaths',
      'InaccessiblePaths',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'ProtectKernelLogs',
      'ProtectControlGroups',
      'ProtectProc',
      'MountFlags',
      'RootDirectory',
      'TemporaryFileSystem',
      'BindPaths',
      'RuntimeDirectory',
      'StateDirectory',
    ])
      expect(service(k), k).toEqual([]);
  });

  it('are rated by systemd-analyze security below 5 (a root helper without namespaces, but with no network and one capability)', async () => {
    tool('systemd-analyze');
    expect(exposure(await unitHere('dockd-mount.service'))).toBeLessThan(5);
  });
});

describe('tmpfiles.d and sysusers.d', () => {
  it("create the dockd user and /run/dockd/mnt (root's, 0750, group dockd; /run/dockd root's 0755) in a scratch root", async () => {
    tool('systemd-sysusers');
    tool('systemd-tmpfiles');
    const root = await tempDir();
    await fs.mkdir(path.join(root, 'etc'));
    const users = run('systemd-sysusers', [`--root=${root}`, path.join(SYSTEMD, 'dockd-sysusers.conf')]);
    expect(users.status, users.stderr).toBe(0);
    const passwd = await fs.readFile(path.join(root, 'etc/passwd'), 'utf8');
    const gid = Number(/^dockd:x:\d+:(\d+):/m.exec(passwd)![1]);
    const tmp = run('systemd-tmpfiles', ['--create', `--root=${root}`, path.join(SYSTEMD, 'dockd.conf')]);
    expect(tmp.status, tmp.stderr).toBe(0);
    const st = await fs.stat(path.join(root, 'run/dockd/mnt'));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o750);
    expect(st.uid).toBe(0);
    expect(st.gid).toBe(gid);
    const parent = await fs.stat(path.join(root, 'run/dockd'));
    expect([parent.uid, parent.mode & 0o777]).toEqual([0, 0o755]);
  });
});

describe('systemd/99-dockd.rules', () => {
  const rules = readFileSync(path.join(SYSTEMD, '99-dockd.rules'), 'utf8');
  const lines = rules.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const ids = (l: string) =>
    `${/ATTRS?\{idVendor\}=="([0-9a-f]{4})"/.exec(l)?.[1]}:${/ATTRS?\{idProduct\}=="([0-9a-f]{4})"/.exec(l)?.[1]}`;

  it('is well-formed udev syntax (KEY op "value", comma separated)', () => {
    const pair = /^\s*[A-Z_]+(\{[A-Za-z_]+\})?\s*(==|!=|=|\+=|-=|:=)\s*"[^"]*"\s*$/;
    for (const l of lines) for (const part of l.split(',')) expect(part, l).toMatch(pair);
  });

  it("covers every built-in recorder id: USB device and tty nodes to group dockd, storage left root's, automounters off", () => {
    const builtIn = [...new Set(BUILTIN_FINGERPRINTS.map((f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`))].sort();
    const usb = lines.filter((l) => l.includes('SUBSYSTEM=="usb"'));
    expect(usb.map(ids).sort()).toEqual(builtIn);
    for (const l of usb) expect(l).toMatch(/GROUP="dockd", MODE="0660"/);
    const serial = BUILTIN_FINGERPRINTS.filter((f) => f.driver === 'bc-serial').map(
      (f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`,
    );
    const storage = BUILTIN_FINGERPRINTS.filter((f) => f.driver === 'mass-storage').map(
      (f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`,
    );
    const tty = lines.filter((l) => l.includes('SUBSYSTEM=="tty"'));
    const block = lines.filter((l) => l.includes('SUBSYSTEM=="block"'));
    expect([...new Set(tty.map(ids))].sort()).toEqual([...new Set(serial)].sort());
    expect([...new Set(block.map(ids))].sort()).toEqual([...new Set(storage)].sort());
    for (const l of block) {
      expect(l).not.toMatch(/GROUP=|MODE=|OWNER=/); // dockd never opens the block device: the mount helper (root) mounts it
      expect(l).toContain('ENV{UDISKS_IGNORE}="1"');
      expect(l).toContain('ENV{UDISKS_AUTO}="0"');
    }
    for (const l of tty) expect(l).toContain('ENV{ID_MM_DEVICE_IGNORE}="1"');
  });
});
