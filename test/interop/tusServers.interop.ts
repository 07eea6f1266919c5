/**
 * The upload half of the chain against the tus servers an HQ may already run: @tus/server 2 (what the other tests
 * use), @tus/server 1.x and tus-node-server 0.9, each with its file store, in a process of its own (so it can be
 * killed with SIGKILL mid-upload, as a machine dies), behind a link slow enough to catch an upload part-way.
 * Per server: the upload completes with every metadata value intact (Chinese included) and HQ's re-hash agrees; a
 * server killed mid-upload is resumed from its own offset without re-sending a byte; a server that forgot the upload
 * gets a fresh one from the start. The daemon is a child process; the receipt closing the loop is signed by HQ's key.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bigClip } from '../helpers/bigMedia.ts';
import { DaemonProcess, tempDir } from '../helpers/daemon.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { ThrottleProxy } from '../helpers/throttleProxy.ts';
import { TusChild } from '../helpers/tusChild.ts';
import type { TusImpl } from '../helpers/tusServerProcess.ts';
import { dockctlJson, stationWorld, type FileJson } from './support.ts';
import { sendReceipt } from '../helpers/receipts.ts';

/** About 7 s for the ~27 MB clip: long enough to kill the server part-way, whatever the machine's load. */
const LINK_BYTES_PER_SECOND = 4 << 20;
const ST = 'tus-interop';

const SERVERS: { impl: TusImpl; title: string }[] = [
  { impl: 'tus2', title: '@tus/server 2 + @tus/file-store 2' },
  { impl: 'tus1', title: '@tus/server 1.10 + @tus/file-store 1.5' },
  { impl: 'tus09', title: 'tus-node-server 0.9 FileStore' },
];

describe.each(SERVERS)('$title', ({ impl }) => {
  let dir: string;
  let brokerDir: string;
  let broker: Mosquitto;
  let server: TusChild;
  let link: ThrottleProxy;
  let daemon: DaemonProcess | null = null;

  beforeAll(async () => {
    await bigClip(0);
    brokerDir = await tempDir(`dockd-interop-${impl}-mqtt-`);
    broker = new Mosquitto(path.join(brokerDir, 'mosquitto'));
    await broker.start();
  });

  afterAll(async () => {
    await broker.stop();
    await fs.rm(brokerDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await daemon?.kill9();
    daemon = null;
    await link.stop();
    await server.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A station uploading to `impl` through the slow link, one upload at a time, with `clip` docked. */
  async function station(variant: number) {
    dir = await tempDir(`dockd-interop-${impl}-`);
    server = new TusChild(impl, path.join(dir, 'hq'));
    await server.start();
    link = new ThrottleProxy({ port: server.port }, LINK_BYTES_PER_SECOND);
    await link.start();
    const world = await stationWorld(dir, {
      tusEndpoint: `http://127.0.0.1:${link.port}/files/`,
      mqttUrl: broker.url,
      stationId: ST,
      tus: { concurrency: 1, stallTimeoutSeconds: 10 },
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const {
      files: [rec],
    } = await dockRecordings(world.mountRoot, 'REC1', [await bigClip(variant)]);
    return { world, rec, d: daemon };
  }

  /** Waits until the server has written a quarter of the upload, then kills it: returns the bytes it had on disk. */
  async function killPartWay(size: number): Promise<number> {
    await waitFor('a quarter of the upload at HQ', () => server.received >= size / 4, 120_000, 20);
    await server.kill();
    const files = await server.uploadFiles();
    expect(files).toHaveLength(1);
    return files[0].size;
  }

  it('killed mid-upload: resumed from its offset without re-sending; complete, metadata intact, re-hash agrees', async () => {
    const { world, rec, d } = await station(0);
    const partial = await killPartWay(rec.size);
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(rec.size);

    await server.start();
    const done = await waitFor('HQ to finish the upload', () => server.finished.find((u) => u.sha256 === rec.sha256), 120_000);
    // The restarted server received exactly what it lacked: nothing was sent twice.
    expect(server.received).toBe(rec.size - partial);
    expect(server.refused).toEqual([]);
    expect(done.size).toBe(rec.size);
    await d.waitForLog((l) => l.msg === 'resuming upload', 'the daemon to resume, not restart, the upload');
    expect(done.metadata).toMatchObject({
      filename: rec.name,
      filetype: 'video/mp4',
      sha256: rec.sha256,
      size: String(rec.size),
      stationId: ST,
      deviceSerial: '1234567',
      officerId: '012345',
      caseNo: 'C-1',
      place: '幸福路12号',
      purpose: '现场执法',
      important: '0',
      integrity: 'ok',
      capturedAt: '2026-11-28T08:00:00+08:00',
      filenameHex: Buffer.from(rec.name).toString('hex'),
    });
    expect(done.metadata.stationKey).toMatch(/^[A-Za-z0-9+/]+=*$/);

    await waitFor('uploaded', async () =>
      (await dockctlJson<FileJson[]>(world.configFile, ['files'])).some((f) => f.sha256 === rec.sha256 && f.state === 'uploaded'),
    );
    await sendReceipt(broker.url, ST, { sha256: rec.sha256, ok: true });
    await waitFor("archived on HQ's signed receipt", async () =>
      (await dockctlJson<FileJson[]>(world.configFile, ['files'])).some((f) => f.sha256 === rec.sha256 && f.state === 'archived'),
    );
    expect(await d.stop()).toBe(0);
  });

  it('forgets the upload mid-way: dockd starts a fresh one, from byte 0, and completes it', async () => {
    const { world, rec, d } = await station(1);
    const partial = await killPartWay(rec.size);
    expect(partial).toBeLessThan(rec.size);
    await server.forget();
    await server.start();

    await d.waitForLog(
      (l) => l.msg === 'HQ no longer has this upload: starting it again from the beginning',
      'the daemon to see the upload is gone',
      60_000,
    );
    const done = await waitFor(
      'HQ to finish the fresh upload',
      () => server.finished.find((u) => u.sha256 === rec.sha256),
      120_000,
    );
    expect(server.received).toBe(rec.size); // every byte again, since HQ kept none
    expect(done).toMatchObject({ size: rec.size, metadata: { sha256: rec.sha256, filename: rec.name, purpose: '现场执法' } });
    expect(await server.uploadFiles()).toEqual([{ name: done.id, size: rec.size }]);
    await waitFor('uploaded', async () =>
      (await dockctlJson<FileJson[]>(world.configFile, ['files'])).some((f) => f.sha256 === rec.sha256 && f.state === 'uploaded'),
    );
    expect(await d.stop()).toBe(0);
  });
});
