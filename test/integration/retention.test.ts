/**
 * Retention: a stored object is freed only once HQ's receipt archived it and retention.localDays have passed since;
 * recordings without a receipt (uploaded, held for annotation, rejected) are never freed. Freed objects are audited,
 * marked in the catalog, and not reported missing by `dockctl verify`.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, filesJson, statusJson } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { type CatalogFile, catalogRows, objectPath } from '../helpers/storeOnDisk.ts';

interface Case {
  name: string;
  sha256: string;
}

/**
 * A volume with: `archivable` clips with complete metadata (uploaded, then given a receipt by the test), one clip with
 * complete metadata that never gets a receipt, one without a case number (needs annotation), one that is empty
 * (rejected: a damaged clip is uploaded like any other, only an empty file is rejected).
 */
async function dockMix(
  mountRoot: string,
  archivable: number,
  variantBase: number,
): Promise<{ archive: Case[]; noReceipt: Case; held: Case; rejected: Case }> {
  const complete: Case[] = [];
  const srcs: string[] = [];
  for (let i = 0; i <= archivable; i++) {
    const src = await sampleMedia('video', 2, variantBase + i);
    srcs.push(src);
    complete.push({
      name: recordingName({ at: `2026112810${String(i).padStart(2, '0')}00`, seq: i + 1 }),
      sha256: await sha256OfFile(src),
    });
  }
  const heldSrc = await sampleMedia('video', 2, variantBase + 50);
  const held = { name: recordingName({ at: '20261128112000', seq: 20 }), sha256: await sha256OfFile(heldSrc) };
  const junk = Buffer.alloc(0);
  const rejected = {
    name: recordingName({ at: '20261128113000', seq: 30 }),
    sha256: createHash('sha256').update(junk).digest('hex'),
  };
  await dockVolume(mountRoot, 'REC1', async (v) => {
    for (const [i, c] of complete.entries()) {
      await fs.copyFile(srcs[i], path.join(v, c.name));
      await fs.writeFile(
        path.join(v, c.name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: `R-${i}`, purpose: '取证', place: '幸福路12号' }),
      );
    }
    await fs.copyFile(heldSrc, path.join(v, held.name)); // no sidecar: no case number, purpose or place
    await fs.writeFile(path.join(v, rejected.name), junk);
    await fs.writeFile(
      path.join(v, rejected.name.replace('.mp4', '.meta.json')),
      JSON.stringify({ caseNo: 'R-X', purpose: '取证', place: '幸福路12号' }),
    );
  });
  return { archive: complete.slice(0, archivable), noReceipt: complete[archivable], held, rejected };
}

function row(storeDir: string, sha256: string): CatalogFile {
  const r = catalogRows(storeDir).find((f) => f.sha256 === sha256);
  if (!r) throw new Error(`no catalog row for ${sha256}`);
  return r;
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

async function waitForStates(configFile: string, want: Record<string, string>): Promise<void> {
  await waitFor(
    `catalog states ${JSON.stringify(Object.values(want))}`,
    async () => {
      const rows = await filesJson(configFile);
      return Object.entries(want).every(([sha, state]) => rows.some((f) => f.sha256 === sha && f.state === state));
    },
    90_000,
    500,
  );
}

/** A file kept locally: object present and intact, not marked freed, no deletion audited. */
async function expectKept(storeDir: string, deletedSubjects: (string | null)[], c: Case, state: string): Promise<void> {
  const r = row(storeDir, c.sha256);
  expect(r.state, c.name).toBe(state);
  expect(r.local_deleted_at, c.name).toBeNull();
  expect(await sha256OfFile(objectPath(storeDir, c.sha256)), c.name).toBe(c.sha256);
  expect(deletedSubjects, c.name).not.toContain(c.sha256);
}

/** A file freed by retention: object gone, local_deleted_at set, one object.deleted audit entry naming it. */
async function expectFreed(storeDir: string, configFile: string, c: Case): Promise<void> {
  const r = row(storeDir, c.sha256);
  expect(r.state).toBe('archived');
  expect(r.receipt_at).not.toBeNull();
  expect(r.local_deleted_at).not.toBeNull();
  expect(Date.parse(r.local_deleted_at!)).toBeGreaterThanOrEqual(Date.parse(r.archived_at!));
  expect(await exists(objectPath(storeDir, c.sha256))).toBe(false);
  const entries = (await dockctlAudit(configFile)).filter((a) => a.type === 'object.deleted' && a.subject === c.sha256);
  expect(entries).toHaveLength(1);
  expect(entries[0].data).toMatchObject({ id: r.id, where: 'station store' });
  expect(String(entries[0].data.why)).toMatch(/retention/);
}

describe('retention: only archived objects past retention.localDays are freed', () => {
  const station = useStation();

  it('localDays 0: frees archived objects only; uploaded-without-receipt, needs-annotation and rejected stay; verify passes', {
    timeout: 240_000,
  }, async () => {
    const world = await station.world({ extra: { retention: { localDays: 0 } } });
    await station.startDaemon(world.configFile);
    const {
      archive: [a1, a2],
      noReceipt,
      held,
      rejected,
    } = await dockMix(world.mountRoot, 2, 801);
    await waitForStates(world.configFile, {
      [a1.sha256]: 'uploaded',
      [a2.sha256]: 'uploaded',
      [noReceipt.sha256]: 'uploaded',
      [held.sha256]: 'needs-annotation',
      [rejected.sha256]: 'rejected',
    });
    expect(station.tus.finished.map((u) => u.sha256).sort()).toEqual([a1, a2, noReceipt].map((c) => c.sha256).sort());

    // Receipts for one uploaded file, and (wrongly) for the held and the rejected ones: only the first is archived.
    for (const c of [a1, held, rejected]) await sendReceipt(station.broker.url, 'test-st', { sha256: c.sha256, ok: true });
    await waitFor('the archived object to be freed', () => row(world.storeDir, a1.sha256).local_deleted_at, 60_000, 250);
    await expectFreed(world.storeDir, world.configFile, a1);
    const ignored = (await dockctlAudit(world.configFile)).filter((a) => a.type === 'receipt.ignored').map((a) => a.subject);
    expect(ignored).toEqual(expect.arrayContaining([held.sha256, rejected.sha256]));

    // A later archive is freed by a later storage pass; the others are still kept after it.
    await sendReceipt(station.broker.url, 'test-st', { sha256: a2.sha256, ok: true });
    await waitFor('the second archived object to be freed', () => row(world.storeDir, a2.sha256).local_deleted_at, 60_000, 250);
    await expectFreed(world.storeDir, world.configFile, a2);
    const deleted = (await dockctlAudit(world.configFile)).filter((a) => a.type === 'object.deleted').map((a) => a.subject);
    expect(deleted.sort()).toEqual([a1.sha256, a2.sha256].sort());
    await expectKept(world.storeDir, deleted, noReceipt, 'uploaded');
    await expectKept(world.storeDir, deleted, held, 'needs-annotation');
    await expectKept(world.storeDir, deleted, rejected, 'rejected');

    // Freed objects are not "missing": verify checks the three kept ones and passes.
    const v = await runDockctl(world.configFile, ['verify', '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, checked: 3, bad: [] });
    const text = await runDockctl(world.configFile, ['verify']);
    expect(text.code).toBe(0);
    expect(text.stdout).not.toMatch(/BAD|missing/);
    // The catalog still knows the freed recordings (archived at HQ), and an export says where to get them.
    const rows = await filesJson(world.configFile, ['--state', 'archived']);
    expect(rows.map((f) => f.sha256).sort()).toEqual([a1.sha256, a2.sha256].sort());
    const exp = await runDockctl(world.configFile, ['export', a1.sha256.slice(0, 12), '--to', path.join(station.dir, 'export')]);
    expect(exp.code).not.toBe(0);
    expect(exp.stderr).toMatch(/freed/);
    expect((await statusJson(world.configFile)).json.queue).toMatchObject({
      archived: 2,
      uploaded: 1,
      'needs-annotation': 1,
      rejected: 1,
    });
  });

  it('localDays 30: nothing is freed right after archive, even below the low-water mark; the same catalog under localDays 0 frees it', {
    timeout: 240_000,
  }, async () => {
    // lowWaterBytes above any real disk: the station believes its disk is low the whole time.
    const extra = { retention: { localDays: 30 }, storage: { dir: path.join(station.dir, 'store'), lowWaterBytes: 2 ** 50 } };
    const world = await station.world({ extra });
    let daemon = await station.startDaemon(world.configFile);
    const {
      archive: [a1],
      noReceipt,
      held,
      rejected,
    } = await dockMix(world.mountRoot, 1, 821);
    await waitForStates(world.configFile, {
      [a1.sha256]: 'uploaded',
      [noReceipt.sha256]: 'uploaded',
      [held.sha256]: 'needs-annotation',
      [rejected.sha256]: 'rejected',
    });
    await sendReceipt(station.broker.url, 'test-st', { sha256: a1.sha256, ok: true });
    await waitForStates(world.configFile, { [a1.sha256]: 'archived' });
    expect((await statusJson(world.configFile)).json.alarms.map((a) => a.code)).toContain('DISK_LOW');

    // A restart runs a storage pass at once (before "dockd started"): still nothing freed.
    expect(await daemon.stop()).toBe(0);
    daemon = await station.startDaemon(world.configFile);
    let deleted = (await dockctlAudit(world.configFile)).filter((a) => a.type === 'object.deleted').map((a) => a.subject);
    expect(deleted).toEqual([]);
    await expectKept(world.storeDir, deleted, a1, 'archived');
    await expectKept(world.storeDir, deleted, noReceipt, 'uploaded');
    await expectKept(world.storeDir, deleted, held, 'needs-annotation');
    await expectKept(world.storeDir, deleted, rejected, 'rejected');
    const v = await runDockctl(world.configFile, ['verify', '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, checked: 4, bad: [] });

    // Same store, retention 0: the start-up pass frees exactly the archived one (so the pass above did run the rule).
    expect(await daemon.stop()).toBe(0);
    await fs.writeFile(world.configFile, stringify({ ...world.config, retention: { localDays: 0 } }));
    daemon = await station.startDaemon(world.configFile);
    await expectFreed(world.storeDir, world.configFile, a1);
    deleted = (await dockctlAudit(world.configFile)).filter((a) => a.type === 'object.deleted').map((a) => a.subject);
    expect(deleted).toEqual([a1.sha256]);
    await expectKept(world.storeDir, deleted, noReceipt, 'uploaded');
    await expectKept(world.storeDir, deleted, held, 'needs-annotation');
    await expectKept(world.storeDir, deleted, rejected, 'rejected');
  });
});
