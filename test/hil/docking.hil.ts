import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.ts';
import { GUEST_MOUNT_ROOT, HilWorld } from './hilWorld.ts';
import { QemuRecorder } from './qemuRecorder.ts';
import { type Clip, recorderClips, recorderModel } from './recorders.ts';
import { fatImage, type VolumeFile } from './volumes.ts';

/**
 * Hardware in the loop (README, "Hardware in the loop"): the real dockd in a qemu guest running Debian's kernel, with
 * emulated recorders plugged into the guest's USB bus at run time — first as a USB serial adapter speaking the BC
 * protocol, then, on BC+UDISKEN=1, as a USB mass-storage device holding a FAT32 or exFAT volume. dockd hears the
 * hotplug, walks the real /sys, opens /dev/ttyUSB0, mounts /dev/sdX read-only itself, ingests, and uploads to the
 * host's tus server. The scenarios share one guest and one dockd (a boot costs a minute or more under TCG).
 */
const world = new HilWorld();
const volumes: Record<string, { image: string; clips: Clip[]; files: VolumeFile[] }> = {};

async function prepare(dir: string): Promise<void> {
  const make = async (
    id: string,
    serial: string,
    officerId: string,
    variants: number[],
    kind: 'video' | 'video-big' = 'video',
    fs32 = true,
  ) => {
    const { clips, files } = await recorderClips(path.join(dir, id), { serial, officerId, variants, kind });
    const image = path.join(dir, `${id}.img`);
    if (fs32) await fatImage(image, files);
    else {
      // exFAT: made here, filled in the guest (this machine's kernel has no exfat, and exfatprogs cannot copy files in).
      await fs.writeFile(image, '');
      await fs.truncate(image, 64 << 20);
      execFileSync('mkfs.exfat', ['-L', 'RECORDER', image], {
        stdio: 'ignore',
        env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
      });
    }
    volumes[id] = { image, clips, files };
  };
  await make('r1', 'HIL0001', '012345', [1201, 1202]);
  await make('r2', 'HIL0002', '054321', [1301, 1302], 'video', false);
  await make('r3', 'HIL0003', '033333', [1311, 1312]);
  // Enough for the unplug to land mid-copy: with three of these (10 MB) the copy once finished before device_del took
  // effect in the guest (CI, 2026-12-02).
  await make('r4', 'HIL0004', '044444', [1401, 1402, 1403, 1404, 1405, 1406, 1407, 1408], 'video-big');
  await make('r5', 'HIL0005', '055555', [1501, 1502]);
}

function recorder(id: string, port: number, serial: string, officerId: string, name: string): QemuRecorder {
  return new QemuRecorder(world.guest.qmp, {
    id,
    port,
    model: recorderModel(serial, officerId, name),
    image: volumes[id]!.image,
    storageSerial: `REC-${serial}`,
    workDir: world.dir,
  });
}

async function guestMounts(): Promise<string[][]> {
  return (await world.guest.link.exec(['cat', '/proc/mounts'])).stdout.split('\n').map((l) => l.split(' '));
}

/** Waits until dockd has mounted the storage at this port; returns its log line. */
function mountedAt(port: string, from: number) {
  return world.waitForLog(
    (l) => l.msg === 'recorder storage mounted read-only' && l.port === port,
    `dockd to mount the recorder storage at ${port}`,
    180_000,
    from,
  );
}

/** Waits until the volume is safe to undock and every clip is verified at the tus server; returns when each happened. */
async function ingestedAndUploaded(volume: string, clips: Clip[]): Promise<{ safeAt: number; uploadedAt: number }> {
  const safe = await waitFor(
    `${volume} safe to undock`,
    () => {
      world.alive();
      return world.tiles((r) => r.volume === volume && r.safeToUndock)[0];
    },
    300_000,
    200,
  );
  expect(safe.files.total).toBe(clips.length);
  await waitFor(
    `every clip of ${volume} verified by the tus server`,
    () => {
      world.alive();
      return clips.every((c) => world.tus.finished.some((u) => u.sha256 === c.sha256));
    },
    300_000,
    200,
  );
  const uploadedAt = Date.now();
  for (const c of clips) expect(world.tus.finished.filter((u) => u.sha256 === c.sha256).map((u) => u.size)).toEqual([c.size]);
  expect(world.tus.refused).toEqual([]);
  return { safeAt: safe.at, uploadedAt };
}

beforeAll(async () => {
  await world.start({ prepare });
});

afterAll(async () => {
  console.log(`hardware in the loop, phase timings:\n${world.report()}`);
  await world.stop();
});

describe('hardware in the loop: recorders on the guest USB bus', () => {
  it('handshakes over the USB serial, switches to storage, mounts the FAT volume read-only, ingests and uploads', async () => {
    const { clips } = volumes.r1!;
    const rec = recorder('r1', 1, 'HIL0001', '012345', '张三');
    const logFrom = world.logs.length;
    await rec.plugIn();

    // The handshake over /dev/ttyUSB0: login, identity, clock, battery, then the switch to mass storage.
    const attached = await world.waitForLog(
      (l) => l.msg === 'usb: recorder attached' && l.portPath === '1-1',
      'dockd to see the USB serial recorder',
      120_000,
      logFrom,
    );
    expect(attached.tty).toBe('/dev/ttyUSB0');
    // usb.hotplug auto: the guest runs udevd (scripts/hil/init.sh), so libusb itself reported the plug: the sysfs check
    // saw libusb keep up and stopped, and dockd never fell back to polling (test/usb/checkedHotplug.test.ts has the fallback).
    expect(world.logs.some((l) => l.msg === 'usb: libusb hotplug delivers events; the sysfs check stops')).toBe(true);
    expect(world.logs.some((l) => l.msg === 'libusb hotplug delivers no events (no udevd?): polling sysfs instead')).toBe(false);
    await rec.storageReady();
    expect(rec.commands.some((c) => /LOGIN/.test(c))).toBe(true);
    expect(rec.commands.some((c) => /UDISKEN/.test(c))).toBe(true);
    world.phase('r1 handshake (serial plugged → storage plugged)', rec.times.storagePlugged! - rec.times.serialPlugged!);

    // The storage: mounted read-only by dockd itself, on /dev/sdX, as vfat, under the recorder's serial.
    const mounted = await mountedAt('1-1', logFrom);
    expect(mounted.fsType).toBe('vfat');
    expect(String(mounted.device)).toMatch(/^\/dev\/sd[a-z]$/);
    const volume = String(mounted.mountPoint);
    expect(volume).toBe(`${GUEST_MOUNT_ROOT}/HIL0001`);
    const line = (await guestMounts()).find((f) => f[1] === volume);
    expect(line?.[2]).toBe('vfat');
    expect(line?.[3]?.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));

    // Ingested (every clip stored, safe to undock), then uploaded: hashes matched at the tus server.
    const firstByte = await waitFor(
      'the first bytes copied',
      () => world.tiles((r) => r.volume === volume && r.bytes.done > 0)[0],
      240_000,
      200,
    );
    world.phase('r1 detect → first byte (storage plugged → bytes copied)', firstByte.at - rec.times.storagePlugged!);
    const { safeAt, uploadedAt } = await ingestedAndUploaded(volume, clips);
    world.phase('r1 ingest (storage plugged → safe to undock)', safeAt - rec.times.storagePlugged!);
    world.phase('r1 upload (safe to undock → all verified at HQ)', uploadedAt - safeAt);
    const tile = world.tiles((r) => r.volume === volume && r.safeToUndock)[0]!;
    expect(tile).toMatchObject({ serial: 'HIL0001', bay: 'B1' });
    expect(world.events('recorder.docked').find((e) => e.volume === volume)).toMatchObject({
      deviceSerial: 'HIL0001',
      files: clips.length,
    });
    await rec.close();
  });

  it('ignores an unknown USB stick (another usb-storage, not in the fingerprint table)', async () => {
    // The stick holds the empty exFAT volume of the next test: while dockd ignores it, the harness fills it in the guest.
    const stick = new QemuRecorder(world.guest.qmp, {
      id: 'stick',
      port: 3,
      model: recorderModel('STICK01', '000000', '-'),
      image: volumes.r2!.image,
      storageSerial: 'STICK-0001',
      workDir: world.dir,
    });
    const logFrom = world.logs.length;
    const dockedBefore = world.events('recorder.docked').length;
    await stick.plugStorage();
    const ignored = await world.waitForLog(
      (l) => /device ignored/.test(String(l.msg)) && l.portPath === '1-3',
      'dockd to ignore the stick',
      120_000,
      logFrom,
    );
    expect(ignored.usbId).toBe('46f4:0001');
    const script = [
      'set -e',
      'for i in $(seq 150); do ls /sys/bus/usb/devices/1-3:1.0/host*/target*/*/block/ 2>/dev/null | grep -q sd && break; sleep 0.2; done',
      'dev=/dev/$(ls /sys/bus/usb/devices/1-3:1.0/host*/target*/*/block/ | head -1)',
      'mkdir -p /mnt/stage && mount -t exfat "$dev" /mnt/stage',
      ...volumes.r2!.files.map(
        (f) => `mkdir -p "/mnt/stage/${path.posix.dirname(f.rel)}" && cp -p "${f.source}" "/mnt/stage/${f.rel}"`,
      ),
      'umount /mnt/stage',
    ].join('\n');
    await fs.writeFile(path.join(world.dir, 'fill-exfat.sh'), script);
    await world.guest.link.exec(['sh', path.join(world.dir, 'fill-exfat.sh')]);
    expect((await guestMounts()).filter((f) => f[1]?.startsWith(GUEST_MOUNT_ROOT))).toHaveLength(1); // r1's only
    expect(world.logs.slice(logFrom).some((l) => l.msg === 'recorder storage mounted read-only')).toBe(false);
    expect(world.events('recorder.docked').length).toBe(dockedBefore);
    await stick.unplugStorage();
    await stick.close();
  });

  it('docks two recorders at once, on two ports: one exFAT, one FAT32', async () => {
    const r2 = recorder('r2', 2, 'HIL0002', '054321', '李四');
    const r3 = recorder('r3', 3, 'HIL0003', '033333', '王五');
    const logFrom = world.logs.length;
    await Promise.all([r2.plugIn(), r3.plugIn()]);
    const [m2, m3] = await Promise.all([mountedAt('1-2', logFrom), mountedAt('1-3', logFrom)]);
    expect(m2.fsType).toBe('exfat');
    expect(m3.fsType).toBe('vfat');
    const [u2, u3] = await Promise.all([
      ingestedAndUploaded(String(m2.mountPoint), volumes.r2!.clips),
      ingestedAndUploaded(String(m3.mountPoint), volumes.r3!.clips),
    ]);
    world.phase('r2+r3 at once: ingest (storage plugged → both safe)', Math.max(u2.safeAt, u3.safeAt) - r2.times.storagePlugged!);
    world.phase(
      'r2+r3 at once: upload (both safe → all verified)',
      Math.max(u2.uploadedAt, u3.uploadedAt) - Math.max(u2.safeAt, u3.safeAt),
    );
    expect(world.tiles((r) => r.volume === m2.mountPoint && r.safeToUndock)[0]).toMatchObject({ serial: 'HIL0002', bay: 'B2' });
    expect(world.tiles((r) => r.volume === m3.mountPoint && r.safeToUndock)[0]).toMatchObject({ serial: 'HIL0003', bay: 'B3' });
    await Promise.all([r2.close(), r3.close()]);
  });

  it('pulled out mid-copy (device_del): never safe to undock, the dead mount cleaned up; plugged back: each file exactly once', async () => {
    const { clips } = volumes.r4!;
    const rec = recorder('r4', 4, 'HIL0004', '044444', '赵六');
    const logFrom = world.logs.length;
    await rec.plugIn();
    const mounted = await mountedAt('1-4', logFrom);
    const volume = String(mounted.mountPoint);
    const copying = await waitFor(
      'the copy to be under way',
      () => world.tiles((r) => r.volume === volume && r.bytes.done > 0 && r.bytes.done < r.bytes.total)[0],
      180_000,
      50,
    );
    await rec.unplugStorage();
    console.log(`r4 pulled out with ${copying.bytes.done} of ${copying.bytes.total} bytes copied`);
    const undocked = await waitFor(
      'the recorder undocked',
      () => world.events('recorder.undocked').find((e) => e.volume === volume),
      120_000,
      200,
    );
    expect(undocked.complete).toBe(false);
    await waitFor('the dead mount to be gone', async () => !(await guestMounts()).some((f) => f[1] === volume), 120_000, 1000);
    const readErrors = world.logs
      .slice(logFrom)
      .filter((l) => /EIO|ENODEV|ENXIO|ENOENT|gone|I\/O error/i.test(JSON.stringify(l)));
    expect(readErrors.length).toBeGreaterThan(0);

    // Plugged back in (still in storage mode): no control channel this time, so it is mounted under its bay.
    const replugFrom = world.logs.length;
    const replugAt = Date.now();
    await rec.plugStorage();
    const again = await mountedAt('1-4', replugFrom);
    const safe = await waitFor(
      'the re-plugged recorder safe to undock',
      () => {
        world.alive();
        return world.tiles((r) => r.volume === again.mountPoint && r.safeToUndock)[0];
      },
      300_000,
      200,
    );
    expect(safe.files.total).toBe(clips.length);
    world.phase('r4 re-plug: ingest (storage plugged → safe)', safe.at - rec.times.storagePlugged!);
    // Never said safe to undock before the re-plug (both mounts may have the same name: compare by time); each
    // recording stored exactly once.
    expect(world.tiles((r) => r.volume === volume && r.safeToUndock).filter((t) => t.at < replugAt)).toEqual([]);
    // Events reach the broker through dockd's outbox, after the state: wait until each clip's has come.
    const stored = await waitFor(
      'a file.ingested event for each r4 clip',
      () => {
        const evs = world.events('file.ingested').filter((e) => clips.some((c) => c.sha256 === e.sha256));
        return clips.every((c) => evs.some((e) => e.sha256 === c.sha256)) ? evs : null;
      },
      180_000,
      500,
    );
    for (const c of clips) expect(new Set(stored.filter((e) => e.sha256 === c.sha256).map((e) => e.id)).size).toBe(1);
    // Every recording goes to HQ exactly once: one whose sidecar could not be read when the cable went (ENOENT on the
    // vanished vfat) is no longer stored without it, and one stored meanwhile takes its sidecar on the re-plug.
    await waitFor(
      'every clip of r4 verified by the tus server',
      () => {
        world.alive();
        return clips.every((c) => world.tus.finished.some((u) => u.sha256 === c.sha256));
      },
      300_000,
      200,
    );
    world.phase('r4 re-plug: upload (safe → all verified)', Date.now() - safe.at);
    for (const c of clips) expect(world.tus.finished.filter((u) => u.sha256 === c.sha256)).toHaveLength(1);
    console.log(`r4 clips as first stored: ${stored.map((e) => e.state).join(', ')}`);
    await rec.close();
  });

  it('a SuperSpeed storage comes back on the USB 3 bus (another port path): paired with its recorder by USB serial', async () => {
    // On the second controller (port 1 is USB 2 and USB 3): the serial (full speed) is on its USB 2 bus, the storage
    // (qemu's usb-storage is SuperSpeed) re-enumerates on its USB 3 bus, as a real recorder's does.
    const rec = new QemuRecorder(world.guest.qmp, {
      id: 'r5',
      port: 1,
      bus: 'xhci3.0',
      model: recorderModel('HIL0005', '055555', '孙七'),
      image: volumes.r5!.image,
      storageSerial: 'REC-HIL0005',
      workDir: world.dir,
    });
    const logFrom = world.logs.length;
    await rec.plugIn();
    const attached = await world.waitForLog(
      (l) => l.msg === 'usb: recorder attached' && l.driver === 'bc-serial',
      'dockd to see the USB serial recorder on the second controller',
      120_000,
      logFrom,
    );
    await rec.storageReady();
    const mounted = await world.waitForLog(
      (l) => l.msg === 'recorder storage mounted read-only',
      'dockd to mount the SuperSpeed storage',
      180_000,
      logFrom,
    );
    const serialPort = String(attached.portPath);
    const storagePort = String(mounted.port);
    console.log(`r5: serial at ${serialPort}, storage at ${storagePort}`);
    expect(storagePort.split('-')[0]).not.toBe(serialPort.split('-')[0]); // another bus
    const speed = (await world.guest.link.exec(['cat', `/sys/bus/usb/devices/${storagePort}/speed`])).stdout.trim();
    expect(Number(speed)).toBeGreaterThanOrEqual(5000);
    // Paired with the identity the recorder gave on its serial: named after it, its officer on the tile and the event.
    const volume = String(mounted.mountPoint);
    expect(volume).toBe(`${GUEST_MOUNT_ROOT}/HIL0005`);
    const { safeAt } = await ingestedAndUploaded(volume, volumes.r5!.clips);
    world.phase('r5 SuperSpeed: ingest (storage plugged → safe)', safeAt - rec.times.storagePlugged!);
    expect(world.tiles((r) => r.volume === volume && r.safeToUndock)[0]).toMatchObject({ serial: 'HIL0005' });
    expect(world.events('recorder.docked').find((e) => e.volume === volume)).toMatchObject({
      deviceSerial: 'HIL0005',
      files: volumes.r5!.clips.length,
    });
    await rec.close();
  });
});
