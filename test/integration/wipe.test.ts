/**
 * The recorder wipe gate (dock.wipe). With after-archive a recording leaves the recorder only after HQ's receipt, and
 * only while the file there is still the archived content; held, rejected, unknown and non-recording files are never
 * touched. With the default (never) nothing is deleted at all. Real daemon, real mosquitto, real tus server; the
 * recorder is a directory volume. (Through a control channel: wipeControlChannel.test.ts; through a read-write remount
 * of USB storage: wipeRemount.test.ts.)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { writeCorrupt } from '../helpers/brokenFiles.ts';
import { dockctlAudit, dockctlFiles, waitForAudit, waitForStates } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { eventsOf } from '../helpers/stationReports.ts';
import { exists, fileContents } from '../helpers/trees.ts';

const ST = 'test-st';
const TIMEOUT = 300_000;
/** Recorder files get this mtime (whole seconds), so a test can put it back after changing a file in place. */
const REC_TIME = new Date('2026-11-28T01:00:00Z');
const SIDECAR = { caseNo: 'C-7', purpose: '现场执法', place: '幸福路12号' };

interface Clip {
  name: string;
  rel: string;
  sha256: string;
  size: number;
}

describe('wipe gate for recorders', () => {
  const station = useStation({ prefix: 'dockd-wipe-' });
  let marker = 0;

  async function start(wipe: 'never' | 'after-archive' | undefined) {
    const mountRoot = path.join(station.dir, 'dock');
    const world = await station.world({
      extra: { dock: { mountRoots: [mountRoot], settleMs: 100, rescanSeconds: 0.3, ...(wipe ? { wipe } : {}) } },
    });
    expect(world.mountRoot).toBe(mountRoot);
    const sub = await station.subscribe(`dockd/${ST}/#`);
    await station.startDaemon(world.configFile);
    return { world, sub };
  }

  /** Puts a copy of `src` on the volume under DCIM with the fixed recorder mtime, optionally with a complete sidecar. */
  async function place(v: string, src: string | Buffer, name: string, sidecar: boolean): Promise<Clip> {
    const rel = path.join('DCIM', name);
    const abs = path.join(v, rel);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    if (typeof src === 'string') await fs.copyFile(src, abs);
    else await fs.writeFile(abs, src);
    await fs.utimes(abs, REC_TIME, REC_TIME);
    if (sidecar) await fs.writeFile(abs.replace(/\.[^.]+$/, '.meta.json'), JSON.stringify(SIDECAR));
    return { name, rel, sha256: await sha256OfFile(abs), size: (await fs.stat(abs)).size };
  }

  /**
   * Proves the session loop (pass, then wipe, then sleep) went round after this point: a new recording is dropped in
   * and, once it is catalogued, a second one. The second can only be taken by a later pass, so the wipe that followed
   * the first pass has finished by then. (The markers are garbage without a sidecar: damaged, held for annotation.)
   */
  async function loopWentRound(configFile: string, volume: string): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const name = recordingName({ at: `2026112823${String(marker).padStart(2, '0')}00`, seq: 900 + marker });
      marker++;
      const blob = await writeCorrupt(path.join(volume, 'DCIM', `${name}.part`), 512);
      await fs.rename(path.join(volume, 'DCIM', `${name}.part`), path.join(volume, 'DCIM', name));
      const sha = await sha256OfFile(path.join(volume, 'DCIM', name));
      expect(blob.length).toBe(512);
      await waitFor(
        `marker ${name} catalogued`,
        async () =>
          (await dockctlFiles(configFile)).some((f) => f.sha256 === sha && f.state !== 'copying' && f.state !== 'stored'),
        60_000,
      );
    }
  }

  it(
    'after-archive: deletes exactly the archived recordings, each audited; held, rejected and other files stay byte-identical',
    async () => {
      const { world, sub } = await start('after-archive');
      let good1!: Clip, good2!: Clip, held!: Clip, corrupt!: Clip;
      const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
        good1 = await place(v, await sampleMedia('video', 1, 611), recordingName({ at: '20261128080000', seq: 1 }), true);
        good2 = await place(v, await sampleMedia('video', 1, 612), recordingName({ at: '20261128081000', seq: 2 }), true);
        held = await place(v, await sampleMedia('video', 1, 613), recordingName({ at: '20261128082000', seq: 3 }), false);
        // Only an empty recording is rejected (a damaged one is evidence and goes to HQ like any other).
        corrupt = await place(v, Buffer.alloc(0), recordingName({ at: '20261128083000', seq: 4 }), true);
        await fs.writeFile(path.join(v, 'notes.txt'), '值班记录 duty notes\n');
      });
      const rows = await waitForStates(
        world.configFile,
        {
          [good1.sha256]: 'uploaded',
          [good2.sha256]: 'uploaded',
          [held.sha256]: 'needs-annotation',
          [corrupt.sha256]: 'rejected',
        },
        'two uploaded, one held, one rejected',
      );
      expect(rows).toHaveLength(4);
      const before = await fileContents(volume);
      expect([...before.keys()].sort()).toEqual(
        [
          good1.rel,
          good1.rel.replace('.mp4', '.meta.json'),
          good2.rel,
          good2.rel.replace('.mp4', '.meta.json'),
          held.rel,
          corrupt.rel,
          corrupt.rel.replace('.mp4', '.meta.json'),
          'notes.txt',
        ].sort(),
      );

      // HQ confirms the two uploads, and (wrongly) claims the held and the rejected file too: those claims are ignored.
      for (const c of [good1, good2, held, corrupt]) await sendReceipt(station.broker.url, ST, { sha256: c.sha256, ok: true });
      await waitForStates(world.configFile, { [good1.sha256]: 'archived', [good2.sha256]: 'archived' }, 'both uploads archived');
      await waitFor(
        'both archived recordings deleted from the recorder',
        async () => !(await exists(path.join(volume, good1.rel))) && !(await exists(path.join(volume, good2.rel))),
        60_000,
      );
      await loopWentRound(world.configFile, volume);

      // Exactly those two left the volume; everything else is byte-identical.
      const after = await fileContents(volume);
      for (const [rel, bytes] of before) {
        if (rel === good1.rel || rel === good2.rel) expect(after.has(rel), rel).toBe(false);
        else expect(after.get(rel)?.equals(bytes), `${rel} unchanged`).toBe(true);
      }

      // Each deletion is audited (and announced), naming the file and the recorder path.
      const deleted = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'recorder.file-deleted');
      expect(deleted.map((e) => e.subject).sort()).toEqual([good1.sha256, good2.sha256].sort());
      for (const c of [good1, good2]) {
        expect(deleted.find((e) => e.subject === c.sha256)!.data).toMatchObject({
          path: c.rel,
          deviceSerial: '1234567',
          method: 'directory',
        });
      }
      await waitFor('recorder.file-deleted events on MQTT', () => eventsOf(sub.messages, 'recorder.file-deleted').length === 2);
      const states = Object.fromEntries((await dockctlFiles(world.configFile)).map((f) => [f.sha256, f.state]));
      expect(states[held.sha256]).toBe('needs-annotation');
      expect(states[corrupt.sha256]).toBe('rejected');
      // The station still holds the deleted recordings' objects (its own copy is untouched by the wipe).
      const verify = await runDockctl(world.configFile, ['verify', '--json']);
      expect(verify.code, verify.stdout).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'after-archive: a recording changed on the recorder after it was stored is not deleted',
    async () => {
      const { world } = await start('after-archive');
      let appended!: Clip, inPlace!: Clip, control!: Clip;
      const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
        appended = await place(v, await sampleMedia('video', 1, 614), recordingName({ at: '20261128080000', seq: 1 }), true);
        inPlace = await place(v, await sampleMedia('video', 1, 615), recordingName({ at: '20261128081000', seq: 2 }), true);
        control = await place(v, await sampleMedia('video', 1, 616), recordingName({ at: '20261128082000', seq: 3 }), true);
      });
      await waitForStates(
        world.configFile,
        { [appended.sha256]: 'uploaded', [inPlace.sha256]: 'uploaded', [control.sha256]: 'uploaded' },
        'all three uploaded',
      );

      // Before any receipt arrives: one file grows by a byte (new size and mtime: another recording to the catalog);
      // the other has one byte changed in place with its size and mtime put back, so path+size+mtime still match the
      // catalog's sighting of the archived content and only a re-hash can tell.
      const appendedAbs = path.join(volume, appended.rel);
      await fs.appendFile(appendedAbs, Buffer.from([0x42]));
      const inPlaceAbs = path.join(volume, inPlace.rel);
      // Changed beside the volume and renamed over the original, so no rescan can see it half-done (new mtime, old content).
      const scratch = path.join(station.dir, 'in-place.tmp');
      await fs.copyFile(inPlaceAbs, scratch);
      const h = await fs.open(scratch, 'r+');
      try {
        const at = Math.floor(inPlace.size / 2);
        const one = Buffer.alloc(1);
        await h.read(one, 0, 1, at);
        await h.write(Buffer.from([one[0] ^ 0xff]), 0, 1, at);
        await h.sync();
      } finally {
        await h.close();
      }
      await fs.utimes(scratch, REC_TIME, REC_TIME);
      await fs.rename(scratch, inPlaceAbs);
      const st = await fs.stat(inPlaceAbs);
      expect(st.size).toBe(inPlace.size);
      expect(Math.trunc(st.mtimeMs)).toBe(REC_TIME.getTime());
      const appendedNowSha = await sha256OfFile(appendedAbs);
      const inPlaceNow = await fs.readFile(inPlaceAbs);
      expect(await sha256OfFile(inPlaceAbs)).not.toBe(inPlace.sha256);
      // The grown file is taken as a new recording (its own sighting) before HQ's receipts come in.
      await waitFor(
        'the grown file catalogued as a new recording',
        async () =>
          (await dockctlFiles(world.configFile)).some(
            (f) => f.sha256 === appendedNowSha && f.state !== 'stored' && f.state !== 'copying',
          ),
        60_000,
      );

      await sendReceipt(station.broker.url, ST, { sha256: appended.sha256, ok: true });
      await sendReceipt(station.broker.url, ST, { sha256: inPlace.sha256, ok: true });
      await sendReceipt(station.broker.url, ST, { sha256: control.sha256, ok: true });
      await waitForStates(
        world.configFile,
        { [appended.sha256]: 'archived', [inPlace.sha256]: 'archived', [control.sha256]: 'archived' },
        'all three archived',
      );
      await waitFor('the unchanged recording deleted', async () => !(await exists(path.join(volume, control.rel))), 60_000);
      const refused = await waitForAudit(world.configFile, 'recorder.wipe-refused', { subject: inPlace.sha256 });
      expect(refused[0].data).toMatchObject({ path: inPlace.rel, found: await sha256OfFile(inPlaceAbs) });
      await loopWentRound(world.configFile, volume);

      expect(await sha256OfFile(appendedAbs)).toBe(appendedNowSha);
      expect((await fs.readFile(inPlaceAbs)).equals(inPlaceNow)).toBe(true);
      const deleted = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'recorder.file-deleted');
      expect(deleted.map((e) => e.subject)).toEqual([control.sha256]);
      // Refused once, not re-hashed and re-audited on every rescan.
      expect((await dockctlAudit(world.configFile)).filter((e) => e.type === 'recorder.wipe-refused')).toHaveLength(1);
    },
    TIMEOUT,
  );

  it.each([
    ['default (unset)', undefined],
    ['never', 'never'],
  ] as const)(
    'wipe %s: nothing is deleted, even after receipts',
    async (_label, wipe) => {
      const { world, sub } = await start(wipe);
      let a!: Clip, b!: Clip;
      const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
        a = await place(v, await sampleMedia('video', 1, 617), recordingName({ at: '20261128080000', seq: 1 }), true);
        b = await place(v, await sampleMedia('video', 1, 618), recordingName({ at: '20261128081000', seq: 2 }), true);
      });
      await waitForStates(world.configFile, { [a.sha256]: 'uploaded', [b.sha256]: 'uploaded' }, 'both uploaded');
      const before = await fileContents(volume);
      await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
      await sendReceipt(station.broker.url, ST, { sha256: b.sha256, ok: true });
      await waitForStates(world.configFile, { [a.sha256]: 'archived', [b.sha256]: 'archived' }, 'both archived');
      await loopWentRound(world.configFile, volume);

      const after = await fileContents(volume);
      for (const [rel, bytes] of before) expect(after.get(rel)?.equals(bytes), `${rel} unchanged`).toBe(true);
      const types = (await dockctlAudit(world.configFile)).map((e) => e.type);
      expect(types).not.toContain('recorder.file-deleted');
      expect(types).not.toContain('recorder.wipe-refused');
      expect(eventsOf(sub.messages, 'recorder.file-deleted')).toEqual([]);
    },
    TIMEOUT,
  );
});
