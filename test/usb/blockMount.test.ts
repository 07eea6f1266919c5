import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlockMounter, MountError, mountOptions, unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { RemountedVolume, VolumeWriteError } from '../../drivers/volumes/recorderVolume.ts';

/**
 * Real loop devices with ext4 images (this kernel has no vfat): needs root, losetup, mkfs.ext4. CI runs as root; when
 * this cannot run, every test here FAILS with the reason (a skipped mount test would hide a broken mount path).
 */
const REPO = path.resolve(import.meta.dirname, '../..');
const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const sh = (file: string, args: string[]) =>
  execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } }).trim();

let cannot: string | null = null;
beforeAll(() => {
  if (process.getuid?.() !== 0) {
    cannot = `loop-mount tests need root (uid is ${process.getuid?.()}); run them as root, as CI does`;
    return;
  }
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'blkid', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: SBIN_PATH } }).status !== 0) {
      cannot = `loop-mount tests need ${tool} (Debian: util-linux, mount, e2fsprogs)`;
      return;
    }
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('ext4')) cannot = 'loop-mount tests need ext4 in this kernel';
});
function requireLoopSupport(): void {
  if (cannot) throw new Error(`cannot test mounting here: ${cannot}`);
}

const temps: string[] = [];
const loops: string[] = [];
afterEach(async () => {
  const table = await fs.readFile('/proc/self/mounts', 'utf8');
  for (const dir of temps) {
    for (const line of table.split('\n')) {
      const mp = unescapeMountField(line.split(' ')[1] ?? '');
      if (mp.startsWith(dir + path.sep)) spawnSync('umount', ['-l', mp]);
    }
  }
  for (const l of loops.splice(0)) spawnSync('losetup', ['-d', l], { env: { ...process.env, PATH: SBIN_PATH } });
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-mount-'));
  temps.push(d);
  return d;
}

/** An ext4 (or other mkfs) image holding `files`, attached to a loop device. */
async function loopImage(files: Record<string, string> | null, mkfs = 'mkfs.ext4'): Promise<string> {
  requireLoopSupport();
  const dir = await tempDir();
  const image = path.join(dir, 'recorder.img');
  await fs.writeFile(image, '');
  await fs.truncate(image, 16 * 1024 * 1024);
  if (files) {
    const content = path.join(dir, 'content');
    for (const [name, data] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(content, name)), { recursive: true });
      await fs.writeFile(path.join(content, name), data);
    }
    sh(mkfs, ['-q', '-F', '-d', content, image]);
  }
  let loop: string;
  try {
    loop = sh('losetup', ['--find', '--show', image]);
  } catch (e) {
    throw new Error(`cannot test mounting here: losetup failed (no loop devices in this container?): ${(e as Error).message}`);
  }
  loops.push(loop);
  return loop;
}

function mountLine(mountPoint: string): string[] | undefined {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => unescapeMountField(f[1] ?? '') === mountPoint);
}

const FILES = { 'DCIM/012345_1234567_20260301083000_0001.mp4': 'not really a video\n', 'README.txt': '记录仪\n' };

describe('BlockMounter on real loop devices', () => {
  it('mounts an ext4 recorder volume read-only, nosuid, nodev, noexec, and unmounts it', async () => {
    const loop = await loopImage(FILES);
    const runtimeRoot = path.join(await tempDir(), 'mnt');
    const mounter = new BlockMounter({ runtimeRoot });
    expect(await mounter.detectFsType(loop)).toBe('ext4');

    const vol = await mounter.mount(loop, 'bay-1');
    expect(vol).toMatchObject({ device: loop, fsType: 'ext4', mountPoint: path.join(await fs.realpath(runtimeRoot), 'bay-1') });
    expect(await fs.readFile(path.join(vol.mountPoint, 'DCIM/012345_1234567_20260301083000_0001.mp4'), 'utf8')).toBe(
      'not really a video\n',
    );
    expect(await fs.readFile(path.join(vol.mountPoint, 'README.txt'), 'utf8')).toBe('记录仪\n');
    const writeErr = await fs.writeFile(path.join(vol.mountPoint, 'README.txt'), 'x').then(
      () => null,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(writeErr).toBe('EROFS');
    const createErr = await fs.writeFile(path.join(vol.mountPoint, 'new.txt'), 'x').then(
      () => null,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(createErr).toBe('EROFS');
    const line = mountLine(vol.mountPoint);
    expect(line?.[0]).toBe(loop);
    expect(line?.[2]).toBe('ext4');
    expect(line?.[3]?.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(await mounter.isMounted(vol.mountPoint)).toBe(true);

    expect(await mounter.unmount(vol.mountPoint)).toEqual({ wasMounted: true, lazy: false });
    expect(mountLine(vol.mountPoint)).toBeUndefined();
    await expect(fs.stat(vol.mountPoint)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await mounter.unmount(vol.mountPoint)).toEqual({ wasMounted: false, lazy: false }); // twice is harmless
  });

  it('detaches lazily when the volume is busy, and open files stay readable', async () => {
    const loop = await loopImage(FILES);
    const mounter = new BlockMounter({ runtimeRoot: path.join(await tempDir(), 'mnt') });
    const vol = await mounter.mount(loop, '1-1.2');
    const fh = await fs.open(path.join(vol.mountPoint, 'README.txt'), 'r');
    try {
      await expect(fs.readdir(vol.mountPoint)).resolves.toContain('DCIM');
      expect(await mounter.unmount(vol.mountPoint)).toEqual({ wasMounted: true, lazy: true });
      expect(mountLine(vol.mountPoint)).toBeUndefined();
      expect(await fh.readFile('utf8')).toBe('记录仪\n');
    } finally {
      await fh.close();
    }
  });

  it('refuses what is not a recorder volume, with a code', async () => {
    const mounter = new BlockMounter({ runtimeRoot: path.join(await tempDir(), 'mnt') });
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'mounted',
        (e: unknown) => {
          expect(e).toBeInstanceOf(MountError);
          return (e as MountError).code;
        },
      );
    expect(await codeOf(mounter.mount(await loopImage(null), 'bay-2'))).toBe('FS_UNKNOWN');
    const ext2 = await loopImage({ 'a.txt': 'a' }, 'mkfs.ext2');
    expect(await mounter.detectFsType(ext2)).toBe('ext2');
    expect(await codeOf(mounter.mount(ext2, 'bay-2'))).toBe('FS_UNSUPPORTED');
    expect(await codeOf(mounter.mount('/dev/dockd-no-such-device', 'bay-2'))).toBe('DEVICE_GONE');
    for (const bad of ['..', '../etc', 'a/b', '', '.hidden']) expect(await codeOf(mounter.mount(ext2, bad))).toBe('BAD_NAME');
    const loop = await loopImage(FILES);
    await mounter.mount(loop, 'bay-3');
    expect(await codeOf(mounter.mount(loop, 'bay-3'))).toBe('ALREADY_MOUNTED');
  });

  // On a station dockd holds no capability and the mount helper mounts (test/usb/mountHelper.test.ts); without a helper
  // (usb.mountHelper empty) dockd mounts itself, as its own user with CAP_SYS_ADMIN and CAP_SETUID.
  it('works as an unprivileged user holding only CAP_SYS_ADMIN and CAP_SETUID (NoNewPrivileges), when dockd mounts itself', async () => {
    const loop = await loopImage(FILES);
    const caps = ['sys_admin', 'setuid'];
    const bounding = caps;
    const dir = await tempDir();
    await fs.chmod(dir, 0o755);
    const runtimeRoot = path.join(dir, 'mnt');
    await fs.mkdir(runtimeRoot, { mode: 0o750 });
    await fs.chown(runtimeRoot, 65534, 65534);
    const home = path.join(dir, 'home'); // the user's HOME and TMPDIR
    await fs.mkdir(home);
    await fs.chown(home, 65534, 65534);
    // The user may not be able to read this checkout (CI may clone under /root): hand it plain JS in the temp dir.
    const toJs = (rel: string) =>
      ts
        .transpileModule(readFileSync(path.join(REPO, rel), 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        })
        .outputText.replace("'../errors.ts'", "'./errors.mjs'");
    await fs.writeFile(path.join(dir, 'errors.mjs'), toJs('drivers/errors.ts'));
    await fs.writeFile(path.join(dir, 'blockMount.mjs'), toJs('drivers/mounts/blockMount.ts'));
    const script = path.join(dir, 'mount-as-user.mjs');
    await fs.writeFile(
      script,
      `
      import { readFileSync } from 'node:fs';
      import { BlockMounter } from './blockMount.mjs';
      const m = new BlockMounter({ runtimeRoot: ${JSON.stringify(runtimeRoot)} });
      const vol = await m.mount(${JSON.stringify(loop)}, 'bay-1');
      const content = readFileSync(vol.mountPoint + '/README.txt', 'utf8');
      const optionsNow = () => readFileSync('/proc/self/mounts', 'utf8').split('\\n').find((l) => l.split(' ')[1] === vol.mountPoint).split(' ')[3].split(',');
      await m.remount(vol.mountPoint, 'rw');
      const whileWiping = optionsNow();
      await m.remount(vol.mountPoint, 'ro');
      const afterWipe = optionsNow();
      const line = readFileSync('/proc/self/mounts', 'utf8').split('\\n').find((l) => l.split(' ')[1] === vol.mountPoint);
      const unmounted = await m.unmount(vol.mountPoint);
      console.log(JSON.stringify({ uid: process.getuid(), content, line, unmounted, whileWiping, afterWipe }));
    `,
    );
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--nnp',
        `--inh-caps=${caps.map((c) => `+${c}`).join(',')}`,
        `--ambient-caps=${caps.map((c) => `+${c}`).join(',')}`,
        `--bounding-set=-all,${bounding.map((c) => `+${c}`).join(',')}`,
        process.execPath,
        script,
      ],
      { encoding: 'utf8', cwd: dir, env: { PATH: SBIN_PATH, HOME: home, TMPDIR: home } },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.uid).toBe(65534);
    expect(out.content).toBe('记录仪\n');
    expect(out.line.split(' ')[3].split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(out.unmounted).toEqual({ wasMounted: true, lazy: false });
    // The wipe's remount works with the same capabilities (dumpe2fs reads the ext4 superblock first).
    expect(out.whileWiping).toContain('rw');
    expect(out.afterWipe).toContain('ro');
    expect(out.afterWipe).not.toContain('rw');
  });
});

describe('a read-write remount just for the wipe', () => {
  const CLIP = 'DCIM/012345_1234567_20260301083000_0001.mp4';
  const KEEP = 'DCIM/012345_1234567_20260301090000_0002.mp4';
  const files = { [CLIP]: 'archived at HQ\n', [KEEP]: 'not archived yet\n', 'README.txt': '记录仪\n' };
  const entry = (mountPoint: string, rel: string) => ({ relPath: rel, absPath: path.join(mountPoint, rel) });

  it('deletes on the device itself, then the volume is read-only again', async () => {
    const loop = await loopImage(files);
    const mounter = new BlockMounter({ runtimeRoot: path.join(await tempDir(), 'mnt') });
    const vol = await mounter.mount(loop, 'bay-1');
    const wipe = new RemountedVolume(vol.mountPoint, mounter);
    await wipe.close(); // nothing removed: nothing remounted
    expect(mountLine(vol.mountPoint)?.[3]?.split(',')).toContain('ro');

    await wipe.remove(entry(vol.mountPoint, CLIP));
    expect(mountLine(vol.mountPoint)?.[3]?.split(',')).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev', 'noexec']));
    await wipe.close();
    const options = mountLine(vol.mountPoint)?.[3]?.split(',');
    expect(options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(options).not.toContain('rw');
    expect(
      await fs.writeFile(path.join(vol.mountPoint, 'new.txt'), 'x').then(
        () => null,
        (e: NodeJS.ErrnoException) => e.code,
      ),
    ).toBe('EROFS');

    // On the device: the filesystem is clean (e2fsck exits 0), and mounted afresh the deleted file is gone and the
    // rest is byte-identical.
    await mounter.unmount(vol.mountPoint);
    expect(() => sh('e2fsck', ['-n', '-f', loop])).not.toThrow();
    const again = await mounter.mount(loop, 'bay-1');
    await expect(fs.stat(path.join(again.mountPoint, CLIP))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readFile(path.join(again.mountPoint, KEEP), 'utf8')).toBe('not archived yet\n');
    expect(await fs.readFile(path.join(again.mountPoint, 'README.txt'), 'utf8')).toBe('记录仪\n');
  });

  it('never makes writable an ext4 whose journal needs recovery, nor anything not mounted by it', async () => {
    const loop = await loopImage(files);
    sh('debugfs', ['-w', '-R', 'feature needs_recovery', loop]);
    const mounter = new BlockMounter({ runtimeRoot: path.join(await tempDir(), 'mnt') });
    const vol = await mounter.mount(loop, 'bay-2');
    const wipe = new RemountedVolume(vol.mountPoint, mounter);
    const e = await wipe.remove(entry(vol.mountPoint, CLIP)).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(VolumeWriteError);
    expect((e as VolumeWriteError).code).toBe('NO_ACCESS');
    expect(((e as VolumeWriteError).cause as MountError).code).toBe('REMOUNT_REFUSED');
    await wipe.close();
    expect(mountLine(vol.mountPoint)?.[3]?.split(',')).toContain('ro');
    expect(await fs.readFile(path.join(vol.mountPoint, CLIP), 'utf8')).toBe('archived at HQ\n');

    for (const elsewhere of ['/', path.dirname(vol.mountPoint), path.join(vol.mountPoint, 'DCIM')]) {
      const err = await mounter.remount(elsewhere, 'rw').then(
        () => null,
        (x: unknown) => x,
      );
      expect((err as MountError).code, elsewhere).toBe('NOT_MOUNTED');
    }
  });

  it('refuses a path that leaves the volume, with the volume read-only again afterwards', async () => {
    const loop = await loopImage(files);
    const mounter = new BlockMounter({ runtimeRoot: path.join(await tempDir(), 'mnt') });
    const vol = await mounter.mount(loop, 'bay-3');
    const wipe = new RemountedVolume(vol.mountPoint, mounter);
    const outside = path.join(await tempDir(), 'outside.mp4');
    await fs.writeFile(outside, 'x');
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'deleted',
        (x: unknown) => (x as VolumeWriteError).code,
      );
    expect(
      await codeOf(wipe.remove({ relPath: '../outside.mp4', absPath: path.join(vol.mountPoint, '..', path.basename(outside)) })),
    ).toBe('OUTSIDE_VOLUME');
    expect(await codeOf(wipe.remove({ relPath: 'DCIM', absPath: path.join(vol.mountPoint, 'DCIM') }))).toBe('NOT_A_FILE');
    await wipe.close();
    expect(mountLine(vol.mountPoint)?.[3]?.split(',')).toContain('ro');
    expect(await fs.readFile(outside, 'utf8')).toBe('x');
  });
});

describe('mount options', () => {
  it('are read-only and inert for every supported filesystem; FAT volumes are readable by dockd with UTF-8 names', () => {
    for (const fsType of ['vfat', 'exfat', 'ext4'] as const) {
      expect(mountOptions(fsType, { uid: 990, gid: 990 }).slice(0, 4)).toEqual(['ro', 'nosuid', 'nodev', 'noexec']);
    }
    expect(mountOptions('ext4', { uid: 990, gid: 990 })).toContain('noload');
    expect(mountOptions('vfat', { uid: 990, gid: 991 })).toEqual(expect.arrayContaining(['uid=990', 'gid=991', 'utf8']));
    expect(mountOptions('exfat', { uid: 990, gid: 991 })).toEqual(
      expect.arrayContaining(['uid=990', 'gid=991', 'iocharset=utf8']),
    );
    expect(unescapeMountField('/run/dockd/mnt/bay\\0401')).toBe('/run/dockd/mnt/bay 1');
  });
});
