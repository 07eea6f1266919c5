import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DaemonProcess, runDockctl, tempDir } from '../helpers/daemon.ts';
import { Mosquitto, recordTopics } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';

/**
 * The real daemon with usb.enabled and the sysfs poller over a temp copy of a fixture sysfs tree: a recorder in mass
 * storage mode "plugged in" (its device directory renamed into the tree) whose partition node (<devRoot>/sdb1) is a
 * symlink to a loop device holding a real ext4 recorder volume. dockd must mount it read-only under
 * usb.runtimeMountRoot, ingest and upload its recordings, show it in its bay, and on "unplug" undock and unmount it.
 * An unrelated USB stick is ignored. Needs root (loop devices, mount): without root every test here FAILS.
 */
const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const sh = (file: string, args: string[]) =>
  execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } }).trim();
const devicesOf = (root: string) => path.join(root, 'bus/usb/devices');
const P = 'dockd/test-st';
const PORT = '1-1.2';
const BAY = 'B2';

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the USB docking integration test needs root (loop devices, mount); uid is ${process.getuid?.()}: run it as root, as CI does`,
    );
  }
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'blkid', 'ffmpeg']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: SBIN_PATH } }).status !== 0) {
      throw new Error(`the USB docking integration test needs ${tool}`);
    }
  }
}

function mountLine(mountPoint: string): string[] | undefined {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => unescapeMountField(f[1] ?? '') === mountPoint);
}
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => unescapeMountField(l.split(' ')[1] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(dir + path.sep));
}

/** Plugs a device in: its directory is built beside the tree and renamed in, so it appears at once (as in sysfs). */
async function plug(root: string, fromTree: string, portPath: string): Promise<void> {
  const staging = path.join(root, `.staging-${portPath}`);
  await fs.cp(path.join(devicesOf(path.join(FIXTURES, fromTree)), portPath), staging, { recursive: true });
  await fs.rename(staging, path.join(devicesOf(root), portPath));
}

interface Clip {
  name: string;
  sha256: string;
  size: number;
}

let dir: string | null = null;
let loop: string | null = null;
let daemon: DaemonProcess | null = null;
let broker: Mosquitto | null = null;
let tus: TusTestServer | null = null;
let sub: Awaited<ReturnType<typeof recordTopics>> | null = null;

afterEach(async () => {
  await daemon?.stop().catch(async () => {
    await daemon?.kill9();
  });
  await sub?.close().catch(() => {});
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
  sub = null;
});

describe('USB docking through the real daemon (sysfs poller, loop-backed ext4 recorder)', () => {
  it('mounts a mass-storage recorder read-only, ingests and uploads it, shows its bay, undocks and unmounts on unplug, ignores a stick', async () => {
    requireRoot();
    dir = await tempDir('dockd-usbdock-');

    // The recorder's volume: two GA/T 947 named clips with complete sidecars, in an ext4 image on a loop device.
    const content = path.join(dir, 'content');
    await fs.mkdir(path.join(content, 'DCIM', '100MEDIA'), { recursive: true });
    const clips: Clip[] = [];
    for (const [i, variant] of [701, 702].entries()) {
      const source = await sampleMedia('video', 2, variant);
      const name = recordingName({
        officerId: '012345',
        serial: '1234567',
        at: `2026112808${String(i * 10).padStart(2, '0')}00`,
        seq: i + 1,
      });
      await fs.copyFile(source, path.join(content, 'DCIM', '100MEDIA', name));
      await fs.writeFile(
        path.join(content, 'DCIM', '100MEDIA', name.replace(/\.mp4$/, '.meta.json')),
        JSON.stringify({ caseNo: `C-USB-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
      );
      clips.push({ name, sha256: await sha256OfFile(source), size: (await fs.stat(source)).size });
    }
    expect(new Set(clips.map((c) => c.sha256)).size).toBe(2);
    const image = path.join(dir, 'recorder.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 32 * 1024 * 1024);
    sh('mkfs.ext4', ['-q', '-F', '-d', content, image]);
    try {
      loop = sh('losetup', ['--find', '--show', image]);
    } catch (e) {
      throw new Error(`losetup failed (no loop devices in this container?): ${(e as Error).message}`);
    }

    // Device nodes: the fixture's partition name links to the loop device.
    const devRoot = path.join(dir, 'dev');
    await fs.mkdir(devRoot);
    await fs.symlink(loop, path.join(devRoot, 'sdb1'));

    // A sysfs tree with the hub but without the recorder.
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
        station: { id: 'test-st', timeZone: 'Asia/Shanghai' },
        storage: { dir: path.join(dir, 'store') },
        dock: { mountRoots: [mountRoot], settleMs: 100, rescanSeconds: 1, bays: [{ id: BAY, usbPort: PORT }] },
        devices: [{ serial: '1234567', officerId: '012345', officerName: '张三' }],
        hq: {
          embedded: false,
          tus: { endpoint: tus.endpoint, stallTimeoutSeconds: 10, maxRetryDelaySeconds: 2 },
          mqtt: { url: broker.url, topicPrefix: 'dockd' },
        },
        http: { listen: `127.0.0.1:${await freePort()}` },
        log: { level: 'debug' },
        usb: { enabled: true, hotplug: 'sysfs', sysfsRoot, devRoot, runtimeMountRoot },
      }),
    );
    sub = await recordTopics(broker.url, `${P}/#`);
    const events = (type: string) =>
      sub!.messages
        .filter((m) => m.topic === `${P}/event`)
        .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
        .filter((e) => e.type === type);
    const alive = () => {
      if (daemon?.proc?.exitCode !== null && daemon?.proc?.exitCode !== undefined)
        throw new Error(`dockd exited ${daemon.proc.exitCode}: ${daemon.stderr}`);
    };

    daemon = new DaemonProcess(configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'watching USB for recorders', 'the USB watcher to start');
    const mountPoint = path.join(await fs.realpath(runtimeMountRoot), BAY);
    expect(mountLine(mountPoint)).toBeUndefined();

    // Plug the recorder in (mass-storage mode, port 1-1.2).
    await plug(sysfsRoot, 'recorder-storage', PORT);
    const line = await waitFor(
      'the recorder volume to be mounted',
      () => {
        alive();
        return mountLine(mountPoint);
      },
      60_000,
    );
    expect(line[0]).toBe(loop);
    expect(line[2]).toBe('ext4');
    expect(line[3]!.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(await fs.readdir(path.join(mountPoint, 'DCIM', '100MEDIA'))).toEqual(expect.arrayContaining(clips.map((c) => c.name)));

    // Ingested and uploaded: the tus server re-hashed each upload and the hashes are the clips'.
    await waitFor(
      'both clips verified by the tus server',
      () => {
        alive();
        return clips.every((c) => tus!.finished.some((u) => u.sha256 === c.sha256));
      },
      120_000,
      200,
    );
    for (const c of clips) expect(tus.finished.find((u) => u.sha256 === c.sha256)?.size).toBe(c.size);
    expect(tus.refused).toEqual([]);

    // Status: the recorder, in its bay.
    const status = await waitFor(
      'dockctl status to show the recorder in its bay',
      async () => {
        const r = await runDockctl(configFile, ['status', '--json']);
        if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
        const s = JSON.parse(r.stdout) as {
          recorders: { volume: string; bay: string | null; serial: string | null; state: string }[];
        };
        return s.recorders.find((rec) => rec.volume === mountPoint && rec.state === 'done') ? s : null;
      },
      60_000,
      250,
    );
    const tile = status.recorders.find((rec) => rec.volume === mountPoint)!;
    expect(tile.bay).toBe(BAY);
    expect(tile.serial).toBe('1234567');
    const docked = await waitFor(
      'recorder.docked event',
      () => events('recorder.docked').find((e) => e.volume === mountPoint),
      30_000,
    );
    expect(docked).toMatchObject({ deviceSerial: '1234567', files: 2, bay: BAY });

    // Unplug: undocked, unmounted.
    await fs.rm(path.join(devicesOf(sysfsRoot), PORT), { recursive: true });
    const undocked = await waitFor(
      'recorder.undocked event',
      () => {
        alive();
        return events('recorder.undocked').find((e) => e.volume === mountPoint);
      },
      60_000,
    );
    expect(undocked).toMatchObject({ deviceSerial: '1234567', complete: true });
    await waitFor(
      'the recorder volume to be unmounted',
      () => {
        alive();
        return mountLine(mountPoint) === undefined;
      },
      60_000,
    );
    await waitFor(
      'dockctl status to drop the recorder',
      async () => {
        const r = await runDockctl(configFile, ['status', '--json']);
        const s = JSON.parse(r.stdout) as { recorders: { volume: string }[] };
        return !s.recorders.some((rec) => rec.volume === mountPoint);
      },
      30_000,
      250,
    );

    // An unknown USB stick whose partition node leads to the same (mountable) volume: ignored, nothing mounted or ingested.
    await fs.symlink(loop, path.join(devRoot, 'sdc1'));
    const logsBefore = daemon.logs.length;
    const uploadsBefore = tus.finished.length;
    const dockedBefore = events('recorder.docked').length;
    await plug(sysfsRoot, 'usb-stick', '1-1.3');
    await daemon.waitForLog(
      (l) => daemon!.logs.indexOf(l) >= logsBefore && /device ignored/.test(l.msg) && l.portPath === '1-1.3',
      'the stick to be ignored',
      60_000,
    );
    expect(mountsUnder(dir)).toEqual([]);
    expect(await fs.readdir(runtimeMountRoot)).toEqual([]);
    expect(tus.finished.length).toBe(uploadsBefore);
    expect(events('recorder.docked').length).toBe(dockedBefore);
    const r = await runDockctl(configFile, ['status', '--json']);
    expect((JSON.parse(r.stdout) as { recorders: unknown[] }).recorders).toEqual([]);
  });
});
