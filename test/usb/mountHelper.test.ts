/**
 * The mount helper (bin/dockd-mount.js) as root on real ext4 loop devices, asked through its socket by the client
 * dockd uses. A process standing in for dockd runs as `nobody` with no capability in a mount namespace of its own that
 * receives mounts from the helper's by propagation, as dockd.service's does from the host under systemd: it sees each
 * volume read-only, can delete on it only while the helper has remounted it for the wipe, and sees it go.
 * Needs root (loop devices, mount, unshare): without root every test here FAILS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { MountError, unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { MountHelperClient } from '../../drivers/mounts/mountHelperClient.ts';
import { checkConfigPaths } from '../../daemon/configPaths.ts';
import { ConfigError, validateConfig } from '../../daemon/config.ts';
import {
  NOBODY,
  PORT,
  SBIN_PATH,
  SDB1,
  UNPRIVILEGED_SLAVE_NS,
  helperWorld,
  loopDeviceOf,
  mountsUnder,
  rdevOf,
  requireMountTools,
  sh,
  tearDownHelperWorld,
} from '../helpers/mountHelperWorld.ts';

const requireRoot = () => requireMountTools('the mount helper tests');

let dir: string | null = null;
const loops: string[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await tearDownHelperWorld(dir, loops);
  dir = null;
});

async function loopDevice(files: Record<string, string>): Promise<string> {
  const content = await fs.mkdtemp(path.join(dir!, 'content-'));
  for (const [rel, data] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(content, rel)), { recursive: true });
    await fs.writeFile(path.join(content, rel), data);
  }
  const loop = await loopDeviceOf(content, `${content}.img`);
  loops.push(loop);
  return loop;
}

async function world(loop: string, opts: { rootMode?: number } = {}) {
  const w = await helperWorld(dir!, loop, opts);
  children.push(w.helper);
  return w;
}

/**
 * A process standing in for dockd: node as nobody, no capabilities, in a mount namespace whose mounts are slaves of
 * the helper's. It answers one JSON line per command line: read, write (create a file), rm, caps.
 */
async function standIn(): Promise<{ ask: (cmd: object) => Promise<Record<string, unknown>>; pid: number }> {
  const script = path.join(dir!, 'stand-in.mjs');
  await fs.writeFile(
    script,
    `
    import fs from 'node:fs';
    import { createInterface } from 'node:readline';
    createInterface({ input: process.stdin }).on('line', (line) => {
      const c = JSON.parse(line);
      const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
      try {
        if (c.op === 'read') out({ ok: true, data: fs.readFileSync(c.path, 'utf8') });
        else if (c.op === 'write') { fs.writeFileSync(c.path, 'x'); out({ ok: true }); }
        else if (c.op === 'rm') { fs.unlinkSync(c.path); out({ ok: true }); }
        else if (c.op === 'exists') out({ ok: true, exists: fs.existsSync(c.path) });
        else if (c.op === 'status') out({ ok: true, status: fs.readFileSync('/proc/self/status', 'utf8') });
      } catch (e) { out({ ok: false, code: e.code ?? e.message }); }
    });
  `,
  );
  await fs.chmod(dir!, 0o755);
  const [file, ...args] = [...UNPRIVILEGED_SLAVE_NS, process.execPath, script];
  const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: SBIN_PATH } });
  children.push(child);
  const answers: ((o: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => answers.shift()?.(JSON.parse(l)));
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const ask = (cmd: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (child.exitCode !== null) {
        reject(new Error(`the stand-in exited ${child.exitCode}: ${stderr}`));
        return;
      }
      answers.push(resolve);
      child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  return { ask, pid: child.pid! };
}

const CLIP = 'DCIM/100MEDIA/012345_1234567_20261128090000_0001.mp4';
const KEEP = 'DCIM/100MEDIA/012345_1234567_20261128091000_0002.mp4';

describe('the mount helper on real loop devices', () => {
  it('mounts read-only for an unprivileged process in another mount namespace, writable only for the wipe, and unmounts', async () => {
    requireRoot();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-mount-helper-'));
    const loop = await loopDevice({ [CLIP]: 'archived at HQ\n', [KEEP]: 'not yet\n' });
    const w = await world(loop);
    const dockd = await standIn();
    const client = new MountHelperClient({ socketPath: w.socket, runtimeRoot: w.runtimeRoot });

    // The stand-in holds nothing: uid nobody, every capability set empty.
    const status = String((await dockd.ask({ op: 'status' })).status);
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(NOBODY));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
      expect(new RegExp(`^${set}:\\s+0+$`, 'm').test(status), set).toBe(true);

    await client.ping();
    const vol = await client.mount(path.join(w.devRoot, 'sdb1'), 'B2', { usbPort: PORT });
    expect(vol).toMatchObject({ mountPoint: path.join(w.runtimeRoot, 'B2'), fsType: 'ext4' });
    const clip = path.join(vol.mountPoint, CLIP);
    expect(await dockd.ask({ op: 'read', path: clip })).toEqual({ ok: true, data: 'archived at HQ\n' });
    expect(await dockd.ask({ op: 'rm', path: clip })).toEqual({ ok: false, code: 'EROFS' });
    expect(await dockd.ask({ op: 'write', path: path.join(vol.mountPoint, 'new.txt') })).toEqual({ ok: false, code: 'EROFS' });
    const line = readFileSync(`/proc/${dockd.pid}/mounts`, 'utf8')
      .split('\n')
      .find((l) => unescapeMountField(l.split(' ')[1] ?? '') === vol.mountPoint);
    expect(line?.split(' ')[3]?.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));

    // The wipe: writable while the helper has it remounted, read-only again after.
    await client.remount(vol.mountPoint, 'rw');
    expect(await dockd.ask({ op: 'rm', path: clip })).toEqual({ ok: true });
    await client.remount(vol.mountPoint, 'ro');
    expect(await dockd.ask({ op: 'write', path: path.join(vol.mountPoint, 'new.txt') })).toEqual({ ok: false, code: 'EROFS' });
    expect(await dockd.ask({ op: 'read', path: path.join(vol.mountPoint, KEEP) })).toEqual({ ok: true, data: 'not yet\n' });

    expect(await client.unmount(vol.mountPoint)).toEqual({ wasMounted: true, lazy: false });
    expect(await dockd.ask({ op: 'exists', path: path.join(vol.mountPoint, KEEP) })).toEqual({ ok: true, exists: false });
    expect(mountsUnder(w.runtimeRoot)).toEqual([]);
    expect(readFileSync(`/proc/${dockd.pid}/mounts`, 'utf8')).not.toContain(vol.mountPoint);
    expect(() => sh('e2fsck', ['-n', '-f', loop])).not.toThrow();
    expect(w.helperLog.some((l) => l.includes('remounted read-write for the wipe'))).toBe(true);
  });

  it('refuses what dockd must not ask for, with a code, and mounts nothing', async () => {
    requireRoot();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-mount-helper-'));
    const loop = await loopDevice({ [CLIP]: 'x\n' });
    const w = await world(loop);
    const client = new MountHelperClient({ socketPath: w.socket, runtimeRoot: w.runtimeRoot });
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'done',
        (e: unknown) => {
          expect(e).toBeInstanceOf(MountError);
          return (e as MountError).code;
        },
      );
    const sdb1 = path.join(w.devRoot, 'sdb1');

    // A device sysfs does not name as that port's USB storage: another loop device, the node of another device
    // under sdb1's name, a port whose interface is not mass storage, a port that is not there.
    const other = await loopDevice({ 'a.txt': 'a' });
    await fs.symlink(other, path.join(w.devRoot, 'sdc1'));
    expect(await codeOf(client.mount(path.join(w.devRoot, 'sdc1'), 'B2', { usbPort: PORT }))).toBe('NOT_USB_STORAGE');
    await fs.writeFile(path.join(w.sysfsRoot, SDB1, 'dev'), `${await rdevOf(other)}\n`);
    expect(await codeOf(client.mount(sdb1, 'B2', { usbPort: PORT }))).toBe('NOT_USB_STORAGE');
    await fs.writeFile(path.join(w.sysfsRoot, SDB1, 'dev'), `${await rdevOf(loop)}\n`);
    await fs.writeFile(path.join(w.sysfsRoot, `bus/usb/devices/${PORT}/${PORT}:1.0/bInterfaceClass`), '02\n');
    expect(await codeOf(client.mount(sdb1, 'B2', { usbPort: PORT }))).toBe('NOT_USB_STORAGE');
    await fs.writeFile(path.join(w.sysfsRoot, `bus/usb/devices/${PORT}/${PORT}:1.0/bInterfaceClass`), '08\n');
    expect(await codeOf(client.mount(sdb1, 'B2', { usbPort: '1-1.3' }))).toBe('NOT_USB_STORAGE');

    // Paths and names with tricks, devices outside the device root, a malformed request of any kind.
    for (const name of ['..', '../etc', 'a/b', '.staging', '', 'x'.repeat(65)])
      expect(await codeOf(client.mount(sdb1, name, { usbPort: PORT })), name).toBe('BAD_REQUEST');
    for (const device of ['/etc/passwd', `${w.devRoot}/../dev/sdb1`, `${w.devRoot}/sub/sdb1`, 'sdb1']) {
      expect(await codeOf(client.mount(device, 'B2', { usbPort: PORT })), device).toBe('BAD_REQUEST');
    }
    expect(await codeOf(client.mount(sdb1, 'B2', { usbPort: 'usb1' }))).toBe('BAD_REQUEST');
    const raw = async (text: string) =>
      new Promise<string>((resolve) => {
        const s = net.createConnection({ path: w.socket }, () => s.end(text));
        let out = '';
        s.on('data', (d) => {
          out += d;
        }).on('close', () => resolve(out));
      });
    for (const bad of [
      'not json\n',
      '[]\n',
      '{"op":"format"}\n',
      '{"op":"unmount","name":"B2","path":"/"}\n',
      '{"op":"remount","name":"B2","mode":"exec"}\n',
      '{"op":"unmount","name":7}\n',
      `${'{'.repeat(5000)}\n`,
    ]) {
      expect(JSON.parse(await raw(bad)), bad.slice(0, 40)).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    }
    expect(await codeOf(client.remount(path.join(w.runtimeRoot, 'B2'), 'rw'))).toBe('NOT_MOUNTED');
    expect(await codeOf(client.remount('/', 'rw'))).toBe('NOT_MOUNTED'); // the client never even asks
    expect(mountsUnder(w.runtimeRoot)).toEqual([]);

    // And the same device, asked for properly, mounts.
    const vol = await client.mount(sdb1, 'B2', { usbPort: PORT });
    expect(mountsUnder(w.runtimeRoot)).toEqual([vol.mountPoint]);
  });

  it('refuses to start on a runtime root that someone other than root could write, and says so', async () => {
    requireRoot();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-mount-helper-'));
    const loop = await loopDevice({ 'a.txt': 'a' });
    const e = await world(loop, { rootMode: 0o770 }).then(
      () => null,
      (err: Error) => err,
    );
    expect(e?.message).toMatch(
      /dockd-mount exited 2: dockd-mount: runtime mount root .*\/mnt must be a directory of root's that nobody else can write \(it is 770, uid 0\)/,
    );
    const client = new MountHelperClient({
      socketPath: path.join(dir, 'nobody-listens.sock'),
      runtimeRoot: path.join(dir, 'run/mnt'),
    });
    const unreachable = await client.ping().then(
      () => null,
      (err: MountError) => err,
    );
    expect(unreachable?.code).toBe('HELPER_UNAVAILABLE');
    expect(unreachable?.message).toContain('dockd-mount.socket');
  });
});

describe('usb.mountHelper in the config', () => {
  it("is resolved against the config file, and then the runtime mount root must be there already (the helper's, not made by dockd)", async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-mount-helper-config-'));
    await fs.mkdir(path.join(dir, 'sys'));
    await fs.mkdir(path.join(dir, 'dev'));
    const doc = (usb: Record<string, unknown>) => ({
      station: { id: 'dock-07' },
      storage: { dir: 'store' },
      dock: { mountRoots: ['dock'] },
      hq: { tus: { endpoint: 'https://hq.example.org/files/' }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
      usb: { enabled: true, sysfsRoot: path.join(dir!, 'sys'), devRoot: path.join(dir!, 'dev'), ...usb },
    });
    expect(validateConfig(doc({}), dir).usb.mountHelper).toBe('');
    const config = validateConfig(doc({ mountHelper: 'run/dockd-mount.sock', runtimeMountRoot: 'run/mnt' }), dir);
    expect(config.usb.mountHelper).toBe(path.join(dir, 'run/dockd-mount.sock'));
    const refused = await checkConfigPaths(config).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toBe(`config: usb.runtimeMountRoot: ${path.join(dir, 'run/mnt')} does not exist`);
    await fs.mkdir(path.join(dir, 'run/mnt'), { recursive: true });
    await checkConfigPaths(config);
    await expect(fs.readdir(path.join(dir, 'run/mnt'))).resolves.toEqual([]); // no write probe left behind in the helper's root
  });
});
