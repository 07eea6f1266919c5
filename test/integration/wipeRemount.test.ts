/**
 * The wipe gate (dock.wipe: after-archive) on a USB recorder whose storage dockd mounted itself read-only: the real
 * daemon (sysfs poller over a fixture tree, the partition node a link to a loop device holding a real ext4 volume)
 * remounts it read-write just for the wipe, deletes the archived recordings, syncs, and makes it read-only again. On
 * the device afterwards: those recordings are gone, everything else is byte-identical, the filesystem is clean.
 * Needs root (loop devices, mount): without root this test FAILS.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DaemonProcess, tempDir } from '../helpers/daemon.ts';
import { TEST_HQ_PUBLIC_PEM } from '../helpers/hqKeys.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockctlAudit, waitForAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { fileContents } from '../helpers/trees.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const sh = (file: string, args: string[]) =>
  execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } }).trim();
const devicesOf = (root: string) => path.join(root, 'bus/usb/devices');
const ST = 'test-st';
const PORT = '1-1.2';
const BAY = 'B2';

function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new Error(
      `the USB wipe test needs root (loop devices, mount); uid is ${process.getuid?.()}: run it as root, as CI does`,
    );
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'blkid', 'dumpe2fs', 'e2fsck', 'ffmpeg']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: SBIN_PATH } }).status !== 0)
      throw new Error(`the USB wipe test needs ${tool}`);
  }
}

function mountOptionsOf(mountPoint: string): string[] | undefined {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => unescapeMountField(f[1] ?? '') === mountPoint)?.[3]
    ?.split(',');
}
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => unescapeMountField(l.split(' ')[1] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(dir + path.sep));
}

interface Clip {
  rel: string;
  sha256: string;
}

let dir: string | null = null;
let loop: string | null = null;
let daemon: DaemonProcess | null = null;
let broker: Mosquitto | null = null;
let tus: TusTestServer | null = null;

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && daemon)
    console.error(
      daemon.logs
        .slice(-80)
        .map((l) => JSON.stringify(l))
        .join('\n'),
    );
  await daemon?.stop().catch(async () => {
    await daemon?.kill9();
  });
  await tus?.stop().catch(() => {});
  await broker?.stop().catch(() => {});
  if (dir)
    for (const mp of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', mp], { env: { ...process.env, PATH: SBIN_PATH } });
  if (loop) spawnSync('losetup', ['-d', loop], { env: { ...process.env, PATH: SBIN_PATH } });
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  dir = loop = null;
  daemon = null;
  broker = null;
  tus = null;
});

describe('wipe gate on USB storage mounted read-only by dockd (real ext4 loop device)', () => {
  it('remounts read-write just for the wipe, deletes exactly the archived recordings on the device, and is read-only again', async () => {
    requireRoot();
    dir = await tempDir('dockd-wipe-usb-');

    // Three clips with complete sidecars and a note, in an ext4 image on a loop device; HQ will confirm two of them.
    const content = path.join(dir, 'content');
    const media = path.join(content, 'DCIM', '100MEDIA');
    await fs.mkdir(media, { recursive: true });
    const clips: Clip[] = [];
    for (const [i, variant] of [731, 732, 733].entries()) {
      const source = await sampleMedia('video', 1, variant);
      const name = recordingName({
        officerId: '012345',
        serial: '1234567',
        at: `2026112809${String(i * 10).padStart(2, '0')}00`,
        seq: i + 1,
      });
      await fs.copyFile(source, path.join(media, name));
      await fs.writeFile(
        path.join(media, name.replace(/\.mp4$/, '.meta.json')),
        JSON.stringify({ caseNo: `C-WIPE-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
      );
      clips.push({ rel: `DCIM/100MEDIA/${name}`, sha256: await sha256OfFile(source) });
    }
    await fs.writeFile(path.join(content, 'notes.txt'), '值班记录 duty notes\n');
    const original = await fileContents(content);
    const image = path.join(dir, 'recorder.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 32 * 1024 * 1024);
    sh('mkfs.ext4', ['-q', '-F', '-d', content, image]);
    try {
      loop = sh('losetup', ['--find', '--show', image]);
    } catch (e) {
      throw new Error(`losetup failed (no loop devices in this container?): ${(e as Error).message}`);
    }

    const devRoot = path.join(dir, 'dev');
    await fs.mkdir(devRoot);
    await fs.symlink(loop, path.join(devRoot, 'sdb1'));
    const sysfsRoot = path.join(dir, 'sys');
    await fs.cp(path.join(FIXTURES, 'recorder-storage'), sysfsRoot, { recursive: true });
    await fs.rm(path.join(devicesOf(sysfsRoot), PORT), { recursive: true });
    const runtimeMountRoot = path.join(dir, 'run', 'mnt');
    await fs.mkdir(runtimeMountRoot, { recursive: true });

    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    const configFile = path.join(dir, 'dockd.yaml');
    const mountRoot = path.join(dir, 'dock');
    await fs.mkdir(mountRoot);
    await fs.writeFile(
      configFile,
      stringify({
        station: { id: ST, timeZone: 'Asia/Shanghai' },
        storage: { dir: path.join(dir, 'store') },
        dock: {
          mountRoots: [mountRoot],
          settleMs: 100,
          rescanSeconds: 1,
          bays: [{ id: BAY, usbPort: PORT }],
          wipe: 'after-archive',
        },
        devices: [{ serial: '1234567', officerId: '012345', officerName: '张三' }],
        hq: {
          embedded: false,
          tus: { endpoint: tus.endpoint, stallTimeoutSeconds: 10, maxRetryDelaySeconds: 2 },
          mqtt: { url: broker.url, topicPrefix: 'dockd' },
          receiptKey: TEST_HQ_PUBLIC_PEM,
        },
        http: { listen: `127.0.0.1:${await freePort()}` },
        log: { level: 'debug' },
        usb: { enabled: true, hotplug: 'sysfs', sysfsRoot, devRoot, runtimeMountRoot },
      }),
    );
    const alive = () => {
      if (daemon?.proc?.exitCode !== null && daemon?.proc?.exitCode !== undefined)
        throw new Error(`dockd exited ${daemon.proc.exitCode}: ${daemon.stderr}`);
    };

    daemon = new DaemonProcess(configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'watching USB for recorders', 'the USB watcher to start');
    const mountPoint = path.join(await fs.realpath(runtimeMountRoot), BAY);

    // Plugged in: mounted read-only, ingested, uploaded.
    const plugStaging = path.join(sysfsRoot, `.staging-${PORT}`);
    await fs.cp(path.join(devicesOf(path.join(FIXTURES, 'recorder-storage')), PORT), plugStaging, { recursive: true });
    await fs.rename(plugStaging, path.join(devicesOf(sysfsRoot), PORT));
    await waitFor(
      'the recorder volume to be mounted',
      () => {
        alive();
        return mountOptionsOf(mountPoint);
      },
      60_000,
    );
    expect(mountOptionsOf(mountPoint)).toContain('ro');
    await waitFor(
      'all three clips verified by the tus server',
      () => {
        alive();
        return clips.every((c) => tus!.finished.some((u) => u.sha256 === c.sha256));
      },
      120_000,
      200,
    );

    // HQ confirms two: they leave the device, through a read-write remount; the mount is read-only again afterwards.
    const [gone1, gone2, kept] = clips;
    for (const c of [gone1, gone2]) await sendReceipt(broker.url, ST, { sha256: c.sha256, ok: true });
    const deleted = await waitForAudit(configFile, 'recorder.file-deleted', { n: 2, timeoutMs: 120_000 });
    expect(deleted.map((e) => e.subject).sort()).toEqual([gone1.sha256, gone2.sha256].sort());
    for (const e of deleted) expect(e.data).toMatchObject({ method: 'remount', deviceSerial: '1234567' });
    // The two may go in one wipe pass or in two: wait until the passes that deleted them have finished (logged after close).
    await waitFor(
      'the wipe passes to finish',
      () =>
        daemon!.logs
          .filter((l) => /deleted archived recordings from the recorder/.test(String(l.msg)))
          .reduce((n, l) => n + Number(l.deleted), 0) >= 2,
      60_000,
    );
    const options = mountOptionsOf(mountPoint);
    expect(options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(options).not.toContain('rw');
    expect(
      await fs.writeFile(path.join(mountPoint, 'probe.txt'), 'x').then(
        () => null,
        (e: NodeJS.ErrnoException) => e.code,
      ),
    ).toBe('EROFS');
    expect((await dockctlAudit(configFile)).filter((e) => e.type === 'recorder.wipe-failed')).toEqual([]);

    // Unplugged: unmounted. On the device, mounted afresh: exactly those two are gone, the rest byte-identical.
    await fs.rm(path.join(devicesOf(sysfsRoot), PORT), { recursive: true });
    await waitFor(
      'the recorder volume to be unmounted',
      () => {
        alive();
        return mountOptionsOf(mountPoint) === undefined;
      },
      60_000,
    );
    const device = loop!;
    expect(() => sh('e2fsck', ['-n', '-f', device])).not.toThrow();
    const check = path.join(dir, 'check');
    await fs.mkdir(check);
    sh('mount', ['-o', 'ro,noload', '-t', 'ext4', device, check]);
    try {
      const after = await fileContents(check);
      after.delete('lost+found');
      for (const [rel, bytes] of original) {
        if (rel === gone1.rel || rel === gone2.rel) expect(after.has(rel), rel).toBe(false);
        else expect(after.get(rel)?.equals(bytes), `${rel} unchanged`).toBe(true);
      }
      expect(after.has(kept.rel)).toBe(true);
      expect(after.size).toBe(original.size - 2);
    } finally {
      sh('umount', [check]);
    }
  }, 300_000);
});
