/**
 * Nothing on the receipt subscription vanishes in silence. A message whose topic is not exactly P/S/receipt (here: a
 * subscription the persistent session kept from an earlier hq.mqtt.topicPrefix, as a broker that rewrites topic names
 * would also deliver) and a receipt whose payload is not understood are each audited every time and logged at most
 * once a minute. Real mosquitto, the daemon as a child process.
 */
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { editConfig } from '../helpers/daemon.ts';
import { signedReceipt } from '../helpers/hqKeys.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockctlAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const ST = 'test-st';
const SHA = 'ab'.repeat(32);

describe('the receipt subscription: what is not understood is audited and logged', () => {
  const station = useStation({ prefix: 'dockd-receipt-topics-', tus: false });

  async function setPrefix(configFile: string, prefix: string): Promise<void> {
    await editConfig(configFile, (doc) => {
      doc.hq.mqtt.topicPrefix = prefix;
    });
  }

  async function run(configFile: string) {
    const d = await station.startDaemon(configFile);
    await d.connectedToBroker();
    return d;
  }

  it('a receipt arriving under another topic, and receipts that are not understood, are audited each time and logged once', async () => {
    const world = await station.world({ tusEndpoint: 'http://127.0.0.1:9/files/' });
    await setPrefix(world.configFile, 'old');
    const first = await run(world.configFile);
    expect(await first.stop()).toBe(0);
    // The station now uses another prefix; the broker still holds its session, with the subscription to old/S/receipt.
    await setPrefix(world.configFile, 'dockd');
    const d = await run(world.configFile);

    const receipt = JSON.stringify(signedReceipt(ST, SHA, true));
    const hq = await mqtt.connectAsync(station.broker.url, { reconnectPeriod: 0 });
    for (let i = 0; i < 3; i++) await hq.publishAsync(`old/${ST}/receipt`, receipt, { qos: 1 });
    await hq.endAsync();
    const odd = await waitFor('three mqtt.not-understood audit entries', async () => {
      const rows = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'mqtt.not-understood');
      return rows.length >= 3 ? rows : null;
    });
    expect(odd).toHaveLength(3);
    for (const e of odd)
      expect(e.data).toMatchObject({
        topic: `old/${ST}/receipt`,
        expected: `dockd/${ST}/receipt`,
        payload: receipt,
        bytes: Buffer.byteLength(receipt),
      });
    const topicLines = d.logs.filter(
      (l) => l.component === 'mqtt' && String(l.msg).startsWith('message on the receipt subscription with a topic'),
    );
    expect(topicLines).toHaveLength(1);
    expect(topicLines[0]).toMatchObject({ level: 40, topic: `old/${ST}/receipt`, expected: `dockd/${ST}/receipt` });

    const junk = ['not json', '{"sha256":"zz","ok":true}', Buffer.from([0xff, 0xfe, 0x00])];
    for (const j of junk) await sendReceipt(station.broker.url, ST, j);
    const malformed = await waitFor('three receipt.malformed audit entries', async () => {
      const rows = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'receipt.malformed');
      return rows.length >= 3 ? rows : null;
    });
    expect(malformed.map((e) => e.data.error)).toEqual(['not JSON', expect.stringMatching(/sha256/), 'not JSON']);
    expect(d.logs.filter((l) => String(l.msg).startsWith('malformed receipt from HQ ignored'))).toHaveLength(1);
    // The understood topic still works: the daemon is alive and answers a real receipt (unknown sha256: audited as ignored).
    await sendReceipt(station.broker.url, ST, { sha256: SHA, ok: true });
    await waitFor('the good receipt to be handled', async () =>
      (await dockctlAudit(world.configFile)).some((e) => e.type === 'receipt.ignored' && e.subject === SHA),
    );
  });
});
