/**
 * No root in the network-facing process: the real dockd runs as `nobody` with every capability set empty, in a mount
 * namespace that receives mounts from the host as a slave (as dockd.service's does under systemd), and mounts USB
 * recorder storage only through the mount helper (bin/dockd-mount.js as root, usb.mountHelper). A real ext4 volume on
 * a loop device is docked through the sysfs poller, mounted read-only, ingested, uploaded to a real tus server; HQ's
 * receipts make the wipe gate delete two recordings through the helper's read-write remount; unplugged, it is
 * unmounted. On the device afterwards: exactly those two are gone, the rest byte-identical, the filesystem clean.
 * Needs root (loop devices, mount, unshare): without root this test FAILS.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confirmAndWaitForWipe, expectDeviceAfterWipe } from '../helpers/deviceWipe.ts';
import { dockctlAudit } from '../helpers/dockctlJson.ts';
import {
  NOBODY,
  UNPRIVILEGED_SLAVE_NS,
  helperWorld,
  loopDeviceOf,
  mountOptionsOf,
  mountsUnder,
  requireMountTools,
  tearDownHelperWorld,
  type HelperWorld,
} from '../helpers/mountHelperWorld.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { fileContents } from '../helpers/trees.ts';
import { BAY, recorderContent, usbBayConfig, daemonAlive, waitForClipsAtTus } from '../helpers/usbStorageWorld.ts';

const ST = 'test-st';

describe('dockd without any capability, mounting through the mount helper', () => {
  const station = useStation({
    prefix: 'dockd-unprivileged-usb-',
    precondition: () => requireMountTools('the unprivileged USB docking test'),
  });
  const loops: string[] = [];
  let world: HelperWorld | null = null;
  beforeEach(() =>
    station.onCleanup(async () => {
      await tearDownHelperWorld(station.dir, loops, world?.helper);
      world = null;
    }),
  );
  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    const { daemon } = station;
    if (daemon)
      console.error(
        daemon.logs
          .slice(-60)
          .map((l) => JSON.stringify(l))
          .join('\n'),
        daemon.stderr,
      );
    if (world) console.error(world.helperLog.join('\n'));
  });

  it('docks, ingests, wipes through a read-write remount and undocks a real ext4 volume', async () => {
    const { dir, broker, tus } = station;
    await fs.chmod(dir, 0o755);

    const content = path.join(dir, 'content');
    const clips = await recorderContent(content, {
      variants: [741, 742, 743],
      seconds: 1,
      hour: '2026112809',
      caseNo: 'C-NOCAP',
      note: true,
    });
    const original = await fileContents(content);
    const loop = await loopDeviceOf(content, path.join(dir, 'recorder.img'), 32);
    loops.push(loop);
    world = await helperWorld(dir, loop, { plugged: false });

    const { configFile, storeDir, mountRoot } = await station.world({
      tus: { stallTimeoutSeconds: 10 },
      extra: usbBayConfig(
        dir,
        { sysfsRoot: world.sysfsRoot, devRoot: world.devRoot, runtimeMountRoot: world.runtimeRoot, mountHelper: world.socket },
        'after-archive',
      ),
    });
    await fs.mkdir(storeDir);
    for (const d of [storeDir, mountRoot]) await fs.chown(d, NOBODY, NOBODY);

    const daemon = await station.startDaemon(configFile, { wrap: UNPRIVILEGED_SLAVE_NS, env: { HOME: dir, TMPDIR: '/tmp' } });
    await daemon.waitForLog((l) => l.msg === 'mount helper answers', 'dockd to reach the mount helper');
    const pid = daemon.proc!.pid!;
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(NOBODY));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
      expect(new RegExp(`^${set}:\\s+0+$`, 'm').test(status), set).toBe(true);
    expect(await fs.readlink(`/proc/${pid}/ns/mnt`)).not.toBe(await fs.readlink('/proc/self/ns/mnt'));
    const alive = daemonAlive(daemon);
    const inDockd = `/proc/${pid}/mounts`;
    const mountPoint = path.join(world.runtimeRoot, BAY);

    // Plugged in: the helper mounts it; dockd, in its own namespace, sees it read-only, ingests and uploads.
    await world.plug();
    await waitFor(
      "the recorder volume to be mounted in dockd's namespace",
      () => {
        alive();
        return mountOptionsOf(mountPoint, inDockd);
      },
      60_000,
    );
    expect(mountOptionsOf(mountPoint, inDockd)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    await waitForClipsAtTus(tus, clips, alive);

    // HQ confirms two: dockd deletes them through the helper's read-write remount, then it is read-only again.
    const [gone1, gone2] = clips;
    await confirmAndWaitForWipe(daemon, { brokerUrl: broker.url, stationId: ST }, [gone1, gone2]);
    for (const table of [inDockd, '/proc/self/mounts']) {
      const options = mountOptionsOf(mountPoint, table);
      expect(options, table).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
      expect(options, table).not.toContain('rw');
    }
    expect((await dockctlAudit(configFile)).filter((e) => e.type === 'recorder.wipe-failed')).toEqual([]);
    expect(world.helperLog.filter((l) => l.includes('remounted read-write for the wipe')).length).toBeGreaterThanOrEqual(1);

    // Unplugged: unmounted, in both namespaces. On the device: exactly those two are gone, the rest byte-identical.
    await world.unplug();
    await waitFor(
      'the recorder volume to be unmounted',
      () => {
        alive();
        return mountsUnder(world!.runtimeRoot, inDockd).length === 0;
      },
      60_000,
    );
    expect(mountsUnder(world.runtimeRoot)).toEqual([]);
    await expectDeviceAfterWipe(loop, path.join(dir, 'check'), original, [gone1, gone2]);
  }, 300_000);
});
