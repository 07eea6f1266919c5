/**
 * `dockctl annotate ID --captured-at` for a recording that carries no capture time: a date that does not exist is
 * refused in one line and changes nothing; a real one goes to HQ as 采集时间 exactly as typed. Against a running
 * daemon (real mosquitto and tus server), its real catalog and audit trail.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, dockctlFiles } from '../helpers/dockctlJson.ts';

const TIMEOUT = 300_000;

describe('dockctl annotate --captured-at refuses dates and times that do not exist', () => {
  const station = useStation({ prefix: 'dockd-captured-at-' });

  it(
    'refuses 2026-02-30, month 13, 24:61 and a missing offset in one line each; takes a real time and sends it to HQ',
    async () => {
      const world = await station.world();
      await station.startDaemon(world.configFile);
      // A plain name and no creation_time in the container: the recording has no capture time of its own.
      const noTime = await sampleMedia('video-faststart', 2, 46);
      await dockVolume(world.mountRoot, 'REC1', async (v) => {
        await fs.copyFile(noTime, path.join(v, 'clip.mp4'));
      });
      const held = await waitFor(
        'the timeless recording held',
        async () => (await dockctlFiles(world.configFile, 'needs-annotation')).find((f) => f.filename === 'clip.mp4'),
        120_000,
      );
      expect(held.capturedAt).toBeNull();

      const fields = ['--case-no', 'C-30', '--purpose', '现场执法', '--place', '幸福路12号', '--collector', '张三'];
      const refused: [string, RegExp][] = [
        ['2026-02-30T10:00:00+08:00', /February 2026 has no day 30 \(it has 28 days\)/],
        ['2026-13-01T10:00:00+08:00', /there is no month 13/],
        ['2026-11-28T24:61:00+08:00', /24:61:00 is not a time of day/],
        ['2026-11-28T10:00:00', /has no zone offset; add Z or ±hh:mm/],
        ['28.11.2026 10:00', /is not a date and time in ISO 8601 with a zone offset/],
      ];
      for (const [value, why] of refused) {
        const r = await runDockctl(world.configFile, ['annotate', String(held.id), ...fields, '--captured-at', value]);
        expect(r.code, `${value}: ${r.stdout}`).toBe(1);
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`dockctl: capture time (采集时间) "${value}": `);
        expect(lines[0]).toMatch(why);
        expect(r.stdout).toBe('');
      }
      // Nothing changed: still held, no capture time, nothing annotated in the audit trail, nothing sent to HQ.
      const after = (await dockctlFiles(world.configFile)).find((f) => f.id === held.id)!;
      expect(after).toMatchObject({ state: 'needs-annotation', capturedAt: null, caseNo: null });
      expect((await dockctlAudit(world.configFile)).filter((e) => e.type === 'file.annotated')).toEqual([]);
      expect(station.tus.finished).toEqual([]);

      // A leap day that exists, with its offset: taken as written and uploaded as 采集时间.
      const ok = await runDockctl(world.configFile, [
        'annotate',
        String(held.id),
        ...fields,
        '--captured-at',
        '2028-02-29T23:59:30+08:00',
      ]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/annotated: ready/);
      const uploaded = await waitFor(
        'the recording at HQ',
        () => station.tus.finished.find((u) => u.sha256 === held.sha256),
        120_000,
      );
      expect(uploaded.metadata).toMatchObject({ capturedAt: '2028-02-29T23:59:30+08:00', caseNo: 'C-30' });
    },
    TIMEOUT,
  );
});
