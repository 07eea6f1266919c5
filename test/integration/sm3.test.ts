/**
 * SM3 (GM/T 0004): with integrity.algorithms [sha256, sm3] the copy pass also computes SM3, the catalog records it
 * (`dockctl files --json`, exports) and the tus upload carries it as `sm3` metadata. Without sm3 configured, nothing
 * of it appears.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyAndHash } from '../../daemon/recorder/copyAndHash.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { filesJson } from '../helpers/dockctlJson.ts';
import { objectPath } from '../helpers/storeOnDisk.ts';

async function sm3OfFile(p: string): Promise<string> {
  return createHash('sm3')
    .update(await fs.readFile(p))
    .digest('hex');
}

describe('SM3 digests (GM/T 0004) in the copy pass', () => {
  const scratch = useStation({ prefix: 'dockd-sm3-', broker: false, tus: false });

  it('Node computes the GM/T 0004 test vectors', () => {
    expect(createHash('sm3').update('abc').digest('hex')).toBe(
      '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0',
    );
    expect(createHash('sm3').update('abcd'.repeat(16)).digest('hex')).toBe(
      'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732',
    );
  });

  it('copyAndHash with extraDigests [sm3] gives the test vector and, on a multi-chunk file, the same digests as hashing it whole', async () => {
    const abc = path.join(scratch.dir, 'abc');
    await fs.writeFile(abc, 'abc');
    const r = await copyAndHash(abc, path.join(scratch.dir, 'abc.copy'), { extraDigests: ['sm3'] });
    expect(r.digests).toEqual({ sm3: '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0' });
    expect(r.sha256).toBe(createHash('sha256').update('abc').digest('hex'));

    // Larger than the copy loop's 4 MiB chunk and not a multiple of it: SM3 must see every byte once, in order.
    const big = randomBytes(9 * 1024 * 1024 + 12345);
    const src = path.join(scratch.dir, 'big');
    await fs.writeFile(src, big);
    const copy = path.join(scratch.dir, 'big.copy');
    const b = await copyAndHash(src, copy, { extraDigests: ['sm3'] });
    expect(b.size).toBe(big.length);
    expect(b.digests.sm3).toBe(createHash('sm3').update(big).digest('hex'));
    expect(b.sha256).toBe(createHash('sha256').update(big).digest('hex'));
    expect((await fs.readFile(copy)).equals(big)).toBe(true);
    // Without extra digests, none are reported.
    expect((await copyAndHash(src, null)).digests).toEqual({});
  });
});

describe('integrity.algorithms [sha256, sm3] end to end', () => {
  const station = useStation({ prefix: 'dockd-sm3-' });

  async function dockSamples(mountRoot: string, variant: number): Promise<{ clip: string; photo: string; junk: Buffer }> {
    const clip = await sampleMedia('video', 2, variant);
    const photo = await sampleMedia('photo', 1, variant);
    const junk = randomBytes(32 * 1024);
    await dockVolume(mountRoot, 'REC1', async (v) => {
      const n1 = recordingName({ at: '20261128101500', seq: 1 });
      const n2 = recordingName({ at: '20261128101600', seq: 2, ext: 'jpg' });
      const meta = JSON.stringify({ caseNo: 'S-1', purpose: '取证', place: '幸福路12号' });
      await fs.copyFile(clip, path.join(v, n1));
      await fs.writeFile(path.join(v, n1.replace('.mp4', '.meta.json')), meta);
      await fs.copyFile(photo, path.join(v, n2));
      await fs.writeFile(path.join(v, n2.replace('.jpg', '.meta.json')), meta);
      await fs.writeFile(path.join(v, recordingName({ at: '20261128101700', seq: 3 })), junk); // damaged (and held: no sidecar), still stored with its SM3
    });
    return { clip, photo, junk };
  }

  it("records SM3 in the catalog and sends it as sm3 upload metadata, equal to Node's SM3 of each file", async () => {
    const world = await station.world({ extra: { integrity: { algorithms: ['sha256', 'sm3'] } } });
    await station.startDaemon(world.configFile);
    const { clip, photo, junk } = await dockSamples(world.mountRoot, 911);
    const want = new Map<string, string>([
      [await sha256OfFile(clip), await sm3OfFile(clip)],
      [await sha256OfFile(photo), await sm3OfFile(photo)],
      [createHash('sha256').update(junk).digest('hex'), createHash('sm3').update(junk).digest('hex')],
    ]);

    await waitFor('both media files verified by the tus server', () => station.tus.finished.length === 2, 60_000);
    for (const u of station.tus.finished) {
      expect(want.has(u.sha256)).toBe(true);
      expect(u.metadata.sm3).toBe(want.get(u.sha256));
      expect(u.metadata.sm3).toMatch(/^[0-9a-f]{64}$/);
    }

    const rows = await waitFor('all three catalogued', async () => {
      const r = await filesJson(world.configFile);
      return r.length === 3 && r.every((f) => f.state !== 'copying' && f.state !== 'stored') ? r : null;
    });
    for (const f of rows) {
      expect(f.sm3, f.filename).toBe(want.get(f.sha256!));
      // The stored object hashes to the recorded SM3 too.
      expect(await sm3OfFile(objectPath(world.storeDir, f.sha256!))).toBe(f.sm3);
    }
    expect(rows.find((f) => (f as unknown as { integrity: string }).integrity === 'damaged')?.sha256).toBe(
      createHash('sha256').update(junk).digest('hex'),
    );

    // An export carries it in its metadata JSON as well.
    const clipRow = rows.find((f) => f.sha256 === [...want.keys()][0])!;
    const out = path.join(station.dir, 'export');
    const exp = await runDockctl(world.configFile, ['export', String(clipRow.id), '--to', out, '--json']);
    expect(exp.code, exp.stderr).toBe(0);
    const manifest = JSON.parse(await fs.readFile(JSON.parse(exp.stdout).metadata, 'utf8')) as {
      sm3: string;
      metadata: { sm3: string };
    };
    expect(manifest.sm3).toBe(clipRow.sm3);
    expect(manifest.metadata.sm3).toBe(clipRow.sm3);
  });

  it('with the default [sha256], no sm3 is computed, recorded or sent', async () => {
    const world = await station.world();
    await station.startDaemon(world.configFile);
    await dockSamples(world.mountRoot, 912);
    await waitFor('both media files verified by the tus server', () => station.tus.finished.length === 2, 60_000);
    for (const u of station.tus.finished) expect(Object.keys(u.metadata)).not.toContain('sm3');
    const rows = await waitFor('all three catalogued', async () => {
      const r = await filesJson(world.configFile);
      return r.length === 3 && r.every((f) => f.state !== 'copying' && f.state !== 'stored') ? r : null;
    });
    for (const f of rows) expect(f.sm3, f.filename).toBeNull();
  });
});
