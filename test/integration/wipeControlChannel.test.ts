/**
 * The wipe gate (dock.wipe: after-archive) on recorders that keep their control channel while their storage is
 * mounted: the real daemon deletes archived recordings on the recorder itself with `BC+DEL` (emulated recorders on
 * real socat ptys, real mosquitto, real tus server), re-hashing each file just before. A file changed on the recorder
 * since its upload is refused and stays; a recorder that refuses the delete keeps its files, and its session goes on.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { TEST_HQ_PUBLIC_PEM } from '../helpers/hqKeys.ts';
import { STATION, type Recording } from '../helpers/linkWorld.ts';
import { useLinkWorld } from '../helpers/station.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockctlAudit, waitForAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const TIMEOUT = 300_000;
const KEEPER = { serial: 'WPC0001', officerId: '012345', officerName: '张三' };
const STUBBORN = { serial: 'WPC0002', officerId: '054321', officerName: '李四' };
const clip = (n: number) => sampleMedia('video', 1, 4400 + n);
const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

const worlds = useLinkWorld();

/** Changes one byte in the middle of a file and puts its mtime back: path, size and mtime still match; only a re-hash tells. */
async function changeInPlace(file: string, scratch: string): Promise<void> {
  const st = await fs.stat(file);
  await fs.copyFile(file, scratch);
  const h = await fs.open(scratch, 'r+');
  try {
    const at = Math.floor(st.size / 2);
    const one = Buffer.alloc(1);
    await h.read(one, 0, 1, at);
    await h.write(Buffer.from([one[0] ^ 0xff]), 0, 1, at);
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.utimes(scratch, st.atime, st.mtime);
  await fs.rename(scratch, file); // at once: no rescan sees it half-changed
}

describe("wipe gate through the recorder's control channel (BC+DEL)", () => {
  it(
    'deletes archived recordings on the recorder itself; a changed file and a refusing recorder keep their files',
    async () => {
      const world = await worlds.create({ devices: [KEEPER, STUBBORN], dock: { wipe: 'after-archive' } });
      const config = parse(await fs.readFile(world.configFile, 'utf8'));
      config.hq.receiptKey = TEST_HQ_PUBLIC_PEM;
      await fs.writeFile(world.configFile, stringify(config));
      await world.startDaemon();

      const keeper = await world.recorder({
        ...KEEPER,
        media: [await clip(1), await clip(2), await clip(3)],
        keepsControlChannel: true,
      });
      const stubborn = await world.recorder({
        ...STUBBORN,
        media: [await clip(4)],
        keepsControlChannel: true,
        faults: { deleteFails: 'write protected' },
      });
      await keeper.rec.plugIn();
      await stubborn.rec.plugIn();
      const all: Recording[] = [...keeper.recordings, ...stubborn.recordings];
      await world.uploaded(all);
      const exposed = await waitFor("the keeper's storage", () => keeper.rec.exposedPath ?? undefined);
      expect(await exists(keeper.rec.stationPath)).toBe(true); // its tty stayed

      // After the upload, and before HQ's receipt, one recording changes on the recorder.
      const [gone1, gone2, changed] = keeper.recordings;
      await changeInPlace(path.join(exposed, changed.relPath), path.join(world.dir, 'changed.tmp'));
      const changedNow = await sha256OfFile(path.join(exposed, changed.relPath));
      expect(changedNow).not.toBe(changed.sha256);
      const before = {
        keeper: await fs.readdir(path.join(keeper.rec.volumeDir, 'DCIM', '100MEDIA')),
        stubborn: await fs.readdir(path.join(stubborn.rec.volumeDir, 'DCIM', '100MEDIA')),
      };

      for (const r of all) await sendReceipt(world.broker.url, STATION, { sha256: r.sha256, ok: true });
      await waitFor(
        'both unchanged recordings deleted on the recorder',
        async () =>
          !(await exists(path.join(keeper.rec.volumeDir, gone1.relPath))) &&
          !(await exists(path.join(keeper.rec.volumeDir, gone2.relPath))),
        120_000,
        250,
      );
      const refused = await waitForAudit(world.configFile, 'recorder.wipe-refused', { subject: changed.sha256 });
      const failed = await waitForAudit(world.configFile, 'recorder.wipe-failed', { subject: stubborn.recordings[0].sha256 });

      // Through the channel: exactly the two, each audited and announced with the method; gone from the mounted copy too.
      const dels = keeper.heard.filter((l) => l.startsWith('BC+DEL='));
      expect(dels.sort()).toEqual([gone1, gone2].map((r) => `BC+DEL=${r.relPath.split(path.sep).join('/')}`).sort());
      const deleted = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'recorder.file-deleted');
      expect(deleted.map((e) => e.subject).sort()).toEqual([gone1.sha256, gone2.sha256].sort());
      for (const e of deleted) expect(e.data).toMatchObject({ method: 'control-channel', deviceSerial: KEEPER.serial });
      await waitFor('recorder.file-deleted events on MQTT', () => world!.events('recorder.file-deleted').length === 2);
      expect(await exists(path.join(exposed, gone1.relPath))).toBe(false);

      // The changed one stays, as it is now, on the recorder; its sidecars and the rest of the volume too.
      expect(refused[0].data).toMatchObject({ path: changed.relPath, found: changedNow });
      expect(await sha256OfFile(path.join(keeper.rec.volumeDir, changed.relPath))).toBe(changed.sha256); // the recorder's own copy
      expect((await fs.readdir(path.join(keeper.rec.volumeDir, 'DCIM', '100MEDIA'))).sort()).toEqual(
        before.keeper.filter((n) => n !== gone1.name && n !== gone2.name).sort(),
      );

      // The refusing recorder: asked once, refused with its reason, the file stays; its session is not ended by it.
      expect(failed[0].data).toMatchObject({ path: stubborn.recordings[0].relPath, method: 'control-channel' });
      expect(String(failed[0].data.error)).toContain('write protected');
      expect(stubborn.heard.filter((l) => l.startsWith('BC+DEL='))).toHaveLength(1);
      expect((await fs.readdir(path.join(stubborn.rec.volumeDir, 'DCIM', '100MEDIA'))).sort()).toEqual(before.stubborn.sort());
      const status = await world.status();
      for (const serial of [KEEPER.serial, STUBBORN.serial]) {
        expect(
          status.recorders.find((r) => r.serial === serial),
          serial,
        ).toMatchObject({ state: 'done', safeToUndock: true });
      }
      // Refused and failed once each, not again on every rescan.
      const audit = await dockctlAudit(world.configFile);
      expect(audit.filter((e) => e.type === 'recorder.wipe-refused')).toHaveLength(1);
      expect(audit.filter((e) => e.type === 'recorder.wipe-failed')).toHaveLength(1);
    },
    TIMEOUT,
  );
});
