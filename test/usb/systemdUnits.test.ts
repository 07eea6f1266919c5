import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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
afterEach(async () => { for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true }); });
async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-systemd-'));
  temps.push(d);
  return d;
}

/** The unit with ExecStart pointing at this checkout (verify insists that the program exists). */
async function unitHere(): Promise<string> {
  const dir = await tempDir();
  const unit = readFileSync(path.join(SYSTEMD, 'dockd.service'), 'utf8')
    .replace(/^ExecStart=.*$/m, `ExecStart=${process.execPath} ${path.join(REPO, 'bin/dockd.js')}`);
  const file = path.join(dir, 'dockd.service');
  await fs.writeFile(file, unit);
  return file;
}

describe('systemd/dockd.service', () => {
  const unit = readFileSync(path.join(SYSTEMD, 'dockd.service'), 'utf8');
  const key = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());

  it('passes systemd-analyze verify without a single diagnostic about it', async () => {
    tool('systemd-analyze');
    const file = await unitHere();
    const r = run('systemd-analyze', ['verify', file]);
    const aboutUs = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(path.basename(file)) || l.includes(file));
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
    expect(key('ExecStart')).toEqual(['/usr/bin/node /opt/dockd/bin/dockd.js']);
    expect(key('User')).toEqual(['dockd']);
    expect(key('NoNewPrivileges')).toEqual(['yes']);
    expect(key('ProtectSystem')).toEqual(['strict']);
    expect(key('ReadWritePaths')).toEqual(['/var/lib/dockd /run/dockd']);
    expect(key('PrivateTmp')).toEqual(['yes']);
    expect(key('ProtectHome')).toEqual(['yes']);
    expect(key('CapabilityBoundingSet')).toEqual(['CAP_SYS_ADMIN CAP_SETUID']);
    expect(key('AmbientCapabilities')).toEqual(['CAP_SYS_ADMIN CAP_SETUID']);
  });

  it('is rated low-exposure by systemd-analyze security', async () => {
    tool('systemd-analyze');
    const r = run('systemd-analyze', ['security', '--offline=yes', '--no-pager', await unitHere()]);
    const m = /Overall exposure level for \S+: ([\d.]+)/.exec(`${r.stdout}${r.stderr}`);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(5); // 0 = locked down … 10 = unprotected; above 5 systemd calls it MEDIUM
  });
});

describe('tmpfiles.d and sysusers.d', () => {
  it('create the dockd user and /run/dockd/mnt (0750, owned by dockd) in a scratch root', async () => {
    tool('systemd-sysusers');
    tool('systemd-tmpfiles');
    const root = await tempDir();
    await fs.mkdir(path.join(root, 'etc'));
    const users = run('systemd-sysusers', [`--root=${root}`, path.join(SYSTEMD, 'dockd-sysusers.conf')]);
    expect(users.status, users.stderr).toBe(0);
    const passwd = await fs.readFile(path.join(root, 'etc/passwd'), 'utf8');
    const uid = Number(/^dockd:x:(\d+):/m.exec(passwd)![1]);
    const tmp = run('systemd-tmpfiles', ['--create', `--root=${root}`, path.join(SYSTEMD, 'dockd.conf')]);
    expect(tmp.status, tmp.stderr).toBe(0);
    const st = await fs.stat(path.join(root, 'run/dockd/mnt'));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o750);
    expect(st.uid).toBe(uid);
  });
});

describe('systemd/99-dockd.rules', () => {
  const rules = readFileSync(path.join(SYSTEMD, '99-dockd.rules'), 'utf8');
  const lines = rules.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const ids = (l: string) => `${/ATTRS?\{idVendor\}=="([0-9a-f]{4})"/.exec(l)?.[1]}:${/ATTRS?\{idProduct\}=="([0-9a-f]{4})"/.exec(l)?.[1]}`;

  it('is well-formed udev syntax (KEY op "value", comma separated)', () => {
    const pair = /^\s*[A-Z_]+(\{[A-Za-z_]+\})?\s*(==|!=|=|\+=|-=|:=)\s*"[^"]*"\s*$/;
    for (const l of lines) for (const part of l.split(',')) expect(part, l).toMatch(pair);
  });

  it('covers every built-in recorder id: device node and mode-specific node to group dockd, automounters off', () => {
    const builtIn = [...new Set(BUILTIN_FINGERPRINTS.map((f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`))].sort();
    const usb = lines.filter((l) => l.includes('SUBSYSTEM=="usb"'));
    expect(usb.map(ids).sort()).toEqual(builtIn);
    for (const l of usb) expect(l).toMatch(/GROUP="dockd", MODE="0660"/);
    const serial = BUILTIN_FINGERPRINTS.filter((f) => f.driver === 'bc-serial').map((f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`);
    const storage = BUILTIN_FINGERPRINTS.filter((f) => f.driver === 'mass-storage').map((f) => `${hex4(f.vendorId)}:${hex4(f.productId)}`);
    const tty = lines.filter((l) => l.includes('SUBSYSTEM=="tty"'));
    const block = lines.filter((l) => l.includes('SUBSYSTEM=="block"'));
    expect([...new Set(tty.map(ids))].sort()).toEqual([...new Set(serial)].sort());
    expect([...new Set(block.map(ids))].sort()).toEqual([...new Set(storage)].sort());
    for (const l of block) {
      expect(l).toMatch(/GROUP="dockd"/);
      expect(l).toContain('ENV{UDISKS_IGNORE}="1"');
      expect(l).toContain('ENV{UDISKS_AUTO}="0"');
    }
    for (const l of tty) expect(l).toContain('ENV{ID_MM_DEVICE_IGNORE}="1"');
  });
});
