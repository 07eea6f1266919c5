import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';
import { useStation } from '../helpers/station.ts';
import { writeFirstHalf } from '../helpers/brokenFiles.ts';
import { dockctlFiles } from '../helpers/dockctlJson.ts';
import { eventsOf, waitForIngestFinished } from '../helpers/stationReports.ts';
import { sha256Of } from '../helpers/trees.ts';

const sidecar = (caseNo: string) => JSON.stringify({ caseNo, purpose: '现场检查', place: '幸福路12号' });

describe('damaged recordings are evidence too', () => {
  const station = useStation();

  it('stores, annotates and uploads truncated and garbled clips with integrity=damaged; a killed ffprobe is retried, never a verdict; only the empty file is rejected', async () => {
    const world = await station.world();
    // ffprobe as the station runs it, behind a wrapper the test can make die by SIGKILL (as on an overloaded station).
    const bin = path.join(station.dir, 'bin');
    const killMarker = path.join(station.dir, 'kill-ffprobe');
    await fs.mkdir(bin);
    await fs.writeFile(
      path.join(bin, 'ffprobe'),
      `#!/bin/sh\nif [ -e '${killMarker}' ]; then kill -9 $$; fi\nexec /usr/bin/ffprobe "$@"\n`,
      { mode: 0o755 },
    );
    await fs.writeFile(killMarker, '');
    await station.subscribe();
    await station.startDaemon(world.configFile, { env: { PATH: `${bin}:${process.env.PATH}` } });

    const n = {
      trunc: recordingName({ at: '20261128120000', seq: 1 }),
      garbage: recordingName({ at: '20261128120100', seq: 2 }),
      wav: recordingName({ at: '20261128120200', seq: 3, ext: 'wav' }),
      truncFast: recordingName({ at: '20261128120300', seq: 4 }),
      empty: recordingName({ at: '20261128120400', seq: 5 }),
    };
    const garbage = randomBytes(200 * 1024);
    let truncBytes!: Buffer;
    let wavBytes!: Buffer;
    let truncFastBytes!: Buffer;
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      truncBytes = await writeFirstHalf(await sampleMedia('video', 3, 401), path.join(v, n.trunc));
      await fs.writeFile(path.join(v, n.trunc.replace('.mp4', '.meta.json')), sidecar('D-TRUNC'));
      await fs.writeFile(path.join(v, n.garbage), garbage);
      await fs.writeFile(path.join(v, n.garbage.replace('.mp4', '.meta.json')), sidecar('D-GARBAGE'));
      wavBytes = await writeFirstHalf(await sampleMedia('audio-wav', 3, 402), path.join(v, n.wav));
      await fs.writeFile(path.join(v, n.wav.replace('.wav', '.meta.json')), sidecar('D-WAV'));
      truncFastBytes = await writeFirstHalf(await sampleMedia('video-faststart', 3, 403), path.join(v, n.truncFast)); // no sidecar: held
      await fs.writeFile(path.join(v, n.empty), '');
    });
    const sha = {
      trunc: sha256Of(truncBytes),
      garbage: sha256Of(garbage),
      wav: sha256Of(wavBytes),
      truncFast: sha256Of(truncFastBytes),
      empty: sha256Of(''),
    };

    // Every file is copied and hashed (safe to undock: the store has them all) while verification cannot run.
    const finished = await waitForIngestFinished(station.daemon!, 1);
    expect(finished).toMatchObject({ state: 'done', safeToUndock: true, copied: 5, rejected: 1 });
    await waitFor(
      'a probe attempt on every non-empty file',
      async () => (await dockctlFiles(world.configFile, 'stored')).filter((f) => f.probeAttempts >= 1).length === 4,
      60_000,
    );
    const waiting = await dockctlFiles(world.configFile, 'stored');
    for (const f of waiting) {
      expect(f, f.filename).toMatchObject({
        integrity: null,
        lastError: expect.stringMatching(/ffprobe was killed \(SIGKILL\)/),
        probeAfter: expect.any(String),
      });
    }
    expect(eventsOf(station.sub!.messages, 'file.damaged')).toEqual([]);
    expect((await dockctlFiles(world.configFile, 'rejected')).map((f) => f.sha256)).toEqual([sha.empty]);
    expect(station.tus.finished).toEqual([]);
    const listed = await runDockctl(world.configFile, ['files']);
    expect(listed.stdout).toMatch(/verification could not run: ffprobe was killed/);

    // The station recovers: the next retry gives verdicts, and the damaged clips with metadata go to HQ.
    await fs.rm(killMarker);
    await waitFor('the three damaged clips with metadata at HQ', () => station.tus.finished.length >= 3, 180_000);
    // Each file retries on its own schedule, so the held one's verdict may come after the others have gone up.
    await waitFor(
      'a verdict on the held recording too',
      async () => (await dockctlFiles(world.configFile)).find((f) => f.sha256 === sha.truncFast)?.integrity != null,
      180_000,
    );
    const rows = Object.fromEntries((await dockctlFiles(world.configFile)).map((f) => [f.sha256, f]));
    for (const k of ['trunc', 'garbage', 'wav'] as const) {
      expect(rows[sha[k]], k).toMatchObject({
        integrity: 'damaged',
        state: expect.stringMatching(/^(uploaded|uploading)$/),
        integrityNote: expect.any(String),
      });
      const meta = station.tus.finished.find((u) => u.sha256 === sha[k])?.metadata;
      expect(meta, k).toMatchObject({
        integrity: 'damaged',
        integrityNote: rows[sha[k]].integrityNote,
        caseNo: `D-${k === 'trunc' ? 'TRUNC' : k === 'wav' ? 'WAV' : 'GARBAGE'}`,
      });
    }
    expect(rows[sha.wav].integrityNote).toMatch(/truncated: the WAVE header declares/);
    expect(rows[sha.garbage].integrityNote).toMatch(/not a readable video file/);
    expect(rows[sha.empty]).toMatchObject({ state: 'rejected', reason: expect.stringMatching(/0 bytes/) });

    // The held one is damaged too, gets a playable copy beside it, takes the same annotation, and goes up.
    expect(rows[sha.truncFast]).toMatchObject({ state: 'needs-annotation', integrity: 'damaged' });
    // The copy is made right after the verdict is recorded, so it may still be on its way.
    const playable = await waitFor(
      'the playable copy of the held recording',
      async () => (await dockctlFiles(world.configFile)).find((f) => f.sha256 === sha.truncFast)?.playableCopySha256,
    );
    expect(playable).toMatch(/^[0-9a-f]{64}$/);
    const copy = path.join(world.storeDir, 'derived', `${sha.truncFast}.mp4`);
    expect(await sha256OfFile(copy)).toBe(playable);
    expect(
      await sha256OfFile(
        path.join(world.storeDir, 'objects', 'sha256', sha.truncFast.slice(0, 2), sha.truncFast.slice(2, 4), sha.truncFast),
      ),
    ).toBe(sha.truncFast);
    const ann = await runDockctl(world.configFile, [
      'annotate',
      String(rows[sha.truncFast].id),
      '--case-no',
      'D-FAST',
      '--purpose',
      '现场检查',
      '--place',
      '幸福路12号',
    ]);
    expect(ann.code).toBe(0);
    await waitFor(
      'the annotated damaged clip at HQ',
      () => station.tus.finished.some((u) => u.sha256 === sha.truncFast),
      120_000,
    );
    expect(station.tus.finished.find((u) => u.sha256 === sha.truncFast)!.metadata).toMatchObject({
      integrity: 'damaged',
      caseNo: 'D-FAST',
    });
    expect(station.tus.finished.some((u) => u.sha256 === sha.empty || u.sha256 === playable)).toBe(false);

    // dockctl reprobe: a damaged clip stays damaged (the verdict is the file's, not the day's), audited with who asked.
    const again = await runDockctl(world.configFile, ['reprobe', '--all-damaged']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`#${rows[sha.wav].id}: damaged: truncated`));
    expect(again.stdout).toMatch(/already sent to HQ as integrity=damaged/);
    const audit = JSON.parse((await runDockctl(world.configFile, ['audit', '--json'])).stdout) as {
      type: string;
      subject: string | null;
      data: unknown;
    }[];
    expect(
      audit
        .filter((e) => e.type === 'file.reprobed')
        .map((e) => e.subject)
        .sort(),
    ).toEqual([sha.trunc, sha.garbage, sha.wav, sha.truncFast].sort());
    expect((await runDockctl(world.configFile, ['reprobe', String(rows[sha.empty].id)])).stderr).toMatch(/empty file/);
    expect(await station.daemon!.stop()).toBe(0);
  }, 360_000);
});
