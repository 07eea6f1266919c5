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
import { dockctlAudit, waitForAudit } from '../helpers/dockctlJson.ts';
import {
  NOBODY,
  PORT,
  UNPRIVILEGED_SLAVE_NS,
  helperWorld,
  loopDeviceOf,
  mountOptionsOf,
  mountsUnder,
  requireMountTools,
  sh,
  tearDownHelperWorld,
  type HelperWorld,
} from '../helpers/mountHelperWorld.ts';
import { waitFor } from '../helpers/ports.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { useStation } from '../helpers/station.ts';
import { fileContents } from '../helpers/trees.ts';
import { recorderContent } from '../helpers/usbStorageWorld.ts';

const ST = 'test-st';
const BAY = 'B2';

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
      extra: {
        dock: {
          mountRoots: [path.join(dir, 'dock')],
          settleMs: 100,
          rescanSeconds: 1,
          bays: [{ id: BAY, usbPort: PORT }],
          wipe: 'after-archive',
        },
        usb: {
          enabled: true,
          hotplug: 'sysfs',
          sysfsRoot: world.sysfsRoot,
          devRoot: world.devRoot,
          runtimeMountRoot: world.runtimeRoot,
          mountHelper: world.socket,
        },
      },
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
    const alive = () => {
      if (daemon.proc?.exitCode !== null) throw new Error(`dockd exited ${daemon.proc?.exitCode}: ${daemon.stderr}`);
    };
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
    await waitFor(
      'all three clips verified by the tus server',
      () => {
        alive();
        return clips.every((c) => tus.finished.some((u) => u.sha256 === c.sha256));
      },
      120_000,
      200,
    );

    // HQ confirms two: dockd deletes them through the helper's read-write remount, then it is read-only again.
    const [gone1, gone2, kept] = clips;
    for (const c of [gone1, gone2]) await sendReceipt(broker.url, ST, { sha256: c.sha256, ok: true });
    const deleted = await waitForAudit(configFile, 'recorder.file-deleted', { n: 2, timeoutMs: 120_000 });
    expect(deleted.map((e) => e.subject).sort()).toEqual([gone1.sha256, gone2.sha256].sort());
    for (const e of deleted) expect(e.data).toMatchObject({ method: 'remount', deviceSerial: '1234567' });
    await waitFor(
      'the wipe passes to finish',
      () =>
        daemon.logs
          .filter((l) => /deleted archived recordings from the recorder/.test(String(l.msg)))
          .reduce((n, l) => n + Number(l.deleted), 0) >= 2,
      60_000,
    );
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
    expect(() => sh('e2fsck', ['-n', '-f', loop])).not.toThrow();
    const check = path.join(dir, 'check');
    await fs.mkdir(check);
    sh('mount', ['-o', 'ro,noload', '-t', 'ext4', loop, check]);
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
