import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { sha256OfFile } from '../../scripts/media.ts';
import { bigClip } from '../helpers/bigMedia.ts';
import { runDockctl, type LogLine } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings, type PlacedRecording } from '../helpers/recordings.ts';
import { useStation, type World } from '../helpers/station.ts';
import { ThrottleProxy } from '../helpers/throttleProxy.ts';
import { TusTestServer } from '../helpers/tusServer.ts';

/** The link to HQ: slow enough that a ~27 MB upload takes several seconds, so it can be interrupted part-way. */
const LINK_BYTES_PER_SECOND = 4 << 20;

interface CatalogFile {
  id: number;
  sha256: string;
  state: string;
  uploadUrl: string | null;
}

async function catalogFiles(configFile: string): Promise<CatalogFile[]> {
  const r = await runDockctl(configFile, ['files', '--json']);
  if (r.code !== 0) throw new Error(`dockctl files failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as CatalogFile[];
}

describe('resumable upload to HQ: crash, forgotten upload, stalled link, cut link', () => {
  const station = useStation();
  /** The station's HQ server (a test may replace it with a fresh one on the same address). */
  let tus: TusTestServer;
  let proxy: ThrottleProxy;
  let world: World;
  let clip: string;

  beforeEach(async () => {
    clip = await bigClip(0);
    tus = station.tus;
    proxy = new ThrottleProxy({ port: tus.port }, LINK_BYTES_PER_SECOND);
    await proxy.start();
    station.onCleanup(() => proxy.stop());
  });

  /** The daemon uploads through the proxy; `stallTimeoutSeconds` long enough that a test may hold the link paused. */
  async function makeStation(stallTimeoutSeconds: number): Promise<void> {
    world = await station.world({
      tusEndpoint: `http://127.0.0.1:${proxy.port}/files/`,
      tus: { concurrency: 1, stallTimeoutSeconds },
    });
  }

  const startDaemon = () => station.startDaemon(world.configFile);

  /**
   * Docks one big recording, waits until HQ holds at least `fraction` of its bytes, and then freezes the link (nothing
   * moves, connections stay open), so the upload is certainly part-way whatever the machine's speed.
   */
  async function dockAndFreezePartway(fraction: number): Promise<PlacedRecording> {
    const {
      files: [rec],
    } = await dockRecordings(world.mountRoot, 'REC1', [clip]);
    await waitFor(
      `HQ to receive ${Math.round(fraction * 100)} % of the upload`,
      () => tus.bytesReceived >= rec.size * fraction,
      60_000,
      20,
    );
    proxy.pause();
    expect(tus.bytesReceived).toBeLessThan(rec.size);
    expect(tus.finished).toEqual([]);
    return rec;
  }

  /** Lets the link move again, at full speed. */
  function thaw(): void {
    proxy.setRate(Infinity);
    proxy.resume();
  }

  /** HQ finished exactly one upload, of exactly this recording, and it re-hashed to the recording's sha256. */
  function expectDeliveredOnce(server: TusTestServer, rec: PlacedRecording): void {
    expect(server.finished.map((u) => u.sha256)).toEqual([rec.sha256]);
    expect(server.finished[0].size).toBe(rec.size);
    expect(server.refused).toEqual([]);
  }

  async function expectCatalogUploaded(rec: PlacedRecording): Promise<CatalogFile> {
    const rows = await waitFor(
      'the catalog to show the recording uploaded',
      async () => {
        const r = await catalogFiles(world.configFile);
        return r.length === 1 && r[0].state === 'uploaded' ? r : null;
      },
      30_000,
    );
    expect(rows[0].sha256).toBe(rec.sha256);
    return rows[0];
  }

  it('kill -9 mid-upload, then restart: resumes at the server offset and completes exactly once', async () => {
    await makeStation(600);
    const first = await startDaemon();
    const rec = await dockAndFreezePartway(0.4);
    // The upload URL is in the catalog as soon as HQ created the upload.
    const [before] = await waitFor('the upload URL in the catalog', async () => {
      const r = await catalogFiles(world.configFile);
      return r.length === 1 && r[0].uploadUrl ? r : null;
    });
    expect(before.state).toBe('uploading');
    await first.kill9();
    expect(tus.finished).toEqual([]);

    thaw();
    const second = await startDaemon();
    const resumed = await second.waitForLog((l) => l.msg === 'resuming upload', 'the restarted daemon to resume the upload');
    expect(resumed.resume).toBe(true);
    await waitFor('HQ to finish the upload', () => tus.finished.length >= 1, 60_000);

    expectDeliveredOnce(tus, rec);
    // Resumed, not started over: HQ received the file about once (a restart from zero would be >= 1.4 × its size).
    expect(tus.bytesReceived).toBeGreaterThanOrEqual(rec.size);
    expect(tus.bytesReceived).toBeLessThan(rec.size * 1.1);
    expect(second.logs.some((l) => /HQ no longer has this upload/.test(l.msg))).toBe(false);
    const after = await expectCatalogUploaded(rec);
    expect(after.uploadUrl).toBe(before.uploadUrl);
    expect(await sha256OfFile(path.join(station.dir, 'hq', tus.finished[0].id))).toBe(rec.sha256);
  });

  it('HQ forgot the upload while dockd was stopped: HEAD 404, a deliberate fresh upload, completed exactly once', async () => {
    await makeStation(600);
    const first = await startDaemon();
    const rec = await dockAndFreezePartway(0.3);
    const [before] = await waitFor('the upload URL in the catalog', async () => {
      const r = await catalogFiles(world.configFile);
      return r.length === 1 && r[0].uploadUrl ? r : null;
    });
    expect(await first.stop()).toBe(0);
    expect(tus.finished).toEqual([]);

    // HQ restarts on the same address with an empty store: it no longer knows the upload.
    const oldTus = tus;
    await oldTus.stop();
    tus = station.tus = new TusTestServer(path.join(station.dir, 'hq2'));
    await tus.start(oldTus.port);
    thaw();

    const second = await startDaemon();
    const gone = await second.waitForLog(
      (l) => /HQ no longer has this upload/.test(l.msg),
      'the daemon to notice HQ forgot the upload',
    );
    expect(gone.url).toBe(before.uploadUrl);
    expect(gone.status).toBe(404);
    await waitFor('HQ to finish the fresh upload', () => tus.finished.length >= 1, 60_000);

    expectDeliveredOnce(tus, rec);
    expect(oldTus.finished).toEqual([]);
    // A fresh upload sends the whole file once.
    expect(tus.bytesReceived).toBeGreaterThanOrEqual(rec.size);
    expect(tus.bytesReceived).toBeLessThan(rec.size * 1.1);
    const after = await expectCatalogUploaded(rec);
    expect(after.uploadUrl).not.toBe(before.uploadUrl);
    expect(after.uploadUrl).toContain(tus.finished[0].id);
    expect(await sha256OfFile(path.join(station.dir, 'hq2', tus.finished[0].id))).toBe(rec.sha256);
  });

  it('a stalled link: after stallTimeoutSeconds the request is aborted and resumed, and finishes once the link moves', async () => {
    await makeStation(5);
    const d = await startDaemon();
    const rec = await dockAndFreezePartway(0.3);
    const stalled = await d.waitForLog(
      (l) => l.msg.startsWith('upload stalled'),
      'the daemon to give up on the stalled request',
      30_000,
    );
    expect(tus.finished).toEqual([]);
    const stalledAt = d.logs.indexOf(stalled);
    thaw();
    await waitFor('HQ to finish the upload', () => tus.finished.length >= 1, 60_000);

    expectDeliveredOnce(tus, rec);
    expect(tus.bytesReceived).toBeLessThan(rec.size * 1.1);
    // After the stall it resumed the same upload (never started over).
    expect(d.logs.slice(stalledAt).some((l: LogLine) => l.msg === 'resuming upload' && l.resume === true)).toBe(true);
    expect(d.logs.some((l) => /HQ no longer has this upload/.test(l.msg))).toBe(false);
    await expectCatalogUploaded(rec);
  });

  it('a cut link (every connection dropped) mid-upload: retried, resumed at the server offset, delivered once', async () => {
    await makeStation(600);
    const d = await startDaemon();
    const rec = await dockAndFreezePartway(0.4);
    proxy.dropAll();
    await d.waitForLog((l) => l.msg === 'upload failed; will retry', 'the daemon to notice the cut link');
    expect(tus.finished).toEqual([]);
    thaw();
    await waitFor('HQ to finish the upload', () => tus.finished.length >= 1, 60_000);

    expectDeliveredOnce(tus, rec);
    expect(tus.bytesReceived).toBeLessThan(rec.size * 1.1);
    await expectCatalogUploaded(rec);
    // The HQ alarm raised by the failure is cleared by the success.
    await d.waitForLog((l) => l.msg === 'alarm cleared' && l.code === 'HQ_UNREACHABLE', 'the HQ alarm to clear');
  });
});
