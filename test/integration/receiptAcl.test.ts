/**
 * The mosquitto ACL the README documents (config/mosquitto-dockd.acl), on a real mosquitto with passwords: the station
 * publishes its status, state, events and audit head and receives its receipts; only HQ can publish a receipt. Even a
 * validly signed receipt (a replay of HQ's own) sent by another station, by a client with the station's own
 * credentials, or by any other user never reaches the station; HQ's does.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { signedReceipt, TEST_HQ_PUBLIC_PEM } from '../helpers/hqKeys.ts';
import type { Mosquitto } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { dockctlAudit, dockctlFiles } from '../helpers/dockctlJson.ts';
import { useStation } from '../helpers/station.ts';
import { eventsOf } from '../helpers/stationReports.ts';

const ACL = readFileSync(path.join(PACKAGE_ROOT, 'config', 'mosquitto-dockd.acl'), 'utf8');
const ST = 'test-st';
const USERS: Record<string, string> = {
  hq: 'hq-pw-31415926',
  [ST]: 'st-pw-27182818',
  'other-st': 'other-pw-1414213',
  intruder: 'intruder-pw-1732',
};

async function publishAs(broker: Mosquitto, user: string, topic: string, payload: string): Promise<void> {
  const client = await mqtt.connectAsync(broker.url, {
    ...broker.clientOptions(user),
    clientId: `${user}-${Math.random().toString(16).slice(2, 8)}`,
    reconnectPeriod: 0,
  });
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

describe('the documented mosquitto ACL: only HQ publishes receipts', () => {
  // mosquitto with password authentication and the documented ACL file, as is.
  const station = useStation({ prefix: 'dockd-acl-', broker: { users: USERS, acl: ACL } });

  it("the station works under it; receipts from anyone but HQ never reach it, even signed ones; HQ's do", async () => {
    const { broker, tus } = station;
    const world = await station.world({
      extra: {
        hq: {
          embedded: false,
          tus: { endpoint: tus.endpoint, stallTimeoutSeconds: 5, maxRetryDelaySeconds: 2 },
          mqtt: { url: broker.url, topicPrefix: 'dockd', username: ST, password: USERS[ST] },
          receiptKey: TEST_HQ_PUBLIC_PEM,
        },
      },
    });
    const hq = await station.subscribeAs('hq', 'dockd/#');
    const intruder = await station.subscribeAs('intruder', 'dockd/#');
    const otherStation = await station.subscribeAs('other-st', `dockd/${ST}/#`);
    const daemon = await station.startDaemon(world.configFile);
    const {
      files: [a, b],
    } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 671), await sampleMedia('video', 1, 672)]);
    await waitFor(
      'both uploaded',
      async () => (await dockctlFiles(world.configFile)).filter((f) => f.state === 'uploaded').length === 2,
      90_000,
    );

    // The station's own topics pass: HQ sees its status, events and signed audit head.
    await waitFor(
      'HQ to see the station online, its events and its audit head',
      () =>
        hq.messages.some((m) => m.topic === `dockd/${ST}/status` && m.payload === 'online') &&
        eventsOf(hq.messages, 'file.uploaded').length === 2 &&
        hq.messages.some((m) => m.topic === `dockd/${ST}/audit`),
      60_000,
    );

    // A genuine HQ receipt for a, replayed by everyone who is not HQ: the broker drops them all.
    const replayed = JSON.stringify(signedReceipt(ST, a.sha256, true));
    await publishAs(broker, 'intruder', `dockd/${ST}/receipt`, replayed);
    await publishAs(broker, 'other-st', `dockd/${ST}/receipt`, replayed);
    await publishAs(broker, ST, `dockd/${ST}/receipt`, replayed); // the station's own credentials, another client
    // HQ's receipt for b, after them: once b is archived, the station has had every message published before it.
    await publishAs(broker, 'hq', `dockd/${ST}/receipt`, JSON.stringify(signedReceipt(ST, b.sha256, true)));
    await waitFor(
      "b archived on HQ's receipt",
      async () => (await dockctlFiles(world.configFile)).some((f) => f.sha256 === b.sha256 && f.state === 'archived'),
      60_000,
    );
    expect((await dockctlFiles(world.configFile)).find((f) => f.sha256 === a.sha256)!.state).toBe('uploaded');
    const receiptEntries = (await dockctlAudit(world.configFile)).filter((e) => e.type.startsWith('receipt.'));
    expect(receiptEntries).toEqual([]); // the replays never arrived (had they, a would be archived)
    expect(hq.messages.filter((m) => m.topic.endsWith('/receipt')).map((m) => JSON.parse(m.payload).sha256)).toEqual([b.sha256]);

    // No one but HQ and the station itself reads the station's topics.
    expect(intruder.messages).toEqual([]);
    expect(otherStation.messages).toEqual([]);

    await publishAs(broker, 'hq', `dockd/${ST}/receipt`, replayed);
    await waitFor(
      "a archived on HQ's receipt",
      async () => (await dockctlFiles(world.configFile)).every((f) => f.state === 'archived'),
      60_000,
    );
    expect(await daemon.stop()).toBe(0);
    // The last will and the clean offline are the station's to write. (The broker forwards the offline the daemon
    // published before it exited; it may reach HQ's subscriber just after the exit.)
    const lastStatus = () =>
      hq.messages
        .filter((m) => m.topic === `dockd/${ST}/status`)
        .map((m) => m.payload)
        .at(-1);
    await waitFor('the station offline at HQ', () => lastStatus() === 'offline', 10_000).catch(() => {});
    expect(lastStatus()).toBe('offline');
  }, 300_000);
});
