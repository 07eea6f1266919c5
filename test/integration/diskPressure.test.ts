/**
 * Disk pressure on a small real filesystem: the store lives on a tmpfs of a few MiB. When the next copy would go below
 * storage.reserveBytes, dockd stops starting copies (the recorder keeps its files), says so in status and on MQTT, and
 * resumes by itself when space returns: either freed by hand, or by retention freeing archived objects after HQ's
 * receipts. Nothing is lost on the way.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import type { Received } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, filesJson, statusJson } from '../helpers/dockctlJson.ts';
import { freeBytes, mountTmpfs, unmount } from '../helpers/mounts.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { listObjects, objectPath } from '../helpers/storeOnDisk.ts';
import { treeFingerprint } from '../helpers/trees.ts';

const MiB = 1 << 20;
const TMPFS_MIB = 24;
const RESERVE = 4 * MiB;

interface AlarmEvent {
  type: 'alarm';
  code: string;
  key: string;
  message: string;
  active: boolean;
}

function alarmEvents(messages: Received[], code: string): AlarmEvent[] {
  return messages
    .filter((m) => m.topic === 'dockd/test-st/event')
    .map((m) => JSON.parse(m.payload) as AlarmEvent)
    .filter((e) => e.type === 'alarm' && e.code === code);
}

/** Clips of a few MiB each (distinct content), with names and complete metadata sidecars. */
async function clips(
  n: number,
  variantBase: number,
  seconds: number,
): Promise<{ src: string; name: string; sha256: string; size: number }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const src = await sampleMedia('video-big', seconds, variantBase + i);
    out.push({
      src,
      name: recordingName({ at: `202611280${i}3000`, seq: i + 1 }),
      sha256: await sha256OfFile(src),
      size: (await fs.stat(src)).size,
    });
  }
  return out;
}

async function dockClips(mountRoot: string, list: { src: string; name: string }[]): Promise<string> {
  return dockVolume(mountRoot, 'REC1', async (v) => {
    await fs.mkdir(path.join(v, 'DCIM'));
    for (const [i, c] of list.entries()) {
      await fs.copyFile(c.src, path.join(v, 'DCIM', c.name));
      await fs.writeFile(
        path.join(v, 'DCIM', c.name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: `C-${i}`, purpose: '现场检查', place: '幸福路12号' }),
      );
    }
  });
}

describe('disk pressure on a small real filesystem (tmpfs)', () => {
  const station = useStation();
  let mnt: string;

  beforeEach(async () => {
    mnt = path.join(station.dir, 'small-fs');
    await mountTmpfs(mnt, TMPFS_MIB);
    station.onCleanup(() => unmount(mnt));
  });

  it('pauses before a copy would go below the reserve, loses nothing, and resumes by itself when space is freed', {
    timeout: 240_000,
  }, async () => {
    const list = await clips(4, 700, 2);
    const c = Math.max(...list.map((x) => x.size));
    expect(c).toBeGreaterThan(2 * MiB); // a few MiB each, so that four cannot fit beside the ballast
    const storeDir = path.join(mnt, 'store');
    // The low-water mark lies between "one clip fits" and "it no longer does": DISK_LOW appears only once the copy of
    // the first clip took the room, i.e. a periodic storage check has run while the copies are paused.
    const lowWater = RESERVE + c;
    const world = await station.world({ extra: { storage: { dir: storeDir, reserveBytes: RESERVE, lowWaterBytes: lowWater } } });
    const sub = await station.subscribe();
    await station.startDaemon(world.configFile);

    // A ballast file leaves room for one clip above the reserve, not two.
    const ballast = path.join(mnt, 'ballast.bin');
    const ballastSize = (await freeBytes(mnt)) - (RESERVE + Math.floor(1.5 * c));
    expect(ballastSize).toBeGreaterThan(c);
    await fs.writeFile(ballast, Buffer.alloc(ballastSize, 0x5a));
    expect(await freeBytes(mnt)).toBeLessThan(RESERVE + 2 * c);

    const volume = await dockClips(world.mountRoot, list);
    const before = await treeFingerprint(volume);

    // Paused: said in dockctl status (recorder and alarm) and on MQTT.
    const paused = await waitFor(
      'the recorder to be paused for lack of disk space',
      async () => {
        const { json } = await statusJson(world.configFile);
        return json.recorders.find((r) => r.state === 'paused') ? json : null;
      },
      60_000,
      250,
    );
    const rec = paused.recorders.find((r) => r.state === 'paused')!;
    expect(rec.error).toMatch(/磁盘空间不足/);
    expect(rec.safeToUndock).toBe(false);
    expect(paused.alarms.find((a) => a.code === 'DISK_FULL')?.message).toMatch(/磁盘空间不足/);
    await waitFor('a DISK_FULL alarm on MQTT', () =>
      alarmEvents(sub.messages, 'DISK_FULL').some((e) => e.active && /磁盘空间不足/.test(e.message)),
    );
    await waitFor('a retained state snapshot showing the paused recorder', () =>
      sub.messages.some(
        (m) =>
          m.topic === 'dockd/test-st/state' &&
          (JSON.parse(m.payload) as { recorders: { state: string }[] }).recorders.some((r) => r.state === 'paused'),
      ),
    );

    // Nothing lost while paused: exactly one clip stored, whole and at its hash; no copying row, no partial object.
    const storedWhilePaused = await filesJson(world.configFile);
    expect(storedWhilePaused).toHaveLength(1);
    expect(storedWhilePaused.map((f) => f.state)).not.toContain('copying');
    expect(await filesJson(world.configFile, ['--state', 'copying'])).toEqual([]);
    const first = list.find((x) => x.sha256 === storedWhilePaused[0].sha256);
    expect(first, 'the stored file is one of the clips').toBeDefined();
    expect(await listObjects(storeDir)).toEqual([
      path.relative(path.join(storeDir, 'objects', 'sha256'), objectPath(storeDir, first!.sha256)),
    ]);
    expect(await sha256OfFile(objectPath(storeDir, first!.sha256))).toBe(first!.sha256);
    expect(await fs.readdir(path.join(storeDir, 'tmp'))).toEqual([]);
    expect(await treeFingerprint(volume)).toEqual(before);
    expect(await freeBytes(mnt)).toBeGreaterThanOrEqual(RESERVE);

    // Still paused, and still saying so, after the periodic storage check has run (it raises DISK_LOW now).
    const checked = await waitFor(
      'a periodic storage check during the pause (DISK_LOW)',
      async () => {
        const { json } = await statusJson(world.configFile);
        return json.alarms.some((a) => a.code === 'DISK_LOW') ? json : null;
      },
      60_000,
      500,
    );
    expect(checked.recorders.map((r) => r.state)).toEqual(['paused']);
    expect(checked.alarms.map((a) => a.code)).toContain('DISK_FULL');
    expect(alarmEvents(sub.messages, 'DISK_FULL').filter((e) => !e.active)).toEqual([]);
    expect(await filesJson(world.configFile)).toHaveLength(1);

    // Space returns: copying resumes by itself; every clip ends stored at its hash.
    await fs.rm(ballast);
    const done = await waitFor(
      'all clips stored and the recorder done',
      async () => {
        const { json } = await statusJson(world.configFile);
        const rows = await filesJson(world.configFile);
        return json.recorders.some((r) => r.state === 'done') && rows.length === list.length ? { json, rows } : null;
      },
      90_000,
      500,
    );
    expect(done.rows.map((f) => f.sha256).sort()).toEqual(list.map((x) => x.sha256).sort());
    expect(done.rows.map((f) => f.state)).not.toContain('copying');
    for (const x of list) expect(await sha256OfFile(objectPath(storeDir, x.sha256))).toBe(x.sha256);
    expect(await listObjects(storeDir)).toHaveLength(list.length);
    expect(await fs.readdir(path.join(storeDir, 'tmp'))).toEqual([]);
    expect(done.json.recorders[0]).toMatchObject({ state: 'done', safeToUndock: true, error: null });
    expect(done.json.alarms.map((a) => a.code)).not.toContain('DISK_FULL');
    await waitFor('DISK_FULL cleared on MQTT', () => alarmEvents(sub.messages, 'DISK_FULL').some((e) => !e.active));
    expect(await treeFingerprint(volume)).toEqual(before);

    // And they go on to HQ as usual.
    await waitFor('all clips verified by HQ', () => station.tus.finished.length === list.length, 90_000);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(list.map((x) => x.sha256).sort());
    const verify = await runDockctl(world.configFile, ['verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, checked: list.length, bad: [] });
    await sub.close();
  });

  it('with retention.localDays 0, HQ receipts free archived objects and the paused copies resume with no space freed by hand', {
    timeout: 300_000,
  }, async () => {
    const list = await clips(3, 720, 3);
    const c = Math.max(...list.map((x) => x.size));
    const storeDir = path.join(mnt, 'store');
    const world = await station.world({
      extra: { storage: { dir: storeDir, reserveBytes: RESERVE, lowWaterBytes: RESERVE + c }, retention: { localDays: 0 } },
    });
    const sub = await station.subscribe();
    // HQ: a receipt for each upload it verified (only after its own re-hash, as the test tus server does).
    const receipted = new Set<string>();
    sub.client.on('message', (topic, payload) => {
      if (topic !== 'dockd/test-st/event') return;
      const e = JSON.parse(payload.toString()) as { type: string; sha256: string };
      if (e.type !== 'file.uploaded' || receipted.has(e.sha256) || !station.tus.finished.some((u) => u.sha256 === e.sha256))
        return;
      receipted.add(e.sha256);
      void sendReceipt(station.broker.url, 'test-st', { sha256: e.sha256, ok: true });
    });
    await station.startDaemon(world.configFile);

    // The ballast stays: only retention can make room. It leaves room for 1.9 clips: one fits, two do not, and once one
    // is freed the next fits even after the catalog's write-ahead log (on the same small filesystem) has grown.
    expect(c).toBeGreaterThan(4.5 * MiB);
    const ballastSize = (await freeBytes(mnt)) - (RESERVE + Math.floor(1.9 * c));
    await fs.writeFile(path.join(mnt, 'ballast.bin'), Buffer.alloc(ballastSize, 0x5a));
    const volume = await dockClips(world.mountRoot, list);
    const before = await treeFingerprint(volume);

    await waitFor('a DISK_FULL alarm on MQTT', () => alarmEvents(sub.messages, 'DISK_FULL').some((e) => e.active), 60_000);
    const whilePaused = await filesJson(world.configFile);
    expect(whilePaused.length).toBeLessThan(list.length);
    expect(whilePaused.map((f) => f.state)).not.toContain('copying');

    const rows = await waitFor(
      'every clip archived',
      async () => {
        const r = await filesJson(world.configFile);
        return r.length === list.length && r.every((f) => f.state === 'archived') ? r : null;
      },
      150_000,
      1000,
    );
    expect(rows.map((f) => f.sha256).sort()).toEqual(list.map((x) => x.sha256).sort());
    // HQ received every clip whole (its own re-hash matched), so nothing was lost although objects were freed.
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(list.map((x) => x.sha256).sort());
    // The room came from retention: freed objects are audited, and the copies resumed (DISK_FULL cleared).
    const deleted = (await dockctlAudit(world.configFile)).filter((a) => a.type === 'object.deleted');
    expect(deleted.length).toBeGreaterThanOrEqual(1);
    for (const d of deleted) {
      expect(list.map((x) => x.sha256)).toContain(d.subject);
      await expect(fs.access(objectPath(storeDir, d.subject!))).rejects.toThrow();
    }
    expect(alarmEvents(sub.messages, 'DISK_FULL').some((e) => !e.active)).toBe(true);
    expect(await fs.readdir(path.join(storeDir, 'tmp'))).toEqual([]);
    for (const rel of await listObjects(storeDir))
      expect(await sha256OfFile(path.join(storeDir, 'objects', 'sha256', rel))).toBe(path.basename(rel));
    expect(await treeFingerprint(volume)).toEqual(before);
    const verify = await runDockctl(world.configFile, ['verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    await sub.close();
  });
});
