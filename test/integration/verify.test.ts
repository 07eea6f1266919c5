import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { waitForSettledCatalog } from '../helpers/dockctlJson.ts';
import { waitForIngestFinished } from '../helpers/stationReports.ts';
import { objectPath } from '../helpers/storeOnDisk.ts';
import { sha256Of } from '../helpers/trees.ts';

interface VerifyJson {
  ok: boolean;
  checked: number;
  bad: { id: number; sha256: string; problem: string }[];
}

describe('dockctl verify: re-hashes every stored object and names each one that is altered or gone', () => {
  const station = useStation();

  it('passes on an intact store, then names a flipped byte and a deleted object, in text and JSON', async () => {
    const world = await station.world();
    const daemon = await station.startDaemon(world.configFile);

    const clips = [await sampleMedia('video', 2, 401), await sampleMedia('video', 2, 402), await sampleMedia('video', 2, 403)];
    const corrupt = randomBytes(64 * 1024); // stored and rejected: verify covers rejected objects too
    const names = clips.map((_, i) => recordingName({ at: `2026112811${String(i).padStart(2, '0')}00`, seq: i + 1 }));
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      for (const [i, c] of clips.entries()) {
        await fs.copyFile(c, path.join(v, names[i]));
        await fs.writeFile(
          path.join(v, names[i].replace('.mp4', '.meta.json')),
          JSON.stringify({ caseNo: `C-${i}`, purpose: '取证', place: '幸福路12号' }),
        );
      }
      await fs.writeFile(path.join(v, recordingName({ at: '20261128115900', seq: 9 })), corrupt);
    });
    const shas = [...(await Promise.all(clips.map((c) => sha256OfFile(c)))), sha256Of(corrupt)];
    await waitForIngestFinished(daemon, 1);
    const rows = await waitForSettledCatalog(world.configFile, 4);
    expect(rows.map((r) => r.sha256).sort()).toEqual([...shas].sort());
    const idOf = (sha: string) => rows.find((r) => r.sha256 === sha)!.id;

    // Intact: exit 0, in both forms.
    const okText = await runDockctl(world.configFile, ['verify']);
    expect(okText.code, okText.stderr).toBe(0);
    expect(okText.stdout).toMatch(/ok: 4 object\(s\) intact/);
    expect(okText.stdout).not.toMatch(/BAD/);
    const okJson = await runDockctl(world.configFile, ['verify', '--json']);
    expect(okJson.code).toBe(0);
    expect(JSON.parse(okJson.stdout)).toMatchObject({ ok: true, checked: 4, bad: [] });

    // Flip one byte of one object (same size, different content).
    const [flipped, deleted] = [shas[1], shas[2]];
    const flippedPath = objectPath(world.storeDir, flipped);
    expect((await fs.stat(flippedPath)).mode & 0o777).toBe(0o444);
    await fs.chmod(flippedPath, 0o644);
    const h = await fs.open(flippedPath, 'r+');
    const b = Buffer.alloc(1);
    const at = Math.floor((await h.stat()).size / 2);
    await h.read(b, 0, 1, at);
    b[0] ^= 0xff;
    await h.write(b, 0, 1, at);
    await h.close();
    await fs.chmod(flippedPath, 0o444);
    expect(await sha256OfFile(flippedPath)).not.toBe(flipped);

    const oneBad = await runDockctl(world.configFile, ['verify']);
    expect(oneBad.code).not.toBe(0);
    const badLines = oneBad.stdout.split('\n').filter((l) => l.startsWith('BAD'));
    expect(badLines).toHaveLength(1);
    expect(badLines[0]).toContain(flipped);
    expect(badLines[0]).toContain(`#${idOf(flipped)}`);
    expect(badLines[0]).toMatch(/content changed/);
    expect(oneBad.stdout).toMatch(/1 of 4 object\(s\) bad/);

    // Delete another object.
    await fs.rm(objectPath(world.storeDir, deleted));
    const twoBad = await runDockctl(world.configFile, ['verify']);
    expect(twoBad.code).not.toBe(0);
    const lines = twoBad.stdout.split('\n').filter((l) => l.startsWith('BAD'));
    expect(lines).toHaveLength(2);
    const missingLine = lines.find((l) => l.includes(deleted));
    expect(missingLine).toContain(`#${idOf(deleted)}`);
    expect(missingLine).toMatch(/missing/);
    expect(lines.find((l) => l.includes(flipped))).toMatch(/content changed/);
    expect(twoBad.stdout).toMatch(/2 of 4 object\(s\) bad/);
    for (const good of [shas[0], shas[3]]) expect(twoBad.stdout).not.toContain(good);

    const badJson = await runDockctl(world.configFile, ['verify', '--json']);
    expect(badJson.code).not.toBe(0);
    const report = JSON.parse(badJson.stdout) as VerifyJson;
    expect(report.ok).toBe(false);
    expect(report.checked).toBe(4);
    expect([...report.bad].sort((x, y) => x.id - y.id)).toEqual(
      [
        { id: idOf(flipped), sha256: flipped, problem: expect.stringMatching(/content changed/) },
        { id: idOf(deleted), sha256: deleted, problem: expect.stringMatching(/missing/) },
      ].sort((x, y) => x.id - y.id),
    );

    // Verification works with the daemon stopped too (an admin checking a station that is down), and still fails.
    expect(await daemon.stop()).toBe(0);
    const stopped = await runDockctl(world.configFile, ['verify', '--json']);
    expect(stopped.code, stopped.stderr).toBe(1);
    const stoppedReport = JSON.parse(stopped.stdout) as VerifyJson;
    expect(stoppedReport).toMatchObject({ ok: false, checked: 4 });
    expect(stoppedReport.bad.map((x) => x.sha256).sort()).toEqual([flipped, deleted].sort());
  }, 300_000);
});
