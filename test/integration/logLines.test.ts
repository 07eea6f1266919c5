/**
 * Every log line is valid JSON whatever the data: with the default recorder password 000000 (a secret too short to be
 * searched for in text) and a recording of exactly 10,000,000 bytes, a real daemon copies, uploads (real tus server)
 * and archives on HQ's receipt (real mosquitto), and each line it writes parses, with the numbers intact. Before
 * redaction by key, the line holding 10000000 became `1[redacted]00`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlFiles } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const SIZE = 10_000_000;

/** A valid MP4 of exactly `size` bytes: a short clip followed by a top-level `free` box that fills the rest. */
async function mp4OfSize(target: string, size: number): Promise<void> {
  const clip = await fs.readFile(await sampleMedia('video', 1, 661));
  const pad = size - clip.length;
  if (pad < 8) throw new Error(`the clip is already ${clip.length} bytes`);
  const box = Buffer.alloc(pad);
  box.writeUInt32BE(pad, 0);
  box.write('free', 4, 'latin1');
  await fs.writeFile(target, Buffer.concat([clip, box]));
}

describe('log lines stay valid JSON whatever the data', () => {
  const station = useStation({ prefix: 'dockd-loglines-' });

  it('recorder password 000000 and a recording of 10000000 bytes: every line parses, sizes and hashes intact', async () => {
    const world = await station.world({
      devices: [{ serial: '1234567', officerId: '012345', officerName: '张三' }],
      extra: { dock: { mountRoots: [path.join(station.dir, 'dock')], settleMs: 100, recorderPassword: '000000' } },
    });
    const daemon = await station.startDaemon(world.configFile);
    const name = recordingName({ at: '20261128100000', seq: 1 });
    let sha = '';
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await mp4OfSize(path.join(v, name), SIZE);
      await fs.writeFile(
        path.join(v, name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'C-10000000', purpose: '现场执法', place: '幸福路100号' }),
      );
      sha = await sha256OfFile(path.join(v, name));
    });
    await waitFor(
      'uploaded',
      async () => (await dockctlFiles(world.configFile)).some((f) => f.sha256 === sha && f.state === 'uploaded'),
      120_000,
    );
    expect(station.tus.finished).toEqual([expect.objectContaining({ sha256: sha, size: SIZE })]);
    await sendReceipt(station.broker.url, 'test-st', { sha256: sha, ok: true });
    await waitFor(
      'archived',
      async () => (await dockctlFiles(world.configFile)).some((f) => f.sha256 === sha && f.state === 'archived'),
      60_000,
    );
    expect(await daemon.stop()).toBe(0);

    // DaemonProcess keeps a line that is not JSON as {level: 0, msg: <the line>}.
    const broken = daemon.logs.filter((l) => l.level === 0);
    expect(broken.map((l) => l.msg)).toEqual([]);
    expect(daemon.logs.length).toBeGreaterThan(10);
    const withSize = daemon.logs.filter((l) => l.size === SIZE);
    expect(withSize.length).toBeGreaterThan(0);
    expect(daemon.logs.filter((l) => l.sha256 === sha).length).toBeGreaterThan(0);
    expect(JSON.stringify(daemon.logs)).not.toContain('1[redacted]');
    expect(JSON.stringify(daemon.logs)).not.toContain('000000"'); // the password itself never logged
  }, 300_000);
});
