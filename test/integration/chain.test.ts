import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { treeFingerprint } from '../helpers/trees.ts';

describe('the whole chain: docked volume → hashed copy → metadata → tus upload → MQTT status', () => {
  const station = useStation();

  it('uploads every complete recording exactly once with the contract metadata, and reports it on MQTT', async () => {
    const world = await station.world();
    const sub = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    const clip = await sampleMedia('video', 2, 11);
    const photo = await sampleMedia('photo', 1, 12);
    const name1 = recordingName({ at: '20261128083000', seq: 1 });
    const name2 = recordingName({ at: '20261128084500', seq: 2, important: true, ext: 'jpg', deviceFirst: true });
    const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await fs.mkdir(path.join(v, 'DCIM'));
      await fs.copyFile(clip, path.join(v, 'DCIM', name1));
      await fs.writeFile(
        path.join(v, 'DCIM', name1.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'C-1', purpose: '现场检查', place: '幸福路12号' }),
      );
      await fs.copyFile(photo, path.join(v, name2));
      await fs.writeFile(
        path.join(v, name2.replace('.jpg', '.meta.json')),
        JSON.stringify({ caseNo: 'C-2', purpose: '取证', place: '人民路8号', collector: '李四' }),
      );
    });
    const before = await treeFingerprint(volume);

    await waitFor('both uploads verified by the server', () => station.tus.finished.length === 2, 60_000);
    const clipSha = await sha256OfFile(clip);
    const photoSha = await sha256OfFile(photo);
    const bySha = Object.fromEntries(station.tus.finished.map((u) => [u.sha256, u]));
    expect(Object.keys(bySha).sort()).toEqual([clipSha, photoSha].sort());
    expect(bySha[clipSha].metadata).toMatchObject({
      filename: name1,
      filetype: 'video/mp4',
      sha256: clipSha,
      size: String((await fs.stat(clip)).size),
      stationId: 'test-st',
      deviceSerial: '1234567',
      officerId: '012345',
      caseNo: 'C-1',
      capturedAt: '2026-11-28T08:30:00+08:00',
      place: '幸福路12号',
      collector: '张三',
      purpose: '现场检查',
      important: '0',
    });
    expect(bySha[photoSha].metadata).toMatchObject({
      filetype: 'image/jpeg',
      important: '1',
      collector: '李四',
      capturedAt: '2026-11-28T08:45:00+08:00',
    });

    const files = await waitFor('catalog shows both uploaded', async () => {
      const r = await runDockctl(world.configFile, ['files', '--json']);
      const rows = JSON.parse(r.stdout) as { state: string; sha256: string }[];
      return rows.length === 2 && rows.every((f) => f.state === 'uploaded') ? rows : null;
    });
    expect(files.map((f) => f.sha256).sort()).toEqual([clipSha, photoSha].sort());

    // Stored objects are write-once copies at their content address.
    const obj = path.join(world.storeDir, 'objects', 'sha256', clipSha.slice(0, 2), clipSha.slice(2, 4), clipSha);
    expect(await sha256OfFile(obj)).toBe(clipSha);
    expect((await fs.stat(obj)).mode & 0o777).toBe(0o444);

    // The volume was only read.
    expect(await treeFingerprint(volume)).toEqual(before);

    // MQTT: retained online, a state snapshot with the recorder, and the events.
    await waitFor(
      'file.uploaded events',
      () => sub.messages.filter((m) => m.topic.endsWith('/event') && JSON.parse(m.payload).type === 'file.uploaded').length === 2,
    );
    const types = sub.messages.filter((m) => m.topic === 'dockd/test-st/event').map((m) => JSON.parse(m.payload).type);
    expect(types).toEqual(expect.arrayContaining(['recorder.docked', 'file.ingested', 'file.uploaded']));
    expect(sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'online')).toBe(true);
    const states = sub.messages.filter((m) => m.topic === 'dockd/test-st/state').map((m) => JSON.parse(m.payload));
    expect(
      states.some((s) =>
        s.recorders.some(
          (r: { serial: string; officerId: string; safeToUndock: boolean }) =>
            r.serial === '1234567' && r.officerId === '012345' && r.safeToUndock,
        ),
      ),
    ).toBe(true);

    const status = await runDockctl(world.configFile, ['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ daemon: 'running', queue: { uploaded: 2 } });

    // Clean stop: exit 0 and a retained offline.
    expect(await daemon.stop()).toBe(0);
    await waitFor('offline', () => sub.messages.some((m) => m.topic === 'dockd/test-st/status' && m.payload === 'offline'));
    await sub.close();
  });
});
