/**
 * UPLOAD_REFUSED alarms end when the recording reaches HQ: HQ refusing an upload (refused:<id>) clears once the same
 * recording uploads fine; HQ's receipt saying its copy differs (receipt:<id>) stays through the new upload and clears
 * on HQ's signed word that it now holds a verified copy. Real mosquitto, real @tus/server, the daemon as a process.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { RefusingFront } from '../helpers/refusingFront.ts';
import { dockctlFiles } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { eventsOf } from '../helpers/stationReports.ts';

const ST = 'test-st';

interface Alarm {
  code: string;
  key: string;
  message: string;
}

async function alarms(configFile: string): Promise<Alarm[]> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { alarms: Alarm[] }).alarms;
}

describe('UPLOAD_REFUSED alarms clear when the recording reaches HQ', () => {
  const station = useStation({ prefix: 'dockd-alarms-' });
  let front: RefusingFront;

  beforeEach(async () => {
    front = new RefusingFront(station.tus.port);
    await front.start();
    station.onCleanup(() => front.stop());
  });

  async function startStation(endpoint: string) {
    const world = await station.world({ tusEndpoint: endpoint });
    const sub = await station.subscribe(`dockd/${ST}/event`);
    await station.startDaemon(world.configFile);
    return { world, sub };
  }

  it('HQ refuses an upload, then takes it: the refused:<id> alarm clears, on the page and on MQTT', async () => {
    const { world, sub } = await startStation(front.endpoint);
    const {
      files: [clip],
    } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 801)]);
    const raised = await waitFor(
      'the refusal alarm',
      async () => (await alarms(world.configFile)).find((a) => a.code === 'UPLOAD_REFUSED'),
      90_000,
    );
    const id = (await dockctlFiles(world.configFile))[0].id;
    expect(raised).toMatchObject({ key: `refused:${id}`, message: expect.stringContaining('403') });

    front.refusing = false;
    await waitFor('HQ to hold the recording', () => station.tus.finished.some((u) => u.sha256 === clip.sha256), 60_000);
    await waitFor(
      'the alarm to clear in dockctl status',
      async () => !(await alarms(world.configFile)).some((a) => a.key === `refused:${id}`),
    );
    const alarmEvents = await waitFor('the alarm cleared on MQTT', () => {
      const mine = eventsOf(sub.messages, 'alarm').filter((e) => e.key === `refused:${id}`);
      return mine.some((e) => e.active === false) ? mine : null;
    });
    expect(alarmEvents.map((e) => e.active)).toEqual([true, false]);
    expect(front.refusals).toBeGreaterThanOrEqual(1);
  });

  it("HQ says its copy differs: receipt:<id> stays through the new upload and clears on HQ's signed receipt", async () => {
    const { world, sub } = await startStation(station.tus.endpoint);
    const {
      files: [clip],
    } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 802)]);
    await waitFor(
      'the recording uploaded',
      async () => (await dockctlFiles(world.configFile)).find((f) => f.sha256 === clip.sha256 && f.state === 'uploaded'),
      90_000,
    );
    const id = (await dockctlFiles(world.configFile))[0].id;

    await sendReceipt(station.broker.url, ST, { sha256: clip.sha256, ok: false });
    await waitFor(
      'a second upload of the same recording',
      () => station.tus.finished.filter((u) => u.sha256 === clip.sha256).length === 2,
      90_000,
    );
    await waitFor(
      'the recording uploaded again',
      async () => (await dockctlFiles(world.configFile)).find((f) => f.id === id && f.state === 'uploaded'),
      60_000,
    );
    expect((await alarms(world.configFile)).find((a) => a.key === `receipt:${id}`)).toMatchObject({ code: 'UPLOAD_REFUSED' });

    await sendReceipt(station.broker.url, ST, { sha256: clip.sha256, ok: true });
    await waitFor('archived', async () =>
      (await dockctlFiles(world.configFile)).find((f) => f.id === id && f.state === 'archived'),
    );
    await waitFor(
      'the alarm to clear in dockctl status',
      async () => !(await alarms(world.configFile)).some((a) => a.key === `receipt:${id}`),
    );
    await waitFor('the alarm cleared on MQTT', () =>
      eventsOf(sub.messages, 'alarm').some((e) => e.key === `receipt:${id}` && e.active === false),
    );
  });
});
