import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { unescapeMountField } from '../../drivers/mounts/blockMount.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { mountsUnder, requireMountTools, tearDownHelperWorld } from '../helpers/mountHelperWorld.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import {
  BAY,
  ext4LoopDevice,
  recorderContent,
  usbBayConfig,
  usbStorageWorld,
  daemonAlive,
  waitForClipsAtTus,
} from '../helpers/usbStorageWorld.ts';

/**
 * The real daemon with usb.enabled and the sysfs poller over a temp copy of a fixture sysfs tree: a recorder in mass
 * storage mode "plugged in" (its device directory renamed into the tree) whose partition node (<devRoot>/sdb1) is a
 * symlink to a loop device holding a real ext4 recorder volume. dockd must mount it read-only under
 * usb.runtimeMountRoot, ingest and upload its recordings, show it in its bay, and on "unplug" undock and unmount it.
 * An unrelated USB stick is ignored. Needs root (loop devices, mount): without root every test here FAILS.
 */
const P = 'dockd/test-st';

function mountLine(mountPoint: string): string[] | undefined {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => unescapeMountField(f[1] ?? '') === mountPoint);
}

describe('USB docking through the real daemon (sysfs poller, loop-backed ext4 recorder)', () => {
  const station = useStation({
    prefix: 'dockd-usbdock-',
    precondition: () =>
      requireMountTools('the USB docking integration test', ['losetup', 'mkfs.ext4', 'mount', 'umount', 'blkid', 'ffmpeg']),
  });
  const loops: string[] = [];
  beforeEach(() => station.onCleanup(() => tearDownHelperWorld(station.dir, loops)));

  it('mounts a mass-storage recorder read-only, ingests and uploads it, shows its bay, undocks and unmounts on unplug, ignores a stick', async () => {
    const { dir, tus } = station;

    // The recorder's volume: two GA/T 947 named clips with complete sidecars, in an ext4 image on a loop device.
    const content = path.join(dir, 'content');
    const clips = await recorderContent(content, { variants: [701, 702], seconds: 2, hour: '2026112808', caseNo: 'C-USB' });
    expect(new Set(clips.map((c) => c.sha256)).size).toBe(2);
    const loop = await ext4LoopDevice(content, path.join(dir, 'recorder.img'), 32);
    loops.push(loop);

    // Device nodes (the fixture's partition name links to the loop device) and a sysfs tree with the hub but without the recorder.
    const usb = await usbStorageWorld(dir, loop);
    const { devRoot, runtimeMountRoot } = usb;
    const { configFile } = await station.world({
      tus: { stallTimeoutSeconds: 10 },
      receiptKey: null,
      extra: { ...usbBayConfig(dir, usb), http: { listen: `127.0.0.1:${await freePort()}` } },
    });
    const sub = await station.subscribe(`${P}/#`);
    const events = (type: string) =>
      sub.messages
        .filter((m) => m.topic === `${P}/event`)
        .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
        .filter((e) => e.type === type);
    const daemon = await station.startDaemon(configFile);
    const alive = daemonAlive(daemon);
    await daemon.waitForLog((l) => l.msg === 'watching USB for recorders', 'the USB watcher to start');
    const mountPoint = path.join(await fs.realpath(runtimeMountRoot), BAY);
    expect(mountLine(mountPoint)).toBeUndefined();

    // Plug the recorder in (mass-storage mode, port 1-1.2).
    await usb.plug();
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
    await waitForClipsAtTus(tus, clips, alive);
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
    await usb.unplug();
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
    await usb.plug('usb-stick', '1-1.3');
    await daemon.waitForLog(
      (l) => daemon.logs.indexOf(l) >= logsBefore && /device ignored/.test(l.msg) && l.portPath === '1-1.3',
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
