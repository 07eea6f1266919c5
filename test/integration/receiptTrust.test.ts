/**
 * Receipts only from HQ, and only for what HQ has, against a real mosquitto, a real tus server and the daemon as a
 * child process. Forged receipts (another key, no signature, HQ's receipt replayed for another sha256 or with `ok`
 * flipped, HQ's receipt for another station) change nothing and are audited, while HQ's signed receipt archives; a
 * signed receipt for an upload HQ does not hold whole changes nothing; and without hq.receiptKey a receipt archives
 * but never lets the recording be freed at the station or wiped from the recorder.
 */
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { signedReceipt } from '../helpers/hqKeys.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { TusGate } from '../helpers/tusGate.ts';
import { writeCorrupt } from '../helpers/brokenFiles.ts';
import { runDockctl, writeConfigVariant } from '../helpers/daemon.ts';
import { dockctlAudit, dockctlFiles, waitForAudit, waitForStates } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { useStation } from '../helpers/station.ts';
import { eventsOf } from '../helpers/stationReports.ts';
import { objectPath } from '../helpers/storeOnDisk.ts';
import { exists } from '../helpers/trees.ts';

const ST = 'test-st';
const TIMEOUT = 300_000;

describe('receipts change something only when HQ signed them, and only for what HQ holds', () => {
  const station = useStation({ prefix: 'dockd-receipt-trust-' });

  it(
    "forged receipts (another key, none, replayed for another sha256, ok flipped, for another station) are refused and audited; HQ's own archives",
    async () => {
      const world = await station.world();
      const sub = await station.subscribe(`dockd/${ST}/#`);
      await station.startDaemon(world.configFile);
      const {
        files: [a, b],
      } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 641), await sampleMedia('video', 1, 642)]);
      await waitForStates(world.configFile, { [a.sha256]: 'uploaded', [b.sha256]: 'uploaded' }, 'both uploaded');
      const lastSeq = Math.max(...(await dockctlAudit(world.configFile)).map((e) => e.seq));

      const intruder = generateKeyPairSync('ed25519');
      const hqForB = signedReceipt(ST, b.sha256, true);
      const forged: { why: RegExp; subject: string; body: string }[] = [
        {
          why: /bad signature/,
          subject: a.sha256,
          body: JSON.stringify(signedReceipt(ST, a.sha256, true, { key: intruder.privateKey })),
        },
        { why: /unsigned/, subject: a.sha256, body: JSON.stringify({ sha256: a.sha256, ok: true }) }, // the forgery of the issue
        {
          why: /unsigned/,
          subject: a.sha256,
          body: JSON.stringify({ stationId: ST, sha256: a.sha256, ok: true, at: new Date().toISOString() }),
        },
        { why: /bad signature/, subject: a.sha256, body: JSON.stringify({ ...hqForB, sha256: a.sha256 }) }, // HQ's receipt for b, replayed for a
        { why: /bad signature/, subject: a.sha256, body: JSON.stringify({ ...hqForB, sha256: a.sha256.toUpperCase() }) },
        { why: /bad signature/, subject: b.sha256, body: JSON.stringify({ ...hqForB, ok: false }) }, // would force a re-upload
        { why: /bad signature/, subject: b.sha256, body: JSON.stringify({ ...hqForB, sig: `${'A'.repeat(86)}==` }) },
        {
          why: /without stationId or at/,
          subject: b.sha256,
          body: JSON.stringify({ sha256: b.sha256, ok: true, sig: hqForB.sig }),
        },
        {
          why: /for station "other-st", not this one/,
          subject: a.sha256,
          body: JSON.stringify(signedReceipt('other-st', a.sha256, true)),
        },
        { why: /unsigned/, subject: b.sha256, body: JSON.stringify({ sha256: b.sha256, ok: false }) },
      ];
      for (const f of forged) await sendReceipt(station.broker.url, ST, f.body);
      // Receipts are applied in arrival order: once HQ's own receipt for b is applied, every forgery before it was handled.
      await sendReceipt(station.broker.url, ST, JSON.stringify(hqForB));
      const after = await waitForStates(world.configFile, { [b.sha256]: 'archived' }, "b archived by HQ's signed receipt");
      expect(after.find((f) => f.sha256 === a.sha256)).toMatchObject({ state: 'uploaded', receiptAt: null, archivedAt: null });
      expect(after.find((f) => f.sha256 === b.sha256)!.receiptAt).toMatch(/^\d{4}-\d\d-\d\dT/);

      const entries = (await dockctlAudit(world.configFile)).filter((e) => e.seq > lastSeq);
      const refused = entries.filter((e) => e.type === 'receipt.refused');
      expect(refused.map((e) => e.subject)).toEqual(forged.map((f) => f.subject));
      refused.forEach((e, i) => {
        expect(String(e.data.reason), forged[i].body).toMatch(forged[i].why);
        expect(e.data.payload).toBe(forged[i].body);
      });
      // Nothing else happened: one archive (b, by HQ), no re-upload, no alarm, HQ received each recording once.
      expect(entries.filter((e) => e.type === 'file.archived').map((e) => e.subject)).toEqual([b.sha256]);
      expect(entries.map((e) => e.type)).not.toContain('file.reupload');
      expect(eventsOf(sub.messages, 'alarm').filter((e) => e.code === 'UPLOAD_REFUSED')).toEqual([]);
      expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([a.sha256, b.sha256].sort());
      const archived = await waitFor('the file.archived event', () =>
        eventsOf(sub.messages, 'file.archived').find((e) => e.sha256 === b.sha256),
      );
      expect(archived).toMatchObject({ state: 'archived', signedReceipt: true });
      // Each one audited, but the journal gets a warning at most once a minute, not one per forgery.
      const warned = station.daemon!.logs.filter((l) => String(l.msg).startsWith('receipt not from HQ ignored')).length;
      expect(warned).toBeGreaterThanOrEqual(1);
      expect(warned).toBeLessThan(forged.length);

      // HQ's own receipt for a archives it too; the chain stays intact.
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      await waitForStates(world.configFile, { [a.sha256]: 'archived' }, "a archived by HQ's signed receipt");
      const verify = await runDockctl(world.configFile, ['verify', '--json']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    },
    TIMEOUT,
  );

  it(
    "a signed receipt for an upload HQ does not hold whole changes nothing; once the station finished it, HQ's receipt archives",
    async () => {
      const gate = new TusGate(station.tus.port);
      await gate.start();
      station.onCleanup(() => gate.stop());
      gate.hold(['POST', 'PATCH']);
      const world = await station.world({ tusEndpoint: gate.endpoint, tus: { stallTimeoutSeconds: 600 } });
      const sub = await station.subscribe(`dockd/${ST}/#`);
      await station.startDaemon(world.configFile);
      const {
        files: [a],
      } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 643)]);

      // The upload has started, but HQ has not even created it: its offset is unknown.
      await waitFor('the creation request held before HQ', () => gate.holding.includes('POST'), 90_000);
      expect((await dockctlFiles(world.configFile))[0]).toMatchObject({ sha256: a.sha256, state: 'uploading', uploadUrl: null });
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      const [first] = await waitForAudit(world.configFile, 'receipt.ignored', { subject: a.sha256 });
      expect(first.data).toMatchObject({ ok: true, signed: true });
      expect(String(first.data.reason)).toMatch(/upload not finished: .*not even created it/);
      expect((await dockctlFiles(world.configFile))[0]).toMatchObject({ state: 'uploading', receiptAt: null, archivedAt: null });

      // HQ creates the upload but has none of its bytes (the PATCH is held): its HEAD says offset 0.
      gate.release(['POST']);
      await waitFor(
        'the upload URL in the catalog',
        async () => (await dockctlFiles(world.configFile))[0].uploadUrl !== null,
        60_000,
      );
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      const ignored = await waitForAudit(world.configFile, 'receipt.ignored', { subject: a.sha256, n: 2 });
      expect(String(ignored[1].data.reason)).toContain(`HQ holds 0 of ${a.size} bytes`);
      expect((await dockctlFiles(world.configFile))[0]).toMatchObject({ state: 'uploading', receiptAt: null, archivedAt: null });
      expect(station.tus.finished).toEqual([]);

      // The upload goes on undisturbed and completes; then HQ's receipt archives it.
      gate.release(['PATCH']);
      await waitForStates(world.configFile, { [a.sha256]: 'uploaded' }, 'the upload finished');
      expect(station.tus.finished.map((u) => u.sha256)).toEqual([a.sha256]);
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      const [done] = await waitForStates(
        world.configFile,
        { [a.sha256]: 'archived' },
        "archived on HQ's receipt for the finished upload",
      );
      expect(done.receiptAt).toMatch(/^\d{4}-/);
      const types = (await dockctlAudit(world.configFile)).filter((e) => e.subject === a.sha256).map((e) => e.type);
      expect(types.filter((t) => t === 'file.archived')).toHaveLength(1);
      expect(types.indexOf('file.archived')).toBeGreaterThan(types.indexOf('file.uploaded'));
      expect(eventsOf(sub.messages, 'file.archived').map((e) => e.sha256)).toEqual([a.sha256]);
    },
    TIMEOUT,
  );

  it(
    'without hq.receiptKey a receipt archives, but never lets the recording be freed here nor wiped from the recorder',
    async () => {
      // With HQ's key: a and b uploaded, HQ's signed receipt archives b. Then the recorder is taken away.
      const world = await station.world();
      const first = await station.startDaemon(world.configFile);
      const {
        volume,
        files: [a, b],
      } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 644), await sampleMedia('video', 1, 645)]);
      await waitForStates(world.configFile, { [a.sha256]: 'uploaded', [b.sha256]: 'uploaded' }, 'both uploaded');
      await sendReceipt(station.broker.url, ST, { sha256: b.sha256, ok: true });
      await waitForStates(world.configFile, { [b.sha256]: 'archived' }, 'b archived by HQ');
      const away = path.join(station.dir, 'recorder-away');
      await fs.rename(volume, away);
      await waitForAudit(world.configFile, 'recorder.undocked');
      expect(await first.stop()).toBe(0);

      // The same station without a key, wiping after archive, keeping nothing after archive (retention 0).
      const hq = { ...(world.config.hq as Record<string, unknown>) };
      delete hq.receiptKey;
      const configFile = await writeConfigVariant(world.config, path.join(station.dir, 'no-key', 'dockd.yaml'), {
        hq,
        dock: { ...(world.config.dock as Record<string, unknown>), wipe: 'after-archive', rescanSeconds: 0.3 },
        retention: { localDays: 0 },
      });
      const sub = await station.subscribe(`dockd/${ST}/#`);
      const second = await station.startDaemon(configFile);
      expect(second.logs.some((l) => /hq\.receiptKey is not set/.test(l.msg))).toBe(true);
      // Retention ran at start-up: b (archived on HQ's signed receipt) is freed, a is kept.
      expect(await exists(objectPath(world.storeDir, b.sha256))).toBe(false);
      expect(await exists(objectPath(world.storeDir, a.sha256))).toBe(true);

      // Anyone on the broker can now send a receipt: it archives a, but unsigned.
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true }, 'dockd', false);
      const archivedRows = await waitForStates(configFile, { [a.sha256]: 'archived' }, 'a archived on an unsigned receipt');
      expect(archivedRows.find((f) => f.sha256 === a.sha256)).toMatchObject({ receiptAt: null, localDeletedAt: null });
      expect(archivedRows.find((f) => f.sha256 === a.sha256)!.archivedAt).toMatch(/^\d{4}-/);
      const event = await waitFor('the file.archived event', () =>
        eventsOf(sub.messages, 'file.archived').find((e) => e.sha256 === a.sha256),
      );
      expect(event).toMatchObject({ signedReceipt: false });

      // The recorder comes back: the wipe gate deletes b (HQ signed for it) and leaves a.
      await fs.rename(away, volume);
      await waitFor('b deleted from the recorder', async () => !(await exists(path.join(volume, b.relPath))), 60_000);
      // The session loop (pass, wipe, sleep) goes round at least once more: a marker is taken, then a second one.
      for (let i = 0; i < 2; i++) {
        const name = recordingName({ at: `2026112823${String(10 + i)}00`, seq: 900 + i });
        await writeCorrupt(path.join(volume, 'DCIM', `${name}.part`), 777);
        await fs.rename(path.join(volume, 'DCIM', `${name}.part`), path.join(volume, 'DCIM', name));
        const sha = await sha256OfFile(path.join(volume, 'DCIM', name));
        await waitFor(
          `marker ${i + 1} catalogued`,
          async () => (await dockctlFiles(configFile)).some((f) => f.sha256 === sha),
          60_000,
        );
      }
      expect(await second.stop()).toBe(0);
      expect(await sha256OfFile(path.join(volume, a.relPath))).toBe(a.sha256);

      // A restart runs retention again: a's object stays, whatever the retention says.
      const third = await station.startDaemon(configFile);
      expect(await exists(objectPath(world.storeDir, a.sha256))).toBe(true);
      expect((await dockctlFiles(configFile)).find((f) => f.sha256 === a.sha256)).toMatchObject({
        state: 'archived',
        receiptAt: null,
        localDeletedAt: null,
      });
      expect(await third.stop()).toBe(0);
      const trail = await dockctlAudit(configFile);
      expect(trail.filter((e) => e.type === 'object.deleted').map((e) => e.subject)).toEqual([b.sha256]);
      expect(trail.filter((e) => e.type === 'recorder.file-deleted').map((e) => e.subject)).toEqual([b.sha256]);
    },
    TIMEOUT,
  );
});
