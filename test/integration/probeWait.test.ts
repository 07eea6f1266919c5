/**
 * Verification waits behind the copies, at most PROBE_MAX_WAIT_MS by the station's clock: through the daemon run
 * in-process, on a clock the test moves, with the real copy threads' code. One recorder's storage is slow to answer (a
 * gate in front of the copy thread's open, while a flag file exists), so its copy stays under way; another recorder's
 * clip is stored beside it and waits, unverified, while real time passes; once the station's clock has moved a minute
 * on, it is verified and uploaded beside the copy that is still under way.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../daemon/config.ts';
import { PROBE_MAX_WAIT_MS } from '../../daemon/dock/dockService.ts';
import { defaultHost } from '../../daemon/host.ts';
import { COPY_THREAD_SOURCE, CopyWorkers } from '../../daemon/recorder/copyWorkers.ts';
import { digestWorkers } from '../../daemon/recorder/digestWorkers.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { MovedClock, useInProcessStation } from '../helpers/inProcessStation.ts';
import type { Device } from '../helpers/linkWorld.ts';
import { waitFor } from '../helpers/ports.ts';

const QUICK: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };
const SLOW: Device = { serial: 'BCT0002', officerId: '012346', officerName: '李四' };

describe('verification behind the copies', () => {
  const station = useInProcessStation();

  it('waits while a recorder copies, and runs beside the copy once it has waited a minute of the station clock', async () => {
    const w = await station.world({ devices: [QUICK, SLOW] });
    const clock = new MovedClock();
    // The slow recorder's storage: the copy thread's open of its recordings waits while the flag file exists.
    const hold = path.join(w.dir, `hold-${SLOW.serial}`);
    await fs.writeFile(hold, '');
    const gate = `{
      const fs = require('node:fs');
      const open = fs.openSync;
      const pause = new Int32Array(new SharedArrayBuffer(4));
      fs.openSync = (p, ...rest) => {
        if (String(p).includes(${JSON.stringify(SLOW.serial)}))
          while (fs.existsSync(${JSON.stringify(hold)})) Atomics.wait(pause, 0, 0, 20);
        return open(p, ...rest);
      };
    }`;
    const copy = new CopyWorkers(4, `${gate}\n${COPY_THREAD_SOURCE}`, () => clock.ms());
    try {
      const controller = await station.start(loadConfig(w.configFile), {
        ...defaultHost(),
        clock,
        threads: { copy, digest: digestWorkers },
      });
      const slowCopying = () =>
        [...controller.board.recorders.values()].some((r) => r.serial === SLOW.serial && r.state === 'copying' && r.current);

      const slow = await w.recorder({ ...SLOW, media: [await sampleMedia('video', 1, 4501)] });
      await slow.rec.plugIn();
      await waitFor(`${SLOW.serial} copying`, slowCopying, 60_000);

      const quick = await w.recorder({ ...QUICK, media: [await sampleMedia('video', 1, 4502)] });
      await quick.rec.plugIn();
      const sha256 = quick.recordings[0].sha256;
      const stored = await waitFor(
        `${QUICK.serial}'s clip stored`,
        () => controller.catalog.list('stored').find((f) => f.sha256 === sha256),
        60_000,
      );
      // Three seconds of real time (the waiting probes are looked at every second): still unverified, behind the copy.
      await new Promise((r) => setTimeout(r, 3000));
      expect(controller.catalog.get(stored.id)?.state).toBe('stored');
      expect(slowCopying()).toBe(true);

      // A minute on by the station's clock: verified and uploaded, while the slow copy is still under way.
      clock.advance(PROBE_MAX_WAIT_MS);
      await w.uploaded(quick.recordings);
      expect(slowCopying()).toBe(true);
      expect(controller.catalog.list('stored').map((f) => f.sha256)).not.toContain(slow.recordings[0].sha256);

      // The storage answers again: the slow recorder's clip is copied, verified and uploaded too.
      await fs.rm(hold);
      await w.uploaded(slow.recordings);
    } finally {
      await fs.rm(hold, { force: true });
    }
  }, 240_000);
});
