/**
 * The station's upload cap (hq.tus.maxBytesPerSecond) is real, and a SIGHUP changes it: a dockd process uploads two
 * large recordings to a real @tus/server, whose received byte count the test samples. The cap is shared by the two
 * uploads in flight. This is a functional check of the cap (the rate HQ sees is the rate configured, within ±10 %
 * over about 20 s and 14 s), not a performance threshold: the capped rates are far below what loopback carries.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { sha256OfFile, recordingName } from '../../scripts/media.ts';
import { bigClip } from '../helpers/bigMedia.ts';
import type { Device, LinkWorld } from '../helpers/linkWorld.ts';
import { useLinkWorld } from '../helpers/station.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';

const MB = 1_000_000;
const A: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };

const worlds = useLinkWorld(60);

async function editConfig(file: string, edit: (doc: Record<string, any>) => void): Promise<void> {
  const doc = parse(await fs.readFile(file, 'utf8'));
  edit(doc);
  await fs.writeFile(file, stringify(doc));
}

/** When the tus server's received byte count first reaches `bytes` (ms, polled every 50 ms). */
async function reached(w: LinkWorld, bytes: number): Promise<number> {
  await waitFor(`${bytes} bytes received by the tus server`, () => w.tus.bytesReceived >= bytes, 120_000, 50);
  return performance.now();
}

describe('upload cap', () => {
  it('HQ receives at the configured rate; a SIGHUP raises the cap for the uploads in flight, and names a key that needs a restart', async () => {
    const world = await worlds.create({ devices: [A] });
    const w = world;
    await editConfig(w.configFile, (doc) => {
      doc.hq.tus.maxBytesPerSecond = 1 * MB;
      doc.hq.tus.concurrency = 2;
      doc.hq.tus.stallTimeoutSeconds = 60;
    });
    const clips = await Promise.all([1, 2].map((v) => bigClip(40 + v)));
    const total = (await Promise.all(clips.map((c) => fs.stat(c)))).reduce((n, s) => n + s.size, 0);
    expect(total).toBeGreaterThan(52 * MB);
    const daemon = await w.startDaemon();

    await dockVolume(w.mountRoot, 'A-1', async (v) => {
      await fs.mkdir(path.join(v, 'DCIM'));
      for (const [i, clip] of clips.entries()) {
        const name = recordingName({ officerId: A.officerId, serial: A.serial, at: `2026120108${i}000`, seq: i + 1 });
        await fs.copyFile(clip, path.join(v, 'DCIM', name));
        await fs.writeFile(
          path.join(v, 'DCIM', name.replace(/\.mp4$/, '.meta.json')),
          JSON.stringify({ caseNo: `C-${i + 1}`, purpose: '现场检查', place: '幸福路12号' }),
        );
      }
    });

    // 1 MB/s: 20 MB measured after the first 1 MB (the start of the uploads is not measured).
    const t1 = await reached(w, 1 * MB);
    const t2 = await reached(w, 21 * MB);
    const capped = (20 * MB) / ((t2 - t1) / 1000);
    expect(capped / MB).toBeGreaterThanOrEqual(0.9);
    expect(capped / MB).toBeLessThanOrEqual(1.1);

    // SIGHUP with the cap at 2 MB/s (and a rule changed, which needs a restart): the uploads in flight speed up.
    await editConfig(w.configFile, (doc) => {
      doc.hq.tus.maxBytesPerSecond = 2 * MB;
      doc.rules.uploadWithinHours = 12;
    });
    daemon.proc!.kill('SIGHUP');
    const applied = await daemon.waitForLog((l) => l.msg === 'config reloaded: hq.tus.maxBytesPerSecond applied', 'the reload');
    expect(applied).toMatchObject({ key: 'hq.tus.maxBytesPerSecond', from: 1 * MB, to: 2 * MB });
    const restart = await daemon.waitForLog((l) => /^config reloaded: .* need a restart$/.test(l.msg), 'the restart note');
    expect(restart.keys).toEqual(['rules.uploadWithinHours']);

    const from = w.tus.bytesReceived + 2 * MB;
    const t3 = await reached(w, from);
    const t4 = await reached(w, from + 28 * MB);
    const raised = (28 * MB) / ((t4 - t3) / 1000);
    expect(raised / MB).toBeGreaterThanOrEqual(1.8);
    expect(raised / MB).toBeLessThanOrEqual(2.2);

    // Both arrive whole.
    await w.uploaded(
      await Promise.all(
        clips.map(async (c) => ({ relPath: '', name: '', sha256: await sha256OfFile(c), size: 0, localTime: null })),
      ),
    );
  }, 240_000);
});
