/**
 * Nothing on the receipt subscription vanishes in silence. A message whose topic is not exactly P/S/receipt (here: a
 * subscription the persistent session kept from an earlier hq.mqtt.topicPrefix, as a broker that rewrites topic names
 * would also deliver) and a receipt whose payload is not understood are each audited every time and logged at most
 * once a minute. Real mosquitto, the daemon as a child process.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { parse, stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DaemonProcess, makeWorld, tempDir } from '../helpers/daemon.ts';
import { signedReceipt } from '../helpers/hqKeys.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockctlAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const ST = 'test-st';
const SHA = 'ab'.repeat(32);

describe('the receipt subscription: what is not understood is audited and logged', () => {
  let dir: string;
  let broker: Mosquitto;
  let daemon: DaemonProcess | null = null;

  beforeEach(async () => {
    dir = await tempDir('dockd-receipt-topics-');
    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
  });

  afterEach(async () => {
    await daemon?.kill9();
    daemon = null;
    await broker.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function setPrefix(configFile: string, prefix: string): Promise<void> {
    const doc = parse(await fs.readFile(configFile, 'utf8'));
    doc.hq.mqtt.topicPrefix = prefix;
    await fs.writeFile(configFile, stringify(doc));
  }

  async function run(configFile: string): Promise<DaemonProcess> {
    const d = new DaemonProcess(configFile);
    daemon = d;
    d.start();
    await d.started();
    await d.waitForLog((l) => l.msg === 'connected to broker', 'the daemon to connect to the broker');
    return d;
  }

  it('a receipt arriving under another topic, and receipts that are not understood, are audited each time and logged once', async () => {
    const world = await makeWorld(dir, { tusEndpoint: 'http://127.0.0.1:9/files/', mqttUrl: broker.url });
    await setPrefix(world.configFile, 'old');
    const first = await run(world.configFile);
    expect(await first.stop()).toBe(0);
    // The station now uses another prefix; the broker still holds its session, with the subscription to old/S/receipt.
    await setPrefix(world.configFile, 'dockd');
    const d = await run(world.configFile);

    const receipt = JSON.stringify(signedReceipt(ST, SHA, true));
    const hq = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
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
    for (const j of junk) await sendReceipt(broker.url, ST, j);
    const malformed = await waitFor('three receipt.malformed audit entries', async () => {
      const rows = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'receipt.malformed');
      return rows.length >= 3 ? rows : null;
    });
    expect(malformed.map((e) => e.data.error)).toEqual(['not JSON', expect.stringMatching(/sha256/), 'not JSON']);
    expect(d.logs.filter((l) => String(l.msg).startsWith('malformed receipt from HQ ignored'))).toHaveLength(1);
    // The understood topic still works: the daemon is alive and answers a real receipt (unknown sha256: audited as ignored).
    await sendReceipt(broker.url, ST, { sha256: SHA, ok: true });
    await waitFor('the good receipt to be handled', async () =>
      (await dockctlAudit(world.configFile)).some((e) => e.type === 'receipt.ignored' && e.subject === SHA),
    );
  });
});
