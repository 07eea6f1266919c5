import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/ports.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { sha256OfFile } from '../../scripts/media.ts';
import { GUEST_MOUNT_ROOT, HilWorld, STATION } from './hilWorld.ts';
import { QemuRecorder } from './qemuRecorder.ts';
import { type Clip, recorderClips, recorderModel } from './recorders.ts';
import { fatCopyOut, fatFiles, fatImage, fsckFat, type VolumeFile } from './volumes.ts';

/**
 * The wipe gate (dock.wipe: after-archive) on a real FAT32 device in the qemu guest (README, "Hardware in the loop"):
 * dock, ingest, upload, HQ's signed receipt for some of the recordings; dockd remounts the real vfat read-write,
 * deletes exactly those, and remounts it read-only. After the guest has let go of the device, the image is checked on
 * the host: the receipted recordings are gone, everything else is byte-identical, and `fsck.vfat -n` finds nothing.
 */
const world = new HilWorld();
let image = '';
let clips: Clip[] = [];
let files: VolumeFile[] = [];

beforeAll(async () => {
  await world.start({
    wipe: true,
    prepare: async (dir) => {
      ({ clips, files } = await recorderClips(path.join(dir, 'r5'), {
        serial: 'HIL0001',
        officerId: '012345',
        variants: [1501, 1502, 1503],
      }));
      image = path.join(dir, 'r5.img');
      await fatImage(image, files);
    },
  });
});

afterAll(async () => {
  console.log(`hardware in the loop (wipe), phase timings:\n${world.report()}`);
  await world.stop();
});

async function guestMountOptions(mountPoint: string): Promise<string[] | undefined> {
  const mounts = (await world.guest.link.exec(['cat', '/proc/mounts'])).stdout.split('\n').map((l) => l.split(' '));
  return mounts.find((f) => f[1] === mountPoint)?.[3]?.split(',');
}

describe('hardware in the loop: the wipe gate on a real FAT32 device', () => {
  it('deletes only the recordings HQ has receipted, leaves the rest byte-identical, and the FAT is clean afterwards', async () => {
    const rec = new QemuRecorder(world.guest.qmp, {
      id: 'r5',
      port: 1,
      model: recorderModel('HIL0001', '012345', '张三'),
      image,
      storageSerial: 'REC-HIL0001',
      workDir: world.dir,
    });
    const logFrom = world.logs.length;
    await rec.plugIn();
    await rec.storageReady();
    const mounted = await world.waitForLog(
      (l) => l.msg === 'recorder storage mounted read-only' && l.port === '1-1',
      'dockd to mount the recorder storage',
      180_000,
      logFrom,
    );
    expect(mounted.fsType).toBe('vfat');
    const volume = String(mounted.mountPoint);
    expect(volume).toBe(`${GUEST_MOUNT_ROOT}/HIL0001`);

    // Ingested and uploaded: every clip verified at the tus server, and dockd's catalog says uploaded.
    const safe = await waitFor(
      'the recorder safe to undock',
      () => {
        world.alive();
        return world.tiles((r) => r.volume === volume && r.safeToUndock)[0];
      },
      300_000,
      200,
    );
    world.phase('ingest (storage plugged → safe to undock)', safe.at - rec.times.storagePlugged!);
    await waitFor(
      'a file.uploaded event for each clip',
      () => {
        world.alive();
        return clips.every((c) => world.events('file.uploaded').some((e) => e.sha256 === c.sha256));
      },
      300_000,
      500,
    );
    world.phase('upload (safe to undock → all uploaded)', Date.now() - safe.at);
    for (const c of clips) expect(world.tus.finished.filter((u) => u.sha256 === c.sha256).map((u) => u.size)).toEqual([c.size]);

    // HQ receipts two of the three (the second one is the clip nested deep under long names); the third has none.
    const [gone1, gone2, kept] = clips as [Clip, Clip, Clip];
    const receiptsAt = Date.now();
    for (const c of [gone1, gone2]) await sendReceipt(world.broker.url, STATION, { sha256: c.sha256, ok: true });
    const deleted = await waitFor(
      'two recorder.file-deleted events',
      () => {
        world.alive();
        const evs = world.events('recorder.file-deleted');
        return evs.length >= 2 ? evs : null;
      },
      300_000,
      500,
    );
    world.phase('wipe (receipts sent → both deleted)', Date.now() - receiptsAt);
    expect(deleted.map((e) => e.sha256).sort()).toEqual([gone1.sha256, gone2.sha256].sort());
    for (const e of deleted) expect(e).toMatchObject({ method: 'remount', deviceSerial: 'HIL0001' });
    await world.waitForLog(
      (l) => /deleted archived recordings from the recorder/.test(String(l.msg)),
      'the wipe pass to end (read-only again)',
      120_000,
      logFrom,
    );
    const options = await guestMountOptions(volume);
    expect(options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(options).not.toContain('rw');
    expect(world.logs.slice(logFrom).filter((l) => /cannot delete an archived recording/.test(String(l.msg)))).toEqual([]);

    // Pulled out: the guest lets go of the device (the image is closed), then the host checks the FAT itself.
    await rec.unplugStorage();
    await waitFor(
      'the recorder undocked',
      () => world.events('recorder.undocked').find((e) => e.volume === volume),
      120_000,
      200,
    );
    const fsck = fsckFat(image);
    expect(fsck).not.toMatch(/dirty bit|Free cluster summary wrong|Orphaned|differ/i);
    const names = fatFiles(image).map((f) => path.posix.basename(f));
    for (const c of [gone1, gone2]) expect(names).not.toContain(path.posix.basename(c.rel));
    expect(names).toContain(path.posix.basename(kept.rel));
    // Everything else on the volume (the kept clip, all three sidecars) is byte-identical.
    const out = path.join(world.dir, 'fat-out');
    await fs.mkdir(out);
    const others = files.filter((f) => f.rel !== gone1.rel && f.rel !== gone2.rel);
    expect(others).toHaveLength(4);
    for (const [i, f] of others.entries()) {
      expect(names).toContain(path.posix.basename(f.rel));
      if (!/^[\x20-\x7e]+$/.test(f.rel)) continue; // mtools names it in the host's charset: the deep one is compared by name
      const dest = path.join(out, String(i));
      fatCopyOut(image, f.rel, dest);
      expect(await sha256OfFile(dest), f.rel).toBe(await sha256OfFile(f.source));
    }
    console.log(`fsck.vfat -n after the wipe:\n${fsck.trim()}`);
    await rec.close();
  });
});
