import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { writeFirstHalf } from '../helpers/brokenFiles.ts';
import { dockctlFiles, waitForSettledCatalog } from '../helpers/dockctlJson.ts';
import { eventsOf, waitForIngestFinished } from '../helpers/stationReports.ts';
import { objectPath, storedObjectNames } from '../helpers/storeOnDisk.ts';
import { contentHashesUnder, sha256Of, treeFingerprint } from '../helpers/trees.ts';

const run = promisify(execFile);
const sidecar = (caseNo: string) => JSON.stringify({ caseNo, purpose: '现场检查', place: '幸福路12号' });
const metaName = (n: string) => n.replace(/\.mp4$/i, '.meta.json');

describe('a hostile recorder volume: broken clips, symlinks, fifos, odd names and deep folders', () => {
  const station = useStation();

  it('uploads good and damaged clips alike (integrity says which), rejects only the empty one, takes odd names and deep folders, never follows links, and leaves the volume untouched', async () => {
    const world = await station.world();
    const mq = await station.subscribe();
    const daemon = await station.startDaemon(world.configFile);

    // Content that lives outside the volume and is reachable from it only through symlinks.
    const outside = path.join(station.dir, 'outside');
    await fs.mkdir(path.join(outside, 'dir'), { recursive: true });
    const secretClip = await sampleMedia('video', 2, 204);
    const secret = path.join(outside, 'secret.mp4');
    await fs.copyFile(secretClip, secret);
    const linkedDirName = recordingName({ at: '20261128080600', seq: 7 });
    const linkedDirClip = await sampleMedia('video', 2, 205);
    await fs.copyFile(linkedDirClip, path.join(outside, 'dir', linkedDirName));
    await fs.writeFile(path.join(outside, 'dir', metaName(linkedDirName)), sidecar('LEAK-DIR'));
    await fs.writeFile(
      path.join(outside, 'leak.meta.json'),
      JSON.stringify({ caseNo: 'LEAK-SIDECAR', purpose: 'leak', place: 'outside' }),
    );

    const valid = await sampleMedia('video', 2, 201);
    const truncSource = await sampleMedia('video', 2, 202);
    const truncFastSource = await sampleMedia('video-faststart', 2, 203);
    const oddClip = await sampleMedia('video', 2, 206);
    const badNameClip = await sampleMedia('video', 2, 207);
    // Each odd name its own content, so each has a row of its own: two copies of one content make one row, named by
    // whichever of them the catalog took first (the copies run side by side, so either may).
    const lineBreakClip = await sampleMedia('video', 2, 212);
    const junkSidecarClip = await sampleMedia('video', 2, 210);
    const deepClip = await sampleMedia('video', 2, 211);
    const linkedSidecarClip = await sampleMedia('video', 2, 208);
    const corrupt = randomBytes(96 * 1024);

    const n = {
      valid: recordingName({ at: '20261128080000', seq: 1 }),
      corrupt: recordingName({ at: '20261128080100', seq: 2 }),
      trunc: recordingName({ at: '20261128080200', seq: 3 }),
      truncFast: recordingName({ at: '20261128080300', seq: 4 }),
      empty: recordingName({ at: '20261128080400', seq: 5 }),
      symlink: recordingName({ at: '20261128080500', seq: 6 }),
      fifo: recordingName({ at: '20261128080800', seq: 9 }),
      linkedSidecar: recordingName({ at: '20261128080900', seq: 10 }),
      odd: 'clip with  spaces 现场录像 ü.MP4',
      junkSidecar: recordingName({ at: '20261128081000', seq: 13 }),
    };
    // Beside the volume, directly under the mount root: a symlink to a directory of recordings and a stray file.
    // Neither is a docked recorder.
    await fs.symlink(path.join(outside, 'dir'), path.join(world.mountRoot, 'EVIL'));
    await fs.writeFile(path.join(world.mountRoot, 'stray.mp4'), await fs.readFile(secretClip));
    const outsideBefore = await treeFingerprint(outside);
    let truncBytes!: Buffer;
    let truncFastBytes!: Buffer;
    let volumeBefore!: Record<string, string>;
    const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
      const d = path.join(v, 'DCIM');
      await fs.mkdir(d);
      await fs.copyFile(valid, path.join(d, n.valid));
      await fs.writeFile(path.join(d, metaName(n.valid)), sidecar('C-VALID'));
      // Broken recordings, each with complete metadata: damaged, still evidence, uploaded with integrity=damaged.
      await fs.writeFile(path.join(d, n.corrupt), corrupt);
      await fs.writeFile(path.join(d, metaName(n.corrupt)), sidecar('C-CORRUPT'));
      truncBytes = await writeFirstHalf(truncSource, path.join(d, n.trunc));
      await fs.writeFile(path.join(d, metaName(n.trunc)), sidecar('C-TRUNC'));
      truncFastBytes = await writeFirstHalf(truncFastSource, path.join(d, n.truncFast));
      await fs.writeFile(path.join(d, metaName(n.truncFast)), sidecar('C-TRUNC-FAST'));
      await fs.writeFile(path.join(d, n.empty), '');
      await fs.writeFile(path.join(d, metaName(n.empty)), sidecar('C-EMPTY'));
      // A symlink named like a recording (with a real sidecar, so following it would upload it), a symlinked
      // directory full of recordings, and a recording whose sidecar is a symlink to metadata outside the volume.
      await fs.symlink(secret, path.join(d, n.symlink));
      await fs.writeFile(path.join(d, metaName(n.symlink)), sidecar('LEAK-SYMLINK'));
      await fs.symlink('../../outside/dir', path.join(v, 'LINKED'));
      await fs.copyFile(linkedSidecarClip, path.join(d, n.linkedSidecar));
      await fs.symlink(path.join(outside, 'leak.meta.json'), path.join(d, metaName(n.linkedSidecar)));
      // Odd names: spaces and unicode, bytes that are not UTF-8, a newline: all taken (shown escaped).
      await fs.copyFile(oddClip, path.join(d, n.odd));
      await fs.writeFile(path.join(d, metaName(n.odd)), sidecar('C-ODD'));
      await fs.copyFile(
        badNameClip,
        Buffer.concat([
          Buffer.from(`${d}/bad-`),
          Buffer.from([0xff, 0xfe, 0x80]),
          Buffer.from('-012345_1234567_20261128080700_0008.mp4'),
        ]),
      );
      await fs.copyFile(lineBreakClip, path.join(d, 'line\nbreak-012345_1234567_20261128080700_0012.mp4'));
      await fs.writeFile(path.join(d, 'notes.txt'), 'not a recording\n');
      // A sidecar that is binary junk: ignored (the recording is held for annotation), never fatal.
      await fs.copyFile(junkSidecarClip, path.join(d, n.junkSidecar));
      await fs.writeFile(path.join(d, metaName(n.junkSidecar)), randomBytes(4096));
      // A recording buried deeper than any recorder nests its folders: taken all the same.
      const deep = path.join(v, ...Array.from({ length: 20 }, (_, i) => `L${i}`));
      await fs.mkdir(deep, { recursive: true });
      await fs.copyFile(deepClip, path.join(deep, recordingName({ at: '20261128081100', seq: 14 })));
      await fs.writeFile(path.join(deep, metaName(recordingName({ at: '20261128081100', seq: 14 }))), sidecar('C-DEEP'));
      await run('mkfifo', [path.join(d, n.fifo)]);
      volumeBefore = await treeFingerprint(v); // before dockd can see it
    });
    expect(Object.keys(volumeBefore).some((k) => k.startsWith('hex:'))).toBe(true); // the invalid name really is on disk

    const sha = {
      valid: await sha256OfFile(valid),
      odd: await sha256OfFile(oddClip),
      linkedSidecar: await sha256OfFile(linkedSidecarClip),
      junkSidecar: await sha256OfFile(junkSidecarClip),
      corrupt: sha256Of(corrupt),
      trunc: sha256Of(truncBytes),
      truncFast: sha256Of(truncFastBytes),
      empty: sha256Of(''),
      badName: await sha256OfFile(badNameClip),
      lineBreak: await sha256OfFile(lineBreakClip),
      deep: await sha256OfFile(deepClip),
    };
    const forbidden = { secret: await sha256OfFile(secretClip), linkedDir: await sha256OfFile(linkedDirClip) };

    const finished = await waitForIngestFinished(daemon, 1);
    // The newline name holds the same bytes as the non-UTF-8 one: stored once, seen twice.
    expect(finished).toMatchObject({
      state: 'done',
      copied: 11,
      alreadyStored: 0,
      rejected: 1,
      damaged: 3,
      needsAnnotation: 4,
      leftBehind: 0,
      safeToUndock: true,
    });
    const rows = await waitForSettledCatalog(world.configFile, 11);
    await waitFor(
      'the good and the damaged clips with metadata verified by the server',
      () => station.tus.finished.length >= 6,
      180_000,
    );

    // The daemon is still up and serving.
    expect(daemon.proc!.exitCode).toBeNull();
    const status = await runDockctl(world.configFile, ['status', '--json']);
    expect(status.code).toBe(0);
    const view = JSON.parse(status.stdout);
    expect(view).toMatchObject({ daemon: 'running', queue: { uploaded: 6, rejected: 1, 'needs-annotation': 4 } });
    expect(view.recorders.find((r: { name: string }) => r.name === 'REC1')).toMatchObject({
      state: 'done',
      safeToUndock: true,
      leftBehind: [],
    });

    // HQ has every clip with complete metadata, damaged or not, the odd name intact; integrity says which is which.
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual(
      [sha.valid, sha.odd, sha.deep, sha.corrupt, sha.trunc, sha.truncFast].sort(),
    );
    const bySha = Object.fromEntries(rows.map((r) => [r.sha256!, r]));
    expect(bySha[sha.valid]).toMatchObject({ state: 'uploaded', filename: n.valid, caseNo: 'C-VALID', integrity: 'ok' });
    expect(bySha[sha.odd]).toMatchObject({
      state: 'uploaded',
      filename: n.odd,
      sourcePath: path.join('DCIM', n.odd),
      caseNo: 'C-ODD',
    });
    expect(station.tus.finished.find((u) => u.sha256 === sha.odd)!.metadata).toMatchObject({
      filename: n.odd,
      filetype: 'video/mp4',
      caseNo: 'C-ODD',
      deviceSerial: '1234567',
      integrity: 'ok',
    });
    expect(bySha[sha.deep]).toMatchObject({
      state: 'uploaded',
      caseNo: 'C-DEEP',
      sourcePath: [...Array.from({ length: 20 }, (_, i) => `L${i}`), recordingName({ at: '20261128081100', seq: 14 })].join('/'),
    });
    for (const [what, h] of [
      ['corrupt', sha.corrupt],
      ['trunc', sha.trunc],
      ['truncFast', sha.truncFast],
    ] as const) {
      expect(bySha[h], what).toMatchObject({
        state: 'uploaded',
        integrity: 'damaged',
        integrityNote: expect.stringMatching(/not a readable video file|does not demux cleanly/),
      });
      const meta = station.tus.finished.find((u) => u.sha256 === h)!.metadata;
      expect(meta, what).toMatchObject({ integrity: 'damaged', integrityNote: bySha[h].integrityNote });
      expect(await sha256OfFile(objectPath(world.storeDir, h))).toBe(h); // the stored copy is the damaged original, byte for byte
    }
    expect(bySha[sha.corrupt].integrityNote).toMatch(/not a readable video file/);
    const damaged = await dockctlFiles(world.configFile, 'damaged');
    expect(damaged.map((r) => r.sha256).sort()).toEqual([sha.corrupt, sha.trunc, sha.truncFast].sort());

    // The non-UTF-8 name: stored, shown escaped, its raw bytes kept; held for annotation (it has no sidecar).
    const badRaw = Buffer.concat([
      Buffer.from('DCIM/bad-'),
      Buffer.from([0xff, 0xfe, 0x80]),
      Buffer.from('-012345_1234567_20261128080700_0008.mp4'),
    ]);
    expect(bySha[sha.badName]).toMatchObject({
      state: 'needs-annotation',
      filename: 'bad-\\xff\\xfe\\x80-012345_1234567_20261128080700_0008.mp4',
      sourcePathHex: badRaw.toString('hex'),
    });
    expect(bySha[sha.lineBreak]).toMatchObject({
      state: 'needs-annotation',
      filename: 'line\\x0abreak-012345_1234567_20261128080700_0012.mp4',
    });

    // Only the empty file is rejected; its (zero) bytes are kept and listed.
    const rejected = await dockctlFiles(world.configFile, 'rejected');
    expect(rejected.map((r) => r.sha256)).toEqual([sha.empty]);
    expect(bySha[sha.empty]).toMatchObject({ filename: n.empty, size: 0, reason: expect.stringMatching(/0 bytes/) });
    const obj = objectPath(world.storeDir, sha.empty);
    expect(await sha256OfFile(obj)).toBe(sha.empty);
    expect((await fs.stat(obj)).mode & 0o777).toBe(0o444);
    await waitFor(
      'file.rejected and file.damaged events',
      () => eventsOf(mq.messages, 'file.damaged').length >= 3 && eventsOf(mq.messages, 'file.rejected').length >= 1,
      120_000,
    );
    expect(eventsOf(mq.messages, 'file.rejected').map((e) => e.sha256)).toEqual([sha.empty]);
    expect(
      eventsOf(mq.messages, 'file.damaged')
        .map((e) => e.sha256)
        .sort(),
    ).toEqual([sha.corrupt, sha.trunc, sha.truncFast].sort());

    // A recording whose sidecar is a symlink gets no metadata through it: it is held, not filled from outside.
    expect(bySha[sha.linkedSidecar]).toMatchObject({ state: 'needs-annotation', caseNo: null, purpose: null, place: null });
    expect(bySha[sha.junkSidecar]).toMatchObject({ state: 'needs-annotation', caseNo: null, purpose: null, place: null });
    expect(daemon.logs.some((l) => l.msg === 'sidecar ignored' && l.path === path.join('DCIM', n.junkSidecar))).toBe(true);

    // Symlinks, the symlinked directory, the fifo and the text file: skipped, each with a reason; odd names and deep folders are not.
    const docked = eventsOf(mq.messages, 'recorder.docked');
    expect(docked).toHaveLength(1);
    const skipped = docked[0].skipped as { relPath: string; reason: string }[];
    const reasonFor = (pred: (p: string) => boolean) => skipped.find((s) => pred(s.relPath))?.reason;
    expect(reasonFor((p) => p === path.join('DCIM', n.symlink))).toMatch(/symbolic link/);
    expect(reasonFor((p) => p === 'LINKED')).toMatch(/symbolic link/);
    expect(reasonFor((p) => p === path.join('DCIM', metaName(n.linkedSidecar)))).toMatch(/symbolic link/);
    expect(reasonFor((p) => p === path.join('DCIM', n.fifo))).toMatch(/not a regular file/);
    expect(reasonFor((p) => p === path.join('DCIM', 'notes.txt'))).toMatch(/not a recording/);
    expect(
      skipped.filter((s) => s.relPath.includes('bad-') || s.relPath.includes('break-') || s.relPath.startsWith('L0')),
    ).toEqual([]);
    expect(docked[0].leftBehind).toEqual([]);
    expect(rows.map((r) => r.filename)).not.toContain(n.symlink);
    expect(rows.map((r) => r.filename)).not.toContain(n.fifo);
    expect(rows.map((r) => r.filename)).not.toContain(linkedDirName);

    // Nothing from outside the volume is in the store or at HQ, nor any outside metadata.
    const stored = await storedObjectNames(world.storeDir);
    expect(stored).toEqual(Object.values(sha).sort());
    const inStore = await contentHashesUnder(world.storeDir);
    const atHq = await contentHashesUnder(path.join(station.dir, 'hq'));
    for (const [what, h] of Object.entries(forbidden)) {
      expect(inStore.has(h), `${what} in the store`).toBe(false);
      expect(atHq.has(h), `${what} at HQ`).toBe(false);
    }
    expect(atHq.has(sha.valid)).toBe(true); // the check above can see uploads
    expect(JSON.stringify(station.tus.finished.map((u) => u.metadata))).not.toMatch(/LEAK/);
    expect(JSON.stringify(rows)).not.toMatch(/LEAK/);
    expect(await fs.readdir(path.join(world.storeDir, 'tmp'))).toEqual([]);

    // The volume and everything it links to were only read; nothing was written beside it.
    expect(await treeFingerprint(volume)).toEqual(volumeBefore);
    expect(await treeFingerprint(outside)).toEqual(outsideBefore);
    expect((await fs.readdir(world.mountRoot)).sort()).toEqual(['EVIL', 'REC1', 'stray.mp4']);

    // Still taking recorders after all that.
    const later = await sampleMedia('video', 2, 209);
    const laterName = recordingName({ at: '20261128090000', seq: 11 });
    await dockVolume(world.mountRoot, 'REC2', async (v) => {
      await fs.copyFile(later, path.join(v, laterName));
      await fs.writeFile(path.join(v, metaName(laterName)), sidecar('C-LATER'));
    });
    const laterSha = await sha256OfFile(later);
    await waitFor(
      'the clip of the next recorder uploaded',
      () => station.tus.finished.some((u) => u.sha256 === laterSha),
      180_000,
    );
    expect(station.tus.finished).toHaveLength(7);
    // Only the two real volumes were ever docked (the mount-root symlink and stray file never were).
    await waitForIngestFinished(daemon, 2);
    await waitFor('the second recorder.docked event', () => eventsOf(mq.messages, 'recorder.docked').length >= 2, 120_000);
    expect(eventsOf(mq.messages, 'recorder.docked').map((e) => path.basename(e.volume as string))).toEqual(['REC1', 'REC2']);
    expect(daemon.logs.filter((l) => l.msg === 'recorder ingest finished').map((l) => path.basename(l.volume as string))).toEqual(
      ['REC1', 'REC2'],
    );
    expect((await contentHashesUnder(world.storeDir)).has(forbidden.secret)).toBe(false);

    expect(await daemon.stop()).toBe(0);
  }, 300_000);
});
