/**
 * HQ receipts on P/S/receipt (QoS 1, {stationId, sha256, ok, at, sig}, signed by the test HQ whose key the world
 * trusts), sent as HQ sends them to a real mosquitto, against the daemon as a child process with a real tus server: ok
 * archives, ok:false uploads again from scratch with an alarm, anything unknown, malformed or repeated is ignored and
 * audited. And with hq.embedded the loop closes by itself, with receipts the embedded HQ signs. (Forgeries:
 * receiptTrust.test.ts.)
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { receiptSignatureValid, type SignedReceipt } from '../../daemon/custody/signatures.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, dockctlFiles, waitForAudit, waitForStates } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { auditHeads, eventsOf } from '../helpers/stationReports.ts';
import { objectPath } from '../helpers/storeOnDisk.ts';

const ST = 'test-st';
const TIMEOUT = 300_000;

describe('HQ receipts against a real broker and tus server', () => {
  const station = useStation({ prefix: 'dockd-receipts-' });

  async function startWith(clips: string[]) {
    const world = await station.world();
    const sub = await station.subscribe(`dockd/${ST}/#`);
    await station.startDaemon(world.configFile);
    const { files } = await dockRecordings(world.mountRoot, 'REC1', clips);
    await waitForStates(
      world.configFile,
      Object.fromEntries(files.map((f) => [f.sha256, 'uploaded'])),
      'every recording uploaded',
    );
    return { world, sub, files };
  }

  it(
    'a receipt ok archives the uploaded file: file.archived on MQTT and a higher retained audit head',
    async () => {
      const { world, sub, files } = await startWith([await sampleMedia('video', 1, 601), await sampleMedia('video', 1, 602)]);
      const [a, b] = files;
      const headsBefore = await waitFor('an audit head on MQTT', () => {
        const h = auditHeads(sub.messages);
        return h.length ? h : null;
      });
      const seqBefore = Math.max(...headsBefore.map((h) => h.seq));

      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      const rows = await waitForStates(world.configFile, { [a.sha256]: 'archived' }, 'the receipted file archived');
      expect(rows.find((f) => f.sha256 === b.sha256)!.state).toBe('uploaded'); // only the one HQ confirmed

      const archivedEvent = await waitFor('a file.archived event', () =>
        eventsOf(sub.messages, 'file.archived').find((e) => e.sha256 === a.sha256),
      );
      expect(archivedEvent).toMatchObject({ type: 'file.archived', sha256: a.sha256, state: 'archived', filename: a.name });
      expect(eventsOf(sub.messages, 'file.archived')).toHaveLength(1);

      // The chain head went up at the archive, and it is the head of the chain dockctl shows.
      const archivedEntry = (await waitForAudit(world.configFile, 'file.archived', { subject: a.sha256 }))[0];
      expect(archivedEntry.seq).toBeGreaterThan(seqBefore);
      const head = await waitFor('an audit head at or past the archive', () =>
        auditHeads(sub.messages).find((h) => h.seq >= archivedEntry.seq),
      );
      const chain = await dockctlAudit(world.configFile);
      expect(chain.find((e) => e.seq === head.seq)?.hash).toBe(head.hash);
      expect(head.at).toMatch(/^\d{4}-\d\d-\d\dT/);

      // Retained: a subscriber that comes later gets the new head at once.
      const late = await station.subscribe(`dockd/${ST}/audit`);
      const retained = await waitFor('the retained audit head', () => auditHeads(late.messages).find((h) => h.retain));
      expect(retained.seq).toBeGreaterThanOrEqual(archivedEntry.seq);
      expect(retained.seq).toBeGreaterThan(seqBefore);

      // HQ may write the digest in capitals: the same file.
      await sendReceipt(station.broker.url, ST, { sha256: b.sha256.toUpperCase(), ok: true });
      await waitForStates(world.configFile, { [a.sha256]: 'archived', [b.sha256]: 'archived' }, 'the second file archived');
      expect(station.tus.finished).toHaveLength(2);
      expect(station.daemon!.proc!.exitCode).toBeNull();
    },
    TIMEOUT,
  );

  it(
    'a receipt ok:false sends the file back to upload from scratch and raises an alarm',
    async () => {
      const { world, sub, files } = await startWith([await sampleMedia('video', 1, 603)]);
      const [a] = files;
      expect(station.tus.finished.filter((u) => u.sha256 === a.sha256)).toHaveLength(1);
      const id = (await dockctlFiles(world.configFile))[0].id;

      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: false });
      const again = await waitFor(
        'a second finished upload of the same content',
        () => {
          const ups = station.tus.finished.filter((u) => u.sha256 === a.sha256);
          return ups.length === 2 ? ups : null;
        },
        90_000,
      );
      expect(again[1].id).not.toBe(again[0].id); // a new upload, not a resume of the one HQ disowned
      expect(again[1].size).toBe(a.size);
      expect(again[1].metadata).toMatchObject({ sha256: a.sha256, filename: a.name, stationId: ST });

      const alarm = await waitFor('an alarm event', () =>
        eventsOf(sub.messages, 'alarm').find((e) => e.code === 'UPLOAD_REFUSED' && e.key === `receipt:${id}`),
      );
      expect(alarm).toMatchObject({ active: true, message: expect.stringContaining(a.sha256.slice(0, 12)) });
      expect(eventsOf(sub.messages, 'file.reupload').some((e) => e.sha256 === a.sha256)).toBe(true);
      await waitForAudit(world.configFile, 'file.reupload', { subject: a.sha256 });
      const status = JSON.parse((await runDockctl(world.configFile, ['status', '--json'])).stdout) as {
        alarms: { code: string }[];
      };
      expect(status.alarms.map((x) => x.code)).toContain('UPLOAD_REFUSED');

      // Uploaded again, then a good receipt closes the loop.
      await waitForStates(world.configFile, { [a.sha256]: 'uploaded' }, 'the file uploaded again');
      expect(eventsOf(sub.messages, 'file.archived')).toHaveLength(0);
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      await waitForStates(world.configFile, { [a.sha256]: 'archived' }, 'archived after the second upload');
    },
    TIMEOUT,
  );

  it(
    'unknown, malformed and mismatched receipts are ignored and audited; the daemon keeps running and still applies good ones',
    async () => {
      const world = await station.world();
      const sub = await station.subscribe(`dockd/${ST}/#`);
      await station.startDaemon(world.configFile);
      const good = await sampleMedia('video', 1, 604);
      const heldSrc = await sampleMedia('video', 1, 605);
      const goodName = recordingName({ at: '20261128090000', seq: 1 });
      const heldName = recordingName({ at: '20261128091000', seq: 2 });
      await dockVolume(world.mountRoot, 'REC1', async (v) => {
        await fs.copyFile(good, path.join(v, goodName));
        await fs.writeFile(
          path.join(v, goodName.replace('.mp4', '.meta.json')),
          JSON.stringify({ caseNo: 'C-1', purpose: '现场检查', place: '幸福路12号' }),
        );
        await fs.copyFile(heldSrc, path.join(v, heldName)); // no sidecar: held for annotation
      });
      const goodSha = await sha256OfFile(good);
      const heldSha = await sha256OfFile(heldSrc);
      await waitForStates(world.configFile, { [goodSha]: 'uploaded', [heldSha]: 'needs-annotation' }, 'one uploaded, one held');
      const auditBefore = await dockctlAudit(world.configFile);

      const unknownSha = randomBytes(32).toString('hex');
      const junk = [
        'this is not JSON {',
        JSON.stringify({ sha256: goodSha }), // no ok
        JSON.stringify({ sha256: 'xyz', ok: true }), // not a sha256
        JSON.stringify({ sha256: goodSha, ok: 'yes' }), // ok not a boolean
        JSON.stringify([goodSha, true]),
      ];
      for (const j of junk) await sendReceipt(station.broker.url, ST, j);
      await sendReceipt(station.broker.url, ST, { sha256: unknownSha, ok: true });
      await sendReceipt(station.broker.url, ST, { sha256: heldSha, ok: true }); // known, but never uploaded
      // Receipts are applied in arrival order: once this one is applied, all of the above have been handled.
      await sendReceipt(station.broker.url, ST, { sha256: goodSha, ok: true });
      const rows = await waitForStates(
        world.configFile,
        { [goodSha]: 'archived' },
        'the good receipt applied after the bad ones',
      );
      expect(rows.find((f) => f.sha256 === heldSha)!.state).toBe('needs-annotation');
      expect(station.daemon!.proc!.exitCode).toBeNull();
      expect(rows).toHaveLength(2);

      const entries = (await dockctlAudit(world.configFile)).filter((e) => e.seq > Math.max(...auditBefore.map((x) => x.seq)));
      const malformed = entries.filter((e) => e.type === 'receipt.malformed');
      expect(malformed.map((e) => e.data.payload)).toEqual(junk);
      expect(malformed[0].data.error).toBe('not JSON');
      expect(String(malformed[1].data.error)).toMatch(/ok/);
      expect(String(malformed[2].data.error)).toMatch(/sha256/);
      expect(String(malformed[3].data.error)).toMatch(/ok/);
      const ignored = entries.filter((e) => e.type === 'receipt.ignored');
      expect(ignored.map((e) => e.subject)).toEqual([unknownSha, heldSha]);
      expect(String(ignored[0].data.reason)).toMatch(/no such recording/);
      expect(String(ignored[1].data.reason)).toMatch(/needs-annotation/);
      // Bad receipts neither archive nor announce anything.
      expect(entries.filter((e) => e.type === 'file.archived').map((e) => e.subject)).toEqual([goodSha]);
      expect(eventsOf(sub.messages, 'file.archived').map((e) => e.sha256)).toEqual([goodSha]);

      // The daemon stays healthy and its chain intact.
      const verify = await runDockctl(world.configFile, ['verify', '--json']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, audit: { ok: true } });
      expect(await station.daemon!.stop()).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'a receipt sent while the station is down is delivered when it comes back (persistent session) and applied',
    async () => {
      const { world, files } = await startWith([await sampleMedia('video', 1, 609)]);
      const [a] = files;
      expect(await station.daemon!.stop()).toBe(0);
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      expect((await dockctlFiles(world.configFile))[0].state).toBe('uploaded'); // nobody applied it yet

      await station.startDaemon(world.configFile);
      await waitForStates(world.configFile, { [a.sha256]: 'archived' }, 'the queued receipt applied after the restart');
      expect((await dockctlAudit(world.configFile)).filter((e) => e.type === 'file.archived').map((e) => e.subject)).toEqual([
        a.sha256,
      ]);
    },
    TIMEOUT,
  );

  it(
    "a receipt ok:false when the station's own copy is damaged too: no upload of bad bytes, an OBJECT_CORRUPT alarm, audited",
    async () => {
      const { world, sub, files } = await startWith([await sampleMedia('video', 1, 610)]);
      const [a] = files;
      const object = objectPath(world.storeDir, a.sha256);
      const h = await fs.open(object, 'r+'); // the store is write-once by mode; a fault (or root) can still damage it
      try {
        await h.write(Buffer.from('XXXX'), 0, 4, Math.floor(a.size / 2));
      } finally {
        await h.close();
      }
      expect(await sha256OfFile(object)).not.toBe(a.sha256);

      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: false });
      const mismatch = await waitForAudit(world.configFile, 'receipt.mismatch', { subject: a.sha256 });
      expect(mismatch[0].data).toMatchObject({ localIntact: false });
      const alarm = await waitFor('an OBJECT_CORRUPT alarm event', () =>
        eventsOf(sub.messages, 'alarm').find((e) => e.code === 'OBJECT_CORRUPT'),
      );
      expect(alarm).toMatchObject({ active: true, key: `object:${a.sha256}` });
      // Not sent back to the queue: the damaged bytes must not go out as this recording.
      expect((await dockctlFiles(world.configFile))[0].state).toBe('uploaded');
      expect((await dockctlAudit(world.configFile)).map((e) => e.type)).not.toContain('file.reupload');
      expect(station.tus.finished).toHaveLength(1);
      const verify = await runDockctl(world.configFile, ['verify', '--json']);
      expect(verify.code).not.toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: false, bad: [{ sha256: a.sha256 }] });
    },
    TIMEOUT,
  );

  it(
    'a duplicate receipt leaves the state unchanged and is audited as receipt.duplicate',
    async () => {
      const { world, sub, files } = await startWith([await sampleMedia('video', 1, 606)]);
      const [a] = files;
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      await waitForStates(world.configFile, { [a.sha256]: 'archived' }, 'archived');
      const rowBefore = (await dockctlFiles(world.configFile))[0];

      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256.toUpperCase(), ok: true });
      const dups = await waitForAudit(world.configFile, 'receipt.duplicate', { subject: a.sha256, n: 2 });
      expect(dups).toHaveLength(2);
      expect(dups[0].data).toMatchObject({ ok: true, id: rowBefore.id });

      const rowAfter = (await dockctlFiles(world.configFile))[0];
      expect(rowAfter).toEqual(rowBefore);
      const chain = await dockctlAudit(world.configFile);
      expect(chain.filter((e) => e.type === 'file.archived')).toHaveLength(1);
      expect(eventsOf(sub.messages, 'file.archived')).toHaveLength(1);
      expect(station.tus.finished).toHaveLength(1);
    },
    TIMEOUT,
  );
});

describe('with hq.embedded: true the whole loop works out of the box', () => {
  // The daemon brings HQ's tus server and broker itself.
  const station = useStation({ prefix: 'dockd-embedded-', broker: false, tus: false });

  it(
    'uploads to the embedded HQ, which re-hashes and sends receipts: every file ends archived with no receipt from the test',
    async () => {
      const tusEndpoint = `http://127.0.0.1:${await freePort()}/files/`;
      const mqttUrl = `mqtt://127.0.0.1:${await freePort()}`;
      const world = await station.world({
        tusEndpoint,
        mqttUrl,
        extra: {
          hq: {
            embedded: true,
            tus: { endpoint: tusEndpoint, stallTimeoutSeconds: 5, maxRetryDelaySeconds: 2 },
            mqtt: { url: mqttUrl, topicPrefix: 'dockd' },
          },
        },
      });
      const daemon = await station.startDaemon(world.configFile);
      const sub = await station.subscribe(`dockd/${ST}/#`, mqttUrl);

      const { files } = await dockRecordings(world.mountRoot, 'REC1', [
        await sampleMedia('video', 1, 607),
        await sampleMedia('video', 1, 608),
      ]);
      const rows = await waitForStates(
        world.configFile,
        Object.fromEntries(files.map((f) => [f.sha256, 'archived'])),
        'every file archived by the embedded HQ',
        120_000,
      );
      expect(rows).toHaveLength(2);

      // HQ holds exact copies (its own files), and said so on the receipt topic.
      const uploadsDir = path.join(station.dir, 'hq', 'uploads');
      const held = new Set<string>();
      for (const n of await fs.readdir(uploadsDir))
        if (!n.endsWith('.json')) held.add(await sha256OfFile(path.join(uploadsDir, n)));
      for (const f of files) expect(held.has(f.sha256)).toBe(true);
      const receipts = sub.messages
        .filter((m) => m.topic === `dockd/${ST}/receipt`)
        .map((m) => JSON.parse(m.payload) as SignedReceipt);
      expect(receipts.map((r) => r.sha256).sort()).toEqual(files.map((f) => f.sha256).sort());
      expect(receipts.every((r) => r.ok === true)).toBe(true);
      // Signed with the embedded HQ's own key (kept in its dir), which the station trusts with no hq.receiptKey set.
      const hqKey = createPublicKey(await fs.readFile(path.join(station.dir, 'hq', 'receipt-key.pub.pem'), 'utf8'));
      for (const r of receipts) {
        expect(r.stationId).toBe(ST);
        expect(receiptSignatureValid(hqKey, r)).toBe(true);
      }
      expect((await fs.stat(path.join(station.dir, 'hq', 'receipt-key.pem'))).mode & 0o777).toBe(0o600);
      expect(rows.every((f) => (f as unknown as { receiptAt: string | null }).receiptAt !== null)).toBe(true);

      await waitFor('file.archived events for both', () => eventsOf(sub.messages, 'file.archived').length === 2);
      const archivedSeq = Math.max(
        ...(await dockctlAudit(world.configFile)).filter((e) => e.type === 'file.archived').map((e) => e.seq),
      );
      await waitFor('the audit head past both archives', () => auditHeads(sub.messages).some((h) => h.seq >= archivedSeq));
      const verify = await runDockctl(world.configFile, ['verify']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      expect(await daemon.stop()).toBe(0);
    },
    TIMEOUT,
  );
});
