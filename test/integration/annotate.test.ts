import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { blobsWithSharedPrefix } from '../helpers/brokenFiles.ts';
import { dockctlFiles, type PublicFile, waitForSettledCatalog } from '../helpers/dockctlJson.ts';
import { eventsOf, waitForIngestFinished } from '../helpers/stationReports.ts';
import { sha256Of } from '../helpers/trees.ts';
import { uploadsCreated } from '../helpers/tusServer.ts';

const metaName = (n: string) => n.replace(/\.mp4$/, '.meta.json');

describe('recordings missing required metadata: held as needs-annotation until dockctl annotate completes them', () => {
  const station = useStation();

  it('holds, reports and releases recordings by sha256 prefix or id, and refuses what it cannot annotate', async () => {
    const world = await station.world();
    const mq = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    const media = {
      a: await sampleMedia('video', 2, 301),
      b: await sampleMedia('video', 2, 302),
      c: await sampleMedia('video', 2, 303),
      d: await sampleMedia('video', 2, 304),
    };
    const n = {
      a: recordingName({ at: '20261128100000', seq: 1 }),
      b: recordingName({ at: '20261128100100', seq: 2 }),
      c: recordingName({ at: '20261128100200', seq: 3 }),
      d: recordingName({ at: '20261128100300', seq: 4 }),
      e1: recordingName({ at: '20261128100400', seq: 5 }),
      e2: recordingName({ at: '20261128100500', seq: 6 }),
      empty: recordingName({ at: '20261128100600', seq: 7 }),
    };
    // Two (damaged) files whose sha256 share a 6-digit prefix, to make that prefix ambiguous; and an empty one (rejected).
    const twins = blobsWithSharedPrefix(6);
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await fs.copyFile(media.a, path.join(v, n.a));
      await fs.writeFile(
        path.join(v, metaName(n.a)),
        JSON.stringify({ caseNo: 'C-A', purpose: '现场检查', place: '幸福路12号' }),
      );
      await fs.copyFile(media.b, path.join(v, n.b)); // no sidecar
      await fs.copyFile(media.c, path.join(v, n.c)); // no sidecar
      await fs.copyFile(media.d, path.join(v, n.d));
      await fs.writeFile(path.join(v, metaName(n.d)), JSON.stringify({ caseNo: 'C-D' })); // place and purpose missing
      await fs.writeFile(path.join(v, n.e1), twins.a);
      await fs.writeFile(path.join(v, n.e2), twins.b);
      await fs.writeFile(path.join(v, n.empty), '');
    });
    const sha = {
      a: await sha256OfFile(media.a),
      b: await sha256OfFile(media.b),
      c: await sha256OfFile(media.c),
      d: await sha256OfFile(media.d),
      e1: sha256Of(twins.a),
      e2: sha256Of(twins.b),
      empty: sha256Of(''),
    };

    await waitForIngestFinished(daemon, 1);
    const rows = await waitForSettledCatalog(world.configFile, 7);
    const row = (s: string) => rows.find((r) => r.sha256 === s)!;
    expect(Object.fromEntries(Object.entries(sha).map(([k, s]) => [k, row(s)?.state]))).toEqual({
      a: 'uploaded',
      b: 'needs-annotation',
      c: 'needs-annotation',
      d: 'needs-annotation',
      e1: 'needs-annotation',
      e2: 'needs-annotation',
      empty: 'rejected',
    });

    // The held recordings never reached HQ: the only upload the server was ever asked to create is the ready one.
    await waitFor('the ready clip verified by the server', () => station.tus.finished.length >= 1, 180_000);
    expect(station.tus.finished.map((u) => u.sha256)).toEqual([sha.a]);
    expect((await uploadsCreated(path.join(station.dir, 'hq'))).map((u) => u.metadata.sha256)).toEqual([sha.a]);

    // What is missing is named in the catalog and on MQTT.
    expect(row(sha.b).reason).toMatch(/案件编号 case no\..*采集地点 place.*证明对象 purpose/);
    expect(row(sha.b).reason).not.toMatch(/collector|capture time/);
    expect(row(sha.d).reason).toMatch(/采集地点 place.*证明对象 purpose/);
    expect(row(sha.d).reason).not.toMatch(/case no/);
    await waitFor('file.needs-annotation events', () => eventsOf(mq.messages, 'file.needs-annotation').length >= 5, 120_000);
    const held = eventsOf(mq.messages, 'file.needs-annotation');
    expect(held.map((e) => e.sha256).sort()).toEqual([sha.b, sha.c, sha.d, sha.e1, sha.e2].sort()); // the damaged twins too
    expect(held.find((e) => e.sha256 === sha.b)).toMatchObject({
      id: row(sha.b).id,
      filename: n.b,
      missing: ['caseNo', 'place', 'purpose'],
    });
    expect(held.find((e) => e.sha256 === sha.d)).toMatchObject({
      id: row(sha.d).id,
      filename: n.d,
      missing: ['place', 'purpose'],
    });

    // `dockctl files --state needs-annotation` lists exactly those.
    const heldFiles = await dockctlFiles(world.configFile, 'needs-annotation');
    expect(heldFiles.map((f) => f.sha256).sort()).toEqual([sha.b, sha.c, sha.d, sha.e1, sha.e2].sort());
    expect(heldFiles.every((f) => f.state === 'needs-annotation' && /missing/.test(f.reason ?? ''))).toBe(true);

    // `dockctl status`: JSON and text both show the held recordings.
    const statusJson = await runDockctl(world.configFile, ['status', '--json']);
    expect(statusJson.code).toBe(0);
    const st = JSON.parse(statusJson.stdout) as {
      queue: Record<string, number>;
      needsAnnotation: { id: number; sha256: string; filename: string; reason: string }[];
    };
    expect(st.queue['needs-annotation']).toBe(5);
    expect(st.needsAnnotation.map((h) => h.sha256).sort()).toEqual([sha.b, sha.c, sha.d, sha.e1, sha.e2].sort());
    expect(st.needsAnnotation.find((h) => h.sha256 === sha.d)).toEqual({
      id: row(sha.d).id,
      sha256: sha.d,
      filename: n.d,
      reason: row(sha.d).reason,
    });
    const statusText = await runDockctl(world.configFile, ['status']);
    expect(statusText.code).toBe(0);
    expect(statusText.stdout).toContain('needs annotation (5)');
    for (const s of [sha.b, sha.c, sha.d]) {
      const line = statusText.stdout.split('\n').find((l) => l.includes(s.slice(0, 12)));
      expect(line, `a status line for ${s}`).toBeDefined();
      expect(line).toContain(`#${row(s).id}`);
      expect(line).toContain(row(s).filename);
      expect(line).toContain('missing');
    }

    // Refusals: each exits non-zero with a message that says why, and changes nothing.
    const annotate = (id: string, ...extra: string[]) => runDockctl(world.configFile, ['annotate', id, ...extra]);
    const full = ['--case-no', 'X-1', '--purpose', '查封扣押', '--place', '人民路8号'];
    const unknownId = await annotate('987654321', ...full);
    expect(unknownId.code).not.toBe(0);
    expect(unknownId.stderr).toMatch(/no recording with id (or sha256 prefix )?987654321/);
    const unknownName = await annotate('no-such-file', ...full);
    expect(unknownName.code).not.toBe(0);
    expect(unknownName.stderr).toMatch(/no recording with id no-such-file/);
    expect(twins.prefix).toBe(sha.e1.slice(0, 6));
    const ambiguous = await annotate(twins.prefix, ...full);
    expect(ambiguous.code).not.toBe(0);
    expect(ambiguous.stderr).toMatch(new RegExp(`${twins.prefix}.*not unique`));
    const uploaded = await annotate(sha.a.slice(0, 12), ...full);
    expect(uploaded.code).not.toBe(0);
    expect(uploaded.stderr).toMatch(new RegExp(`#${row(sha.a).id} is uploaded`));
    const rejected = await annotate(sha.empty, ...full);
    expect(rejected.code).not.toBe(0);
    expect(rejected.stderr).toMatch(new RegExp(`#${row(sha.empty).id} is rejected`));
    const noPurpose = await annotate(String(row(sha.d).id), '--case-no', 'X-4');
    expect(noPurpose.code).not.toBe(0);
    expect(noPurpose.stderr).toMatch(/--purpose/);
    const unchanged = Object.fromEntries((await dockctlFiles(world.configFile)).map((f) => [f.sha256, f]));
    for (const s of Object.values(sha)) {
      expect(unchanged[s!]).toMatchObject({
        state: row(s).state,
        caseNo: row(s).caseNo,
        purpose: row(s).purpose,
        place: row(s).place,
        collector: row(s).collector,
      });
    }

    // By sha256 prefix: B gets its metadata and is uploaded with it.
    const byPrefix = await annotate(sha.b.slice(0, 10), '--case-no', 'X-2', '--purpose', '现场执法', '--place', '解放路1号');
    expect(byPrefix.code, byPrefix.stderr).toBe(0);
    expect(byPrefix.stdout).toMatch(/ready/);
    await waitFor('B uploaded after its annotation', () => station.tus.finished.some((u) => u.sha256 === sha.b), 180_000);
    expect(station.tus.finished.find((u) => u.sha256 === sha.b)!.metadata).toMatchObject({
      filename: n.b,
      sha256: sha.b,
      caseNo: 'X-2',
      purpose: '现场执法',
      place: '解放路1号',
      collector: '张三',
      officerId: '012345',
      deviceSerial: '1234567',
      capturedAt: '2026-11-28T10:01:00+08:00',
    });

    // By numeric id, naming a collector too.
    const byId = await annotate(
      String(row(sha.c).id),
      '--case-no',
      'X-3',
      '--purpose',
      '调查取证',
      '--place',
      '建设路3号',
      '--collector',
      '王五',
    );
    expect(byId.code, byId.stderr).toBe(0);
    await waitFor('C uploaded after its annotation', () => station.tus.finished.some((u) => u.sha256 === sha.c), 180_000);
    expect(station.tus.finished.find((u) => u.sha256 === sha.c)!.metadata).toMatchObject({
      caseNo: 'X-3',
      purpose: '调查取证',
      place: '建设路3号',
      collector: '王五',
    });

    // Without --place on a recording that has no place: saved, but still held, and the place is named as missing.
    const noPlace = await annotate(String(row(sha.d).id), '--case-no', 'X-4', '--purpose', '现场检查');
    expect(`${noPlace.stdout}${noPlace.stderr}`).toMatch(/still held/);
    expect(`${noPlace.stdout}${noPlace.stderr}`).toMatch(/采集地点 place/);
    const dHeld = (await dockctlFiles(world.configFile, 'needs-annotation')).find((f) => f.sha256 === sha.d);
    expect(dHeld).toMatchObject({ state: 'needs-annotation', caseNo: 'X-4', purpose: '现场检查', place: null });
    expect(dHeld!.reason).toMatch(/采集地点 place/);
    expect(dHeld!.reason).not.toMatch(/purpose|case no/);

    // The B and C uploads are done and nothing else is in flight, so D has had every chance to leak out: it has not.
    await waitForSettledCatalog(world.configFile, 7);
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([sha.a, sha.b, sha.c].sort());
    expect((await uploadsCreated(path.join(station.dir, 'hq'))).some((u) => u.metadata.sha256 === sha.d)).toBe(false);

    const withPlace = await annotate(sha.d.slice(0, 16), '--case-no', 'X-4', '--purpose', '现场检查', '--place', '胜利路9号');
    expect(withPlace.code, withPlace.stderr).toBe(0);
    await waitFor('D uploaded after its place was given', () => station.tus.finished.some((u) => u.sha256 === sha.d), 180_000);
    expect(station.tus.finished.find((u) => u.sha256 === sha.d)!.metadata).toMatchObject({
      caseNo: 'X-4',
      purpose: '现场检查',
      place: '胜利路9号',
      collector: '张三',
    });

    // Everything annotated has been released (the damaged twins, never annotated here, are still held); each recording
    // went to HQ exactly once.
    const final = await waitForSettledCatalog(world.configFile, 7);
    expect(
      final
        .filter((f: PublicFile) => f.state === 'uploaded')
        .map((f) => f.sha256)
        .sort(),
    ).toEqual([sha.a, sha.b, sha.c, sha.d].sort());
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([sha.a, sha.b, sha.c, sha.d].sort());
    expect((await dockctlFiles(world.configFile, 'needs-annotation')).map((f) => f.sha256).sort()).toEqual(
      [sha.e1, sha.e2].sort(),
    );
    const after = await runDockctl(world.configFile, ['status', '--json']);
    expect((JSON.parse(after.stdout).needsAnnotation as { sha256: string }[]).map((h) => h.sha256).sort()).toEqual(
      [sha.e1, sha.e2].sort(),
    );
    await waitFor(
      'file.uploaded events for the annotated recordings',
      () => {
        const up = eventsOf(mq.messages, 'file.uploaded').map((e) => e.sha256);
        return [sha.b, sha.c, sha.d].every((s) => up.includes(s));
      },
      120_000,
    );

    expect(await daemon.stop()).toBe(0);
  }, 400_000);
});
