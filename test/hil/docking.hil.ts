import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.ts';
import { HilWorld } from './hilWorld.ts';
import { QemuRecorder } from './qemuRecorder.ts';
import { recorderClips, recorderModel } from './recorders.ts';
import { fatImage } from './volumes.ts';

/**
 * Hardware in the loop (README, "Hardware in the loop"): the real dockd in a qemu guest running Debian's kernel, with
 * an emulated recorder plugged into the guest's USB bus at run time — first as a USB serial adapter speaking the BC
 * protocol, then, on BC+UDISKEN=1, as a USB mass-storage device holding a FAT32 volume. dockd hears the hotplug, walks
 * the real /sys, opens /dev/ttyUSB0, mounts /dev/sdX read-only itself, ingests, and uploads to the host's tus server.
 */
const world = new HilWorld();

beforeAll(async () => {
  await world.start();
});

afterAll(async () => {
  console.log(`hardware in the loop, phase timings:\n${world.report()}`);
  await world.stop();
});

describe('hardware in the loop: a recorder on the guest USB bus', () => {
  it('handshakes over the USB serial, switches to storage, mounts the FAT volume read-only, ingests and uploads', async () => {
    const { clips, files } = await recorderClips(path.join(world.dir, 'r1'), {
      serial: 'HIL0001',
      officerId: '012345',
      variants: [1201, 1202],
    });
    const image = path.join(world.dir, 'r1.img');
    await fatImage(image, files);
    const rec = new QemuRecorder(world.guest.qmp, {
      id: 'r1',
      port: 1,
      model: recorderModel('HIL0001', '012345', '张三'),
      image,
      storageSerial: 'REC-HIL0001',
      workDir: world.dir,
    });
    await rec.plugIn();
    const logFrom = world.logs.length;

    // The handshake over /dev/ttyUSB0: login, identity, clock, battery, then the switch to mass storage.
    const attached = await world.waitForLog(
      (l) => l.msg === 'usb: recorder attached' && l.portPath === '1-1',
      'dockd to see the USB serial recorder',
      120_000,
      logFrom,
    );
    expect(attached.tty).toBe('/dev/ttyUSB0');
    await rec.storageReady();
    expect(rec.commands.some((c) => /LOGIN/.test(c))).toBe(true);
    expect(rec.commands.some((c) => /UDISKEN/.test(c))).toBe(true);
    world.phase('handshake (serial plugged → storage plugged)', rec.times.storagePlugged! - rec.times.serialPlugged!);

    // The storage: mounted read-only by dockd itself, on /dev/sdX, as vfat.
    const mounted = await world.waitForLog(
      (l) => l.msg === 'recorder storage mounted read-only' && l.port === '1-1',
      'dockd to mount the recorder storage',
      120_000,
      logFrom,
    );
    expect(mounted.fsType).toBe('vfat');
    expect(String(mounted.device)).toMatch(/^\/dev\/sd[a-z]$/);
    const mounts = (await world.guest.link.exec(['cat', '/proc/mounts'])).stdout;
    const line = mounts.split('\n').find((l) => l.split(' ')[1] === mounted.mountPoint);
    expect(line?.split(' ')[3]?.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));

    // Ingested: every clip stored, the recorder safe to undock; then uploaded, hashes matched at the tus server.
    const volume = String(mounted.mountPoint);
    const firstByte = await waitFor(
      'the first bytes copied',
      () => world.tiles((r) => r.volume === volume && r.bytes.done > 0)[0],
      240_000,
      200,
    );
    world.phase('detect → first byte (storage plugged → bytes copied)', firstByte.at - rec.times.storagePlugged!);
    const safe = await waitFor(
      'the recorder safe to undock',
      () => {
        world.alive();
        return world.tiles((r) => r.volume === volume && r.safeToUndock)[0];
      },
      300_000,
      200,
    );
    expect(safe.files.total).toBe(clips.length);
    expect(safe.serial).toBe('HIL0001');
    expect(safe.bay).toBe('B1');
    world.phase('ingest (storage plugged → safe to undock)', safe.at - rec.times.storagePlugged!);
    await waitFor(
      'every clip verified by the tus server',
      () => {
        world.alive();
        return clips.every((c) => world.tus.finished.some((u) => u.sha256 === c.sha256));
      },
      300_000,
      200,
    );
    world.phase('upload (safe to undock → all verified at HQ)', Date.now() - safe.at);
    for (const c of clips) expect(world.tus.finished.filter((u) => u.sha256 === c.sha256).map((u) => u.size)).toEqual([c.size]);
    expect(world.tus.refused).toEqual([]);
    const docked = world.events('recorder.docked').find((e) => e.volume === volume);
    expect(docked).toMatchObject({ deviceSerial: 'HIL0001', files: clips.length });
    await rec.close();
  });
});
