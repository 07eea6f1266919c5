/**
 * The wipe gate (dock.wipe: after-archive) on a USB recorder whose storage dockd mounted itself read-only: the real
 * daemon (sysfs poller over a fixture tree, the partition node a link to a loop device holding a real ext4 volume)
 * remounts it read-write just for the wipe, deletes the archived recordings, syncs, and makes it read-only again. On
 * the device afterwards: those recordings are gone, everything else is byte-identical, the filesystem is clean.
 * Needs root (loop devices, mount): without root this test FAILS.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confirmAndWaitForWipe, expectDeviceAfterWipe } from '../helpers/deviceWipe.ts';
import { dockctlAudit } from '../helpers/dockctlJson.ts';
import { mountOptionsOf, requireMountTools, tearDownHelperWorld } from '../helpers/mountHelperWorld.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { fileContents } from '../helpers/trees.ts';
import {
  BAY,
  ext4LoopDevice,
  recorderContent,
  usbBayConfig,
  usbStorageWorld,
  daemonAlive,
  waitForClipsAtTus,
} from '../helpers/usbStorageWorld.ts';

const ST = 'test-st';

describe('wipe gate on USB storage mounted read-only by dockd (real ext4 loop device)', () => {
  const station = useStation({
    prefix: 'dockd-wipe-usb-',
    precondition: () =>
      requireMountTools('the USB wipe test', [
        'losetup',
        'mkfs.ext4',
        'mount',
        'umount',
        'blkid',
        'dumpe2fs',
        'e2fsck',
        'ffmpeg',
      ]),
  });
  const loops: string[] = [];
  beforeEach(() => station.onCleanup(() => tearDownHelperWorld(station.dir, loops)));
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && station.daemon)
      console.error(
        station.daemon.logs
          .slice(-80)
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
  });

  it('remounts read-write just for the wipe, deletes exactly the archived recordings on the device, and is read-only again', async () => {
    const { dir, broker, tus } = station;

    // Three clips with complete sidecars and a note, in an ext4 image on a loop device; HQ will confirm two of them.
    const content = path.join(dir, 'content');
    const clips = await recorderContent(content, {
      variants: [731, 732, 733],
      seconds: 1,
      hour: '2026112809',
      caseNo: 'C-WIPE',
      note: true,
    });
    const original = await fileContents(content);
    const loop = await ext4LoopDevice(content, path.join(dir, 'recorder.img'), 32);
    loops.push(loop);

    const usb = await usbStorageWorld(dir, loop);
    const { runtimeMountRoot } = usb;
    const { configFile } = await station.world({
      tus: { stallTimeoutSeconds: 10 },
      extra: { ...usbBayConfig(dir, usb, 'after-archive'), http: { listen: `127.0.0.1:${await freePort()}` } },
    });
    const daemon = await station.startDaemon(configFile);
    const alive = daemonAlive(daemon);
    await daemon.waitForLog((l) => l.msg === 'watching USB for recorders', 'the USB watcher to start');
    const mountPoint = path.join(await fs.realpath(runtimeMountRoot), BAY);

    // Plugged in: mounted read-only, ingested, uploaded.
    await usb.plug();
    await waitFor(
      'the recorder volume to be mounted',
      () => {
        alive();
        return mountOptionsOf(mountPoint);
      },
      60_000,
    );
    expect(mountOptionsOf(mountPoint)).toContain('ro');
    await waitForClipsAtTus(tus, clips, alive);

    // HQ confirms two: they leave the device, through a read-write remount; the mount is read-only again afterwards.
    const [gone1, gone2] = clips;
    await confirmAndWaitForWipe(daemon, { brokerUrl: broker.url, stationId: ST }, [gone1, gone2]);
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
    await usb.unplug();
    await waitFor(
      'the recorder volume to be unmounted',
      () => {
        alive();
        return mountOptionsOf(mountPoint) === undefined;
      },
      60_000,
    );
    await expectDeviceAfterWipe(loop, path.join(dir, 'check'), original, [gone1, gone2]);
  }, 300_000);
});
