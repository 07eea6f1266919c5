import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { majorOf, minorOf } from '../../drivers/mounts/usbStorageDevice.ts';
import { PACKAGE_ROOT } from '../../daemon/config.ts';

/**
 * A station's USB storage world for the mount helper, on real loop devices: a shared tmpfs standing in for systemd's
 * /run (so mounts propagate into a slave mount namespace, as into dockd.service's), the runtime mount root in it
 * (root's, group nobody, 0750), a sysfs tree (fixtures/sysfs/recorder-storage) whose sdb1 carries the loop device's
 * major:minor, `<dev>/sdb1` a link to the loop device, and bin/dockd-mount.js as root on a socket. Needs root.
 */

export const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
export const NOBODY = 65534;
export const PORT = '1-1.2';
export const SDB1 = `bus/usb/devices/${PORT}/${PORT}:1.0/host6/target6:0:0/6:0:0:0/block/sdb/sdb1`;
const FIXTURES = path.join(PACKAGE_ROOT, 'fixtures/sysfs');

export const sh = (file: string, args: string[]) =>
  execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } }).trim();

/** Root and the tools the mount helper's tests use (or `tools`, for a test that needs others). */
export function requireMountTools(
  what: string,
  tools = ['losetup', 'mkfs.ext4', 'mount', 'umount', 'blkid', 'dumpe2fs', 'e2fsck', 'unshare', 'setpriv'],
): void {
  if (process.getuid?.() !== 0)
    throw new Error(
      `${what} needs root (loop devices, mount, unshare); uid is ${process.getuid?.()}: run it as root, as CI does`,
    );
  for (const tool of tools) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: SBIN_PATH } }).status !== 0)
      throw new Error(`${what} needs ${tool}`);
  }
}

export const mountsUnder = (dir: string, mountsFile = '/proc/self/mounts') =>
  readFileSync(mountsFile, 'utf8')
    .split('\n')
    .map((l) => unescapeMountField(l.split(' ')[1] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(dir + path.sep));

export const mountOptionsOf = (mountPoint: string, mountsFile = '/proc/self/mounts') =>
  readFileSync(mountsFile, 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => unescapeMountField(f[1] ?? '') === mountPoint)?.[3]
    ?.split(',');

export const rdevOf = async (device: string) => {
  const { rdev } = await fs.stat(device);
  return `${majorOf(rdev)}:${minorOf(rdev)}`;
};

/** An ext4 image of `content` (a directory), files owned by nobody (so an unprivileged dockd may wipe), on a loop device. */
export async function loopDeviceOf(content: string, image: string, sizeMiB = 16): Promise<string> {
  sh('chown', ['-R', `${NOBODY}:${NOBODY}`, content]);
  await fs.writeFile(image, '');
  await fs.truncate(image, sizeMiB * 1024 * 1024);
  sh('mkfs.ext4', ['-q', '-F', '-d', content, image]);
  return sh('losetup', ['--find', '--show', image]);
}

export interface HelperWorld {
  runtimeRoot: string;
  sysfsRoot: string;
  devRoot: string;
  socket: string;
  helper: ChildProcess;
  helperLog: string[];
  /** The recorder's storage appears in sysfs (when the world was made unplugged). */
  plug(): Promise<void>;
  unplug(): Promise<void>;
}

export async function helperWorld(
  dir: string,
  loop: string,
  opts: { rootMode?: number; plugged?: boolean } = {},
): Promise<HelperWorld> {
  const run = path.join(dir, 'run');
  await fs.mkdir(run);
  sh('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'dockd-test-run', run]);
  sh('mount', ['--make-shared', run]);
  const runtimeRoot = path.join(run, 'mnt');
  await fs.mkdir(runtimeRoot);
  await fs.chown(runtimeRoot, 0, NOBODY);
  await fs.chmod(runtimeRoot, opts.rootMode ?? 0o750);
  const sysfsRoot = path.join(dir, 'sys');
  await fs.cp(path.join(FIXTURES, 'recorder-storage'), sysfsRoot, { recursive: true });
  await fs.writeFile(path.join(sysfsRoot, SDB1, 'dev'), `${await rdevOf(loop)}\n`);
  const portDir = path.join(sysfsRoot, 'bus/usb/devices', PORT);
  const unplugged = path.join(dir, `unplugged-${PORT}`);
  await fs.cp(portDir, unplugged, { recursive: true });
  if (opts.plugged === false) await fs.rm(portDir, { recursive: true });
  const devRoot = path.join(dir, 'dev');
  await fs.mkdir(devRoot);
  await fs.symlink(loop, path.join(devRoot, 'sdb1'));
  const socket = path.join(dir, 'dockd-mount.sock');
  const helper = spawn(
    process.execPath,
    [
      path.join(PACKAGE_ROOT, 'bin/dockd-mount.js'),
      '--socket',
      socket,
      '--runtime-root',
      runtimeRoot,
      '--sysfs-root',
      sysfsRoot,
      '--dev-root',
      devRoot,
      '--owner',
      `${NOBODY}:${NOBODY}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const helperLog: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const onLine = (l: string) => {
      helperLog.push(l);
      if (l.includes('mount helper listening')) resolve();
    };
    createInterface({ input: helper.stdout! }).on('line', onLine);
    createInterface({ input: helper.stderr! }).on('line', onLine);
    helper.once('exit', (code) =>
      setTimeout(() => reject(new Error(`dockd-mount exited ${code}: ${helperLog.join('\n')}`)), 100),
    );
  });
  return {
    runtimeRoot,
    sysfsRoot,
    devRoot,
    socket,
    helper,
    helperLog,
    plug: async () => {
      const staging = path.join(sysfsRoot, `.staging-${PORT}`);
      await fs.cp(unplugged, staging, { recursive: true });
      await fs.rename(staging, portDir);
    },
    unplug: () => fs.rm(portDir, { recursive: true }),
  };
}

/** Unmounts everything under dir (the world's tmpfs last), detaches the loop devices, kills the helper. */
export async function tearDownHelperWorld(dir: string | null, loops: string[], helper?: ChildProcess): Promise<void> {
  if (helper && helper.exitCode === null) helper.kill('SIGKILL');
  if (dir)
    for (const mp of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', mp], { env: { ...process.env, PATH: SBIN_PATH } });
  for (const l of loops.splice(0)) spawnSync('losetup', ['-d', l], { env: { ...process.env, PATH: SBIN_PATH } });
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}

/** Runs a command as nobody with every capability set empty, in a mount namespace that receives mounts as a slave. */
export const UNPRIVILEGED_SLAVE_NS = [
  'unshare',
  '--mount',
  '--propagation',
  'slave',
  'setpriv',
  `--reuid=${NOBODY}`,
  `--regid=${NOBODY}`,
  '--clear-groups',
  '--inh-caps=-all',
  '--bounding-set=-all',
  '--no-new-privs',
];
