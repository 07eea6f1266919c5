/**
 * hq.mqtt.protocolVersion against a real mosquitto. With 5 the station's session outlives its connection as with
 * 3.1.1 (receipts sent while it is away are delivered when it returns), and a publish the broker's ACL forbids is
 * refused out loud: the event stays first in the outbox, an alarm says why, and everything goes, in order, once the
 * ACL allows it. With 4 the same broker acknowledges the forbidden publish and drops it: what 5 is for.
 */
import { describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { editConfig, runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { type Station, useStation } from '../helpers/station.ts';
import { dockctlAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const ST = 'test-st';
const P = `dockd/${ST}`;

interface Status {
  queue: Record<string, number>;
  alarms: { code: string; key: string; message: string }[];
}

async function status(configFile: string): Promise<Status> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}

/** Anonymous clients (the station and the test's HQ) may do this much; `eventWrites` decides whether events pass. */
function acl(eventWrites: boolean): string {
  return [
    `topic write ${P}/status`,
    `topic write ${P}/state`,
    `topic write ${P}/audit`,
    `topic read ${P}/receipt`,
    `topic ${eventWrites ? 'readwrite' : 'read'} ${P}/event`,
    '',
  ].join('\n');
}

async function world(station: Station, protocolVersion: 4 | 5) {
  // Uploads fail (nothing listens there): the recordings stay put and only MQTT matters.
  const w = await station.world({ tusEndpoint: 'http://127.0.0.1:9/files/' });
  await editConfig(w.configFile, (doc) => {
    doc.hq.mqtt.protocolVersion = protocolVersion;
  });
  return w;
}

async function run(station: Station, configFile: string) {
  const d = await station.startDaemon(configFile);
  await d.connectedToBroker();
  return d;
}

describe('hq.mqtt.protocolVersion on a real mosquitto', () => {
  const station = useStation({ prefix: 'dockd-mqtt5-', tus: false });

  it('5: a receipt sent while the station is away waits in its session and is applied when it returns', async () => {
    const w = await world(station, 5);
    const first = await run(station, w.configFile);
    expect(first.logs.find((l) => l.msg === 'connected to broker')).toMatchObject({ protocolVersion: 5 });
    expect(await first.stop()).toBe(0);
    const sha = 'cd'.repeat(32);
    await sendReceipt(station.broker.url, ST, { sha256: sha, ok: true });
    await run(station, w.configFile);
    const entry = await waitFor('the receipt sent while away to be applied', async () =>
      (await dockctlAudit(w.configFile)).find((e) => e.type === 'receipt.ignored' && e.subject === sha),
    );
    expect(entry.data).toMatchObject({ ok: true, signed: true, reason: 'no such recording at this station' });
  });
});

describe('hq.mqtt.protocolVersion on a real mosquitto whose ACL refuses events', () => {
  const station = useStation({ prefix: 'dockd-mqtt5-', tus: false, broker: { acl: acl(false) } });

  it('5: events the ACL refuses stay in the outbox with an alarm, and arrive in order once it allows them', async () => {
    const hq = await station.subscribe(`${P}/event`);
    const w = await world(station, 5);
    const d = await run(station, w.configFile);

    await dockRecordings(w.mountRoot, 'REC1', [await sampleMedia('video', 1, 701), await sampleMedia('video', 1, 702)]);
    await d.waitForLog((l) => l.msg === 'alarm raised' && l.key === 'mqtt:refused', 'the refusal alarm');
    const refused = d.logs.find((l) => String(l.msg).startsWith('the broker refuses our events'))!;
    expect(refused).toMatchObject({ reasonCode: 135 });
    const held = await waitFor(
      'both recordings ingested, their events held',
      async () => {
        const s = await status(w.configFile);
        return s.queue.outbox >= 3 && (s.queue.ready ?? 0) + (s.queue.uploading ?? 0) >= 2 ? s : null;
      },
      90_000,
    );
    expect(held.alarms.find((a) => a.key === 'mqtt:refused')).toMatchObject({
      code: 'MQTT_UNREACHABLE',
      message: expect.stringContaining('Not authorized'),
    });
    expect(hq.messages).toEqual([]);

    await station.broker.setAcl(acl(true));
    await waitFor('the outbox to drain', async () => (await status(w.configFile)).queue.outbox === 0, 60_000);
    const events = hq.messages.map((m) => JSON.parse(m.payload) as { type: string; at: string; key?: string; active?: boolean });
    const types = events.map((e) => e.type);
    expect(types.indexOf('recorder.docked')).toBeLessThan(types.indexOf('file.ingested'));
    expect(types.filter((t) => t === 'file.ingested')).toHaveLength(2);
    const ats = events.map((e) => e.at);
    expect(ats).toEqual([...ats].sort()); // in the order they happened
    await waitFor('the refusal alarm to clear', () =>
      hq.messages.some((m) => {
        const e = JSON.parse(m.payload) as { type: string; key?: string; active?: boolean };
        return e.type === 'alarm' && e.key === 'mqtt:refused' && e.active === false;
      }),
    );
  });

  it('4: the same broker acknowledges a publish its ACL forbids and drops it, unseen by station and HQ alike', async () => {
    const hq = await station.subscribe(`${P}/event`);
    const w = await world(station, 4);
    const d = await run(station, w.configFile);
    await dockRecordings(w.mountRoot, 'REC1', [await sampleMedia('video', 1, 703)]);
    await waitFor(
      'the recording ingested and every event "delivered"',
      async () => {
        const s = await status(w.configFile);
        return s.queue.outbox === 0 && (s.queue.ready ?? 0) + (s.queue.uploading ?? 0) >= 1;
      },
      90_000,
    );
    expect(hq.messages).toEqual([]);
    expect(d.logs.some((l) => l.key === 'mqtt:refused')).toBe(false);
  });
});
