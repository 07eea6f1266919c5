import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { waitForSettledCatalog } from '../helpers/dockctlJson.ts';
import { eventsOf, ingestFinished, waitForIngestFinished } from '../helpers/stationReports.ts';
import { storedObjectNames } from '../helpers/storeOnDisk.ts';
import { uploadsCreated } from '../helpers/tusServer.ts';

/** Recorders keep their files' times: a re-docked recorder shows the same path, size and mtime. */
const RECORDED_AT = new Date('2026-11-28T02:00:00Z');

async function putClip(volume: string, name: string, media: string, meta?: Record<string, string>): Promise<void> {
  await fs.copyFile(media, path.join(volume, name));
  await fs.utimes(path.join(volume, name), RECORDED_AT, RECORDED_AT);
  if (meta) {
    const side = path.join(volume, name.replace(/\.mp4$/, '.meta.json'));
    await fs.writeFile(side, JSON.stringify(meta));
    await fs.utimes(side, RECORDED_AT, RECORDED_AT);
  }
}

function sightings(storeDir: string, fileId: number): { device_serial: string | null; source_path: string; copied: number }[] {
  const catalog = Catalog.open(storeDir, { readonly: true });
  try {
    return catalog.sightingsOf(fileId);
  } finally {
    catalog.close();
  }
}

describe('re-docking: content already stored is neither copied nor uploaded again', () => {
  const station = useStation();

  it('an undocked and re-docked recorder, and the same clip on a second recorder, are stored and uploaded once', async () => {
    const world = await station.world({
      devices: [
        { serial: '1234567', officerId: '012345', officerName: '张三' },
        { serial: '7654321', officerId: '054321', officerName: '李四' },
      ],
    });
    const mq = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    const media = {
      a: await sampleMedia('video', 2, 501),
      b: await sampleMedia('video', 2, 502),
      c: await sampleMedia('video', 2, 503),
    };
    const sha = { a: await sha256OfFile(media.a), b: await sha256OfFile(media.b), c: await sha256OfFile(media.c) };
    const nameA = recordingName({ at: '20261128100000', seq: 1 });
    const nameB = recordingName({ at: '20261128101000', seq: 2 });
    const buildRec1 = async (v: string) => {
      await putClip(v, nameA, media.a, { caseNo: 'C-A', purpose: '现场检查', place: '幸福路12号' });
      await putClip(v, nameB, media.b, { caseNo: 'C-B', purpose: '现场检查', place: '幸福路12号' });
    };

    const volume = await dockVolume(world.mountRoot, 'REC1', buildRec1);
    expect(await waitForIngestFinished(daemon, 1)).toMatchObject({ state: 'done', copied: 2, alreadyStored: 0 });
    const first = await waitForSettledCatalog(world.configFile, 2);
    expect(first.map((f) => f.state)).toEqual(['uploaded', 'uploaded']);
    await waitFor('both uploads verified by the server', () => station.tus.finished.length >= 2, 180_000);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([sha.a, sha.b].sort());

    // Undock (the volume goes away), then dock the very same recorder again.
    await fs.rm(volume, { recursive: true });
    await daemon.waitForLog((l) => l.msg === 'recorder undocked', 'the undock', 120_000);
    await waitFor('a recorder.undocked event', () => eventsOf(mq.messages, 'recorder.undocked').length === 1, 120_000);
    expect(eventsOf(mq.messages, 'recorder.undocked')[0]).toMatchObject({
      name: 'REC1',
      deviceSerial: '1234567',
      complete: true,
    });
    await dockVolume(world.mountRoot, 'REC1', buildRec1);

    const again = await waitForIngestFinished(daemon, 2);
    expect(again).toMatchObject({ state: 'done', copied: 0, alreadyStored: 2 });
    expect(again.session).not.toBe(ingestFinished(daemon)[0].session);
    const afterRedock = await waitForSettledCatalog(world.configFile, 2);
    expect(afterRedock.map((f) => [f.id, f.sha256, f.state])).toEqual(first.map((f) => [f.id, f.sha256, 'uploaded']));
    expect(station.tus.finished).toHaveLength(2);
    expect(await uploadsCreated(path.join(station.dir, 'hq'))).toHaveLength(2);
    expect(await storedObjectNames(world.storeDir)).toEqual([sha.a, sha.b].sort());
    const idA = first.find((f) => f.sha256 === sha.a)!.id;
    expect(sightings(world.storeDir, idA).map((s) => [s.device_serial, s.source_path, s.copied])).toEqual([
      ['1234567', nameA, 1],
      ['1234567', nameA, 0],
    ]);

    // A second recorder carrying clip A's content (under its own name) and one new clip.
    const nameA2 = recordingName({ officerId: '054321', serial: '7654321', at: '20261128120000', seq: 1 });
    const nameC = recordingName({ officerId: '054321', serial: '7654321', at: '20261128120500', seq: 2 });
    await dockVolume(world.mountRoot, 'REC2', async (v) => {
      await putClip(v, nameA2, media.a, { caseNo: 'C-A2', purpose: '复制', place: '人民路8号' });
      await putClip(v, nameC, media.c, { caseNo: 'C-C', purpose: '现场检查', place: '人民路8号' });
    });
    expect(await waitForIngestFinished(daemon, 3)).toMatchObject({ state: 'done' });
    await waitFor('the new clip uploaded', () => station.tus.finished.some((u) => u.sha256 === sha.c), 180_000);
    const all = await waitForSettledCatalog(world.configFile, 3);

    // One row and one object per content; every row uploaded, none waiting; each content uploaded exactly once.
    expect(all.map((f) => f.sha256).sort()).toEqual([sha.a, sha.b, sha.c].sort());
    expect(all.every((f) => f.state === 'uploaded')).toBe(true);
    expect(await storedObjectNames(world.storeDir)).toEqual([sha.a, sha.b, sha.c].sort());
    expect(await fs.readdir(path.join(world.storeDir, 'tmp'))).toEqual([]);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([sha.a, sha.b, sha.c].sort());
    expect((await uploadsCreated(path.join(station.dir, 'hq'))).map((u) => u.metadata.sha256).sort()).toEqual(
      [sha.a, sha.b, sha.c].sort(),
    );
    // Clip A keeps its first recording's metadata; the second recorder is a sighting of it, not a copy.
    expect(all.find((f) => f.sha256 === sha.a)).toMatchObject({
      id: idA,
      filename: nameA,
      deviceSerial: '1234567',
      caseNo: 'C-A',
    });
    expect(sightings(world.storeDir, idA).map((s) => [s.device_serial, s.source_path, s.copied])).toEqual([
      ['1234567', nameA, 1],
      ['1234567', nameA, 0],
      ['7654321', nameA2, 0],
    ]);
    const status = JSON.parse((await runDockctl(world.configFile, ['status', '--json'])).stdout);
    expect(status.queue).toMatchObject({ uploaded: 3, ready: 0, uploading: 0, stored: 0, copying: 0 });

    await waitFor('file.uploaded events', () => eventsOf(mq.messages, 'file.uploaded').length >= 3, 120_000);
    expect(
      eventsOf(mq.messages, 'file.uploaded')
        .map((e) => e.sha256)
        .sort(),
    ).toEqual([sha.a, sha.b, sha.c].sort());
    expect(await daemon.stop()).toBe(0);
  }, 300_000);

  it('a restart with a recorder still docked duplicates nothing', async () => {
    const world = await station.world();
    const mq = await station.subscribe();
    let daemon = await station.startDaemon(world.configFile);

    const media = {
      a: await sampleMedia('video', 2, 511),
      b: await sampleMedia('video', 2, 512),
      h: await sampleMedia('video', 2, 513),
    };
    const sha = { a: await sha256OfFile(media.a), b: await sha256OfFile(media.b), h: await sha256OfFile(media.h) };
    const nameH = recordingName({ at: '20261128103000', seq: 3 });
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await putClip(v, recordingName({ at: '20261128100000', seq: 1 }), media.a, {
        caseNo: 'C-A',
        purpose: '现场检查',
        place: '幸福路12号',
      });
      await putClip(v, recordingName({ at: '20261128101000', seq: 2 }), media.b, {
        caseNo: 'C-B',
        purpose: '现场检查',
        place: '幸福路12号',
      });
      await putClip(v, nameH, media.h); // held: no case no., purpose or place
    });
    expect(await waitForIngestFinished(daemon, 1)).toMatchObject({ state: 'done', copied: 3, needsAnnotation: 1 });
    const before = await waitForSettledCatalog(world.configFile, 3);
    await waitFor('both ready clips verified by the server', () => station.tus.finished.length >= 2, 180_000);

    expect(await daemon.stop()).toBe(0);
    daemon = await station.startDaemon(world.configFile);

    // The volume was there at start: it is walked again, and everything on it is recognised as stored.
    expect(await waitForIngestFinished(daemon, 1)).toMatchObject({
      state: 'done',
      copied: 0,
      alreadyStored: 3,
      needsAnnotation: 0,
    });
    const after = await waitForSettledCatalog(world.configFile, 3);
    expect(after.map((f) => [f.id, f.sha256, f.state])).toEqual(before.map((f) => [f.id, f.sha256, f.state]));
    expect(after.find((f) => f.sha256 === sha.h)!.state).toBe('needs-annotation');
    expect(await storedObjectNames(world.storeDir)).toEqual([sha.a, sha.b, sha.h].sort());
    expect(daemon.logs.some((l) => /interrupted by the last stop/.test(l.msg))).toBe(false);

    // Release the held clip; once it is at HQ every event the restart could have duplicated has been delivered.
    const ann = await runDockctl(world.configFile, [
      'annotate',
      sha.h.slice(0, 12),
      '--case-no',
      'C-H',
      '--purpose',
      '取证',
      '--place',
      '幸福路12号',
    ]);
    expect(ann.code, ann.stderr).toBe(0);
    await waitFor('the released clip uploaded', () => station.tus.finished.some((u) => u.sha256 === sha.h), 180_000);
    await waitFor(
      'its file.uploaded event',
      () => eventsOf(mq.messages, 'file.uploaded').some((e) => e.sha256 === sha.h),
      120_000,
    );
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([sha.a, sha.b, sha.h].sort());
    expect(await uploadsCreated(path.join(station.dir, 'hq'))).toHaveLength(3);
    const count = (type: string) =>
      eventsOf(mq.messages, type)
        .map((e) => e.sha256 as string)
        .sort();
    expect(count('file.ingested')).toEqual([sha.a, sha.b, sha.h].sort());
    expect(count('file.needs-annotation')).toEqual([sha.h]);
    expect(count('file.uploaded')).toEqual([sha.a, sha.b, sha.h].sort());
    expect(eventsOf(mq.messages, 'recorder.docked')).toHaveLength(2);

    expect(await daemon.stop()).toBe(0);
  }, 300_000);
  it('a held recording whose sidecar could not be read at its copy takes the sidecar on re-dock, and goes to HQ', async () => {
    const world = await station.world();
    const mq = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);
    const media = await sampleMedia('video', 2, 521);
    const sha = await sha256OfFile(media);
    const name = recordingName({ at: '20261128104000', seq: 4 });

    // First dock: the sidecar is not there (the volume went before it was read): held, as needs-annotation.
    const volume = await dockVolume(world.mountRoot, 'REC1', (v) => putClip(v, name, media));
    expect(await waitForIngestFinished(daemon, 1)).toMatchObject({ state: 'done', copied: 1, needsAnnotation: 1 });
    const [held] = await waitForSettledCatalog(world.configFile, 1);
    expect(held).toMatchObject({ sha256: sha, state: 'needs-annotation', caseNo: null, purpose: null });
    await fs.rm(volume, { recursive: true });
    await daemon.waitForLog((l) => l.msg === 'recorder undocked', 'the undock', 120_000);

    // Re-docked with its sidecar readable: the stored recording takes it, is ready and goes to HQ; nothing is copied again.
    await dockVolume(world.mountRoot, 'REC1', (v) =>
      putClip(v, name, media, { caseNo: 'C-LATE', purpose: '现场检查', place: '幸福路12号', collector: '别人' }),
    );
    expect(await waitForIngestFinished(daemon, 2)).toMatchObject({ state: 'done', copied: 0, alreadyStored: 1 });
    await waitFor('the late-annotated clip uploaded', () => station.tus.finished.some((u) => u.sha256 === sha), 180_000);
    const [after] = await waitForSettledCatalog(world.configFile, 1);
    // The collector the recording had (the officer of the recorder) is kept; the sidecar fills only what was missing.
    expect(after).toMatchObject({ id: held!.id, state: 'uploaded', caseNo: 'C-LATE', purpose: '现场检查', place: '幸福路12号' });
    expect(after!.collector).toBe(held!.collector);
    await waitFor('a file.annotated event', () => eventsOf(mq.messages, 'file.annotated').length >= 1, 60_000);
    expect(eventsOf(mq.messages, 'file.annotated')).toEqual([
      expect.objectContaining({ id: held!.id, sha256: sha, state: 'ready', by: `the recorder's sidecar (${name})` }),
    ]);
    expect(station.tus.finished.filter((u) => u.sha256 === sha)).toHaveLength(1);
    expect(await storedObjectNames(world.storeDir)).toEqual([sha]);
    expect(await daemon.stop()).toBe(0);
  }, 300_000);
});
