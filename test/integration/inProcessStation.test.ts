/**
 * The daemon run in-process (the Controller, not the dockd command) against the recorder emulator on a real socat
 * pty, a real mosquitto and a real @tus/server, with the station's clock handed in through the host: the test moves
 * it 400 days ahead, and everything the station stamps follows it — the recorder's measured drift, the time it sets
 * on the recorder, and the `at` of the MQTT events and the catalog's created/uploaded times.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../daemon/config.ts';
import { Controller } from '../../daemon/controller.ts';
import { type Clock, defaultHost } from '../../daemon/host.ts';
import { createLogger } from '../../daemon/log.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { type Device, LinkWorld } from '../helpers/linkWorld.ts';
import { waitFor } from '../helpers/ports.ts';

const DAY_MS = 86_400_000;
const MOVED_DAYS = 400;
const OFFICER: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };

/** The system clock plus an offset the test moves: time goes on, from wherever the test put it. */
class MovedClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(this.ms());
  }
  ms(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

let world: LinkWorld | null = null;
let controller: Controller | null = null;
const lines: string[] = [];

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(lines.slice(-80).join(''));
  await controller?.stop();
  controller = null;
  await world?.cleanup();
  world = null;
  lines.length = 0;
});

const days = (ms: number) => Math.round(ms / DAY_MS);

describe('the station in-process, on a clock the test moves', () => {
  it('drift, the recorder clock it sets, event times and catalog times all follow the moved clock', async () => {
    world = await LinkWorld.create({ devices: [OFFICER] });
    const w = world;
    const clock = new MovedClock();
    const log = createLogger('info', { write: (s: string) => void lines.push(s) });
    controller = new Controller(loadConfig(w.configFile), log, { ...defaultHost(), clock });
    await controller.start();

    clock.advance(MOVED_DAYS * DAY_MS);
    const movedFrom = clock.now().toISOString();
    const a = await w.recorder({ ...OFFICER, media: [await sampleMedia('video', 1, 4400)] });
    await a.rec.plugIn();
    await w.uploaded(a.recordings);
    const uploadedEvent = await waitFor('file.uploaded', () => w.events('file.uploaded')[0], 60_000);
    const movedTo = clock.now().toISOString();

    // The recorder runs on real time: against the moved station clock it is 400 days behind, and the handshake set it
    // to the station's time.
    const docked = await waitFor('recorder.docked', () => w.events('recorder.docked')[0], 60_000);
    expect(days(docked.clockDriftMs as number)).toBe(-MOVED_DAYS);
    expect(days(a.rec.clock().getTime() - Date.now())).toBe(MOVED_DAYS);

    // Events are stamped on the moved clock.
    for (const e of [docked, uploadedEvent, ...w.events('file.ingested')]) {
      const at = String(e.at);
      expect(at >= movedFrom && at <= movedTo, `${String(e.type)} at ${at} within [${movedFrom}, ${movedTo}]`).toBe(true);
    }
    // So are the catalog's times.
    const row = controller.catalog.list('uploaded')[0];
    expect(row.sha256).toBe(a.recordings[0].sha256);
    for (const t of [row.created_at, row.uploaded_at]) {
      expect(t! >= movedFrom && t! <= movedTo, `${t} within [${movedFrom}, ${movedTo}]`).toBe(true);
    }
  }, 240_000);
});
