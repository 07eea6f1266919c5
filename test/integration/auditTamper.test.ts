/**
 * The audit chain through dockctl, on the catalog a real daemon wrote (real mosquitto, real tus server, HQ receipts):
 * copies of the stopped daemon's store are tampered with by plain SQL (an edited row, a deleted row, two rows
 * swapped) and `dockctl verify` must fail naming the first broken entry, while the untouched catalog verifies.
 * `dockctl audit --since` filters by time.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sampleMedia } from '../../scripts/media.ts';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { STATION_KEY_FILE, STATION_PUBLIC_KEY_FILE } from '../../daemon/custody/keys.ts';
import { recordTopics } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockRecordings } from '../helpers/recordings.ts';
import { runDockctl, writeConfigVariant } from '../helpers/daemon.ts';
import { type AuditJson, dockctlAudit, dockctlFiles, waitForAudit } from '../helpers/dockctlJson.ts';
import { sendReceipt } from '../helpers/receipts.ts';

const ST = 'test-st';

type StoredRow = Omit<AuditJson, 'seq' | 'data'> & { data: string };

interface VerifyJson {
  ok: boolean;
  checked: number;
  bad: unknown[];
  audit: { ok: boolean; entries: number; firstBroken?: { seq: number; problem: string } };
}

describe('dockctl verify and audit on a real catalog', () => {
  const station = useStation({ prefix: 'dockd-tamper-' });

  it('detects an edited, a deleted and a reordered row in copies of the catalog; the untouched one verifies; --since filters', async () => {
    const world = await station.world();
    const daemon = await station.startDaemon(world.configFile);
    const { files } = await dockRecordings(world.mountRoot, 'REC1', [
      await sampleMedia('video', 1, 631),
      await sampleMedia('video', 1, 632),
    ]);
    await waitFor(
      'both uploaded',
      async () => {
        const rows = await dockctlFiles(world.configFile);
        return rows.length === 2 && rows.every((f) => f.state === 'uploaded');
      },
      120_000,
    );

    // Everything so far happened before `mark`; the receipts (and what they cause) after it.
    const early = await dockctlAudit(world.configFile);
    await new Promise((r) => setTimeout(r, 20)); // `at` has millisecond resolution: step past the last entry's
    const mark = new Date().toISOString();
    for (const f of files) await sendReceipt(station.broker.url, ST, { sha256: f.sha256, ok: true });
    await waitFor(
      'both archived',
      async () => (await dockctlFiles(world.configFile)).every((f) => f.state === 'archived'),
      120_000,
    );
    await sendReceipt(station.broker.url, ST, { sha256: files[0].sha256, ok: true }); // a duplicate, audited
    await waitFor(
      'the duplicate audited',
      async () => (await dockctlAudit(world.configFile)).some((e) => e.type === 'receipt.duplicate'),
      60_000,
    );

    // --since: only entries at or after the mark, and all of those.
    const all = await dockctlAudit(world.configFile);
    const since = await dockctlAudit(world.configFile, mark);
    expect(since.length).toBeGreaterThanOrEqual(3);
    expect(since.length).toBeLessThan(all.length);
    expect(since.every((e) => e.at >= mark)).toBe(true);
    expect(since.map((e) => e.seq)).toEqual(all.filter((e) => e.at >= mark).map((e) => e.seq));
    expect(since.map((e) => e.type)).toEqual(expect.arrayContaining(['file.archived', 'receipt.duplicate']));
    for (const e of early) expect(since.map((x) => x.seq)).not.toContain(e.seq);
    expect(
      since
        .filter((e) => e.type === 'file.archived')
        .map((e) => e.subject)
        .sort(),
    ).toEqual(files.map((f) => f.sha256).sort());
    // The same instant written with an offset means the same thing.
    const offsetMark = new Date(Date.parse(mark) + 8 * 3600_000).toISOString().replace('Z', '+08:00');
    expect((await dockctlAudit(world.configFile, offsetMark)).map((e) => e.seq)).toEqual(since.map((e) => e.seq));
    const bad = await runDockctl(world.configFile, ['audit', '--since', 'last tuesday']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--since/);
    // Plain text lists the entries too.
    const text = await runDockctl(world.configFile, ['audit', '--since', mark]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/file\.archived/);
    expect(text.stdout).not.toMatch(/config\.loaded/);

    // Stop the daemon so its store is at rest, then make copies of it (catalog with its WAL, and the objects).
    expect(await daemon.stop()).toBe(0);
    const chain = await dockctlAudit(world.configFile);
    const copyOf = async (name: string): Promise<{ configFile: string; catalog: string }> => {
      const storeDir = path.join(station.dir, 'copies', name, 'store');
      await fs.cp(world.storeDir, storeDir, { recursive: true });
      const configFile = await writeConfigVariant(world.config, path.join(station.dir, 'copies', name, 'dockd.yaml'), {
        storage: { dir: storeDir },
      });
      return { configFile, catalog: path.join(storeDir, 'catalog.sqlite') };
    };
    const tamper = (catalog: string, fn: (db: Database.Database) => void): void => {
      const db = new Database(catalog);
      try {
        fn(db);
      } finally {
        db.close();
      }
    };
    const verify = async (configFile: string): Promise<{ code: number; text: string; json: VerifyJson }> => {
      const t = await runDockctl(configFile, ['verify']);
      const j = await runDockctl(configFile, ['verify', '--json']);
      expect(j.code).toBe(t.code);
      return { code: t.code, text: t.stdout, json: JSON.parse(j.stdout) as VerifyJson };
    };
    // A middle entry about a recording, with entries on both sides of it.
    const victim = chain.find((e) => e.type === 'file.uploaded')!;
    expect(victim.seq).toBeGreaterThan(1);
    expect(chain.filter((e) => e.seq > victim.seq + 1).length).toBeGreaterThanOrEqual(2);

    // Untouched copy: intact.
    const clean = await copyOf('clean');
    const ok = await verify(clean.configFile);
    expect(ok.code, ok.text).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, bad: [], audit: { ok: true } });
    expect(ok.text).toMatch(/audit chain: ok/);

    // An edited row: the entry itself is named.
    const edited = await copyOf('edited');
    tamper(edited.catalog, (db) => {
      const data = JSON.parse(
        (db.prepare('SELECT data FROM audit WHERE seq = ?').get(victim.seq) as { data: string }).data,
      ) as Record<string, unknown>;
      db.prepare('UPDATE audit SET data = ? WHERE seq = ?').run(JSON.stringify({ ...data, sha256: '0'.repeat(64) }), victim.seq);
    });
    const e1 = await verify(edited.configFile);
    expect(e1.code).not.toBe(0);
    expect(e1.json.audit).toMatchObject({ ok: false, firstBroken: { seq: victim.seq } });
    expect(e1.json.bad).toEqual([]); // the objects are fine: it is the chain that fails
    expect(e1.text).toContain(`BAD audit chain: entry ${victim.seq}:`);

    // A deleted row: the gap is named (the entry after it, reporting the missing seq).
    const deleted = await copyOf('deleted');
    tamper(deleted.catalog, (db) => {
      db.prepare('DELETE FROM audit WHERE seq = ?').run(victim.seq);
    });
    const e2 = await verify(deleted.configFile);
    expect(e2.code).not.toBe(0);
    expect(e2.json.audit.ok).toBe(false);
    expect(e2.json.audit.firstBroken!.seq).toBe(victim.seq + 1);
    expect(e2.json.audit.firstBroken!.problem).toContain(String(victim.seq));
    expect(e2.json.bad).toEqual([]);
    expect(e2.text).toContain(`BAD audit chain: entry ${victim.seq + 1}:`);

    // Two rows swapped (contents exchanged between seq k and a later one): the first position is named.
    const reordered = await copyOf('reordered');
    const other = chain.find((e) => e.seq > victim.seq + 1 && e.seq < chain[chain.length - 1].seq)!;
    tamper(reordered.catalog, (db) => {
      const get = db.prepare('SELECT at, type, subject, data, prev_hash, hash FROM audit WHERE seq = ?');
      const put = db.prepare('UPDATE audit SET at = ?, type = ?, subject = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?');
      const [a, b] = [get.get(victim.seq), get.get(other.seq)] as StoredRow[];
      db.transaction(() => {
        put.run(b.at, b.type, b.subject, b.data, b.prev_hash, b.hash, victim.seq);
        put.run(a.at, a.type, a.subject, a.data, a.prev_hash, a.hash, other.seq);
      })();
    });
    const e3 = await verify(reordered.configFile);
    expect(e3.code).not.toBe(0);
    expect(e3.json.audit).toMatchObject({ ok: false, firstBroken: { seq: victim.seq } });
    expect(e3.text).toContain(`BAD audit chain: entry ${victim.seq}:`);

    // A broken chain is not extended by verify (that would bury the break), and keeps failing.
    const countAfter = (await dockctlAudit(edited.configFile)).length;
    expect(countAfter).toBe(chain.length);
    expect((await verify(edited.configFile)).code).not.toBe(0);

    // The original catalog was never touched: it verifies, and that verification is itself audited.
    const orig = await verify(world.configFile);
    expect(orig.code, orig.text).toBe(0);
    const verifies = (await dockctlAudit(world.configFile)).filter((e) => e.type === 'verify');
    expect(verifies.length).toBeGreaterThanOrEqual(2);
    expect(verifies.at(-1)!.data).toMatchObject({ ok: true, checked: 2 });
  }, 300_000);

  it('verify --head: the signed head HQ kept catches the newest entries cut off, which the chain alone cannot show', async () => {
    const world = await station.world();
    const sub = await recordTopics(station.broker.url, `dockd/${ST}/audit`);
    const daemon = await station.startDaemon(world.configFile);
    const {
      files: [a],
    } = await dockRecordings(world.mountRoot, 'REC1', [await sampleMedia('video', 1, 633)]);
    await waitFor('uploaded', async () => (await dockctlFiles(world.configFile))[0]?.state === 'uploaded', 120_000);
    await sendReceipt(station.broker.url, ST, { sha256: a.sha256, ok: true });
    const [archived] = await waitForAudit(world.configFile, 'file.archived');

    // What HQ keeps: the payload of a P/S/audit message at or past the archive, signed by the station's key.
    const message = await waitFor('a signed audit head past the archive', () =>
      sub.messages.find((m) => (JSON.parse(m.payload) as { seq: number }).seq >= archived.seq),
    );
    const head = JSON.parse(message.payload) as {
      stationId: string;
      seq: number;
      hash: string;
      at: string;
      key: string;
      sig: string;
    };
    expect(Object.keys(head)).toEqual(['stationId', 'seq', 'hash', 'at', 'key', 'sig']);
    expect(head.stationId).toBe(ST);
    // The key in the head is the station's key in its store, and the one sent with every upload.
    const storeKey = createPublicKey(await fs.readFile(path.join(world.storeDir, STATION_PUBLIC_KEY_FILE), 'utf8'))
      .export({ type: 'spki', format: 'der' })
      .toString('base64');
    expect(head.key).toBe(storeKey);
    expect(station.tus.finished[0].metadata.stationKey).toBe(storeKey);
    expect((await fs.stat(path.join(world.storeDir, STATION_KEY_FILE))).mode & 0o777).toBe(0o600);
    // Retained: HQ gets the newest signed head on subscribing.
    const late = await recordTopics(station.broker.url, `dockd/${ST}/audit`);
    const retained = await waitFor('the retained head', () => late.messages.find((m) => m.retain));
    await late.close();
    expect(JSON.parse(retained.payload)).toMatchObject({ stationId: ST, key: storeKey, sig: expect.any(String) });
    await sub.close();
    const headFile = path.join(station.dir, 'hq-kept-head.json');
    await fs.writeFile(headFile, message.payload);
    expect(await daemon.stop()).toBe(0);

    const copyOf = async (name: string): Promise<{ configFile: string; storeDir: string; catalog: string }> => {
      const storeDir = path.join(station.dir, 'copies', name, 'store');
      await fs.cp(world.storeDir, storeDir, { recursive: true });
      const configFile = await writeConfigVariant(world.config, path.join(station.dir, 'copies', name, 'dockd.yaml'), {
        storage: { dir: storeDir },
      });
      return { configFile, storeDir, catalog: path.join(storeDir, 'catalog.sqlite') };
    };
    const verify = async (configFile: string, file = headFile) => {
      const t = await runDockctl(configFile, ['verify', '--head', file]);
      const j = await runDockctl(configFile, ['verify', '--json', '--head', file]);
      expect(j.code).toBe(t.code);
      return {
        code: t.code,
        text: t.stdout + t.stderr,
        json: JSON.parse(j.stdout) as VerifyJson & { head: { ok: boolean; seq: number; problem?: string } },
      };
    };

    // Untouched: the chain holds the head.
    const clean = await copyOf('clean');
    const ok = await verify(clean.configFile);
    expect(ok.code, ok.text).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, audit: { ok: true }, head: { ok: true, seq: head.seq } });
    expect(ok.text).toContain(`signed head ${head.seq}: ok`);
    expect((await dockctlAudit(clean.configFile)).at(-1)).toMatchObject({
      type: 'verify',
      data: { ok: true, head: { seq: head.seq, ok: true } },
    });

    // The newest entries cut off (the head's entry and everything after it): a valid chain on its own ...
    const cut = await copyOf('cut');
    const db = new Database(cut.catalog);
    try {
      db.prepare('DELETE FROM audit WHERE seq >= ?').run(head.seq);
    } finally {
      db.close();
    }
    const caught = await verify(cut.configFile);
    expect(caught.code).toBe(1);
    expect(caught.json).toMatchObject({
      ok: false,
      audit: { ok: true, entries: head.seq - 1 },
      head: { ok: false, seq: head.seq },
    });
    expect(caught.json.head.problem).toMatch(
      new RegExp(
        `ends at entry ${head.seq - 1}, but the signed head names entry ${head.seq}: entry ${head.seq} \\(at least\\) was deleted`,
      ),
    );
    expect(caught.text).toContain(`BAD signed head ${head.seq}:`);
    expect((await dockctlAudit(cut.configFile)).at(-1)!.seq).toBe(head.seq - 1); // a failed head check is not buried under a new entry
    // ... the chain alone looks fine; and once something is appended where the cut entries were, the head still differs.
    const plain = await runDockctl(cut.configFile, ['verify', '--json']);
    expect(plain.code, plain.stdout).toBe(0);
    expect(JSON.parse(plain.stdout)).toMatchObject({ ok: true, audit: { ok: true, entries: head.seq - 1 } });
    const still = await verify(cut.configFile);
    expect(still.code).toBe(1);
    expect(still.json.head.problem).toMatch(
      new RegExp(`entry ${head.seq} hashes to .*, the signed head says .*: the history up to it was rewritten`),
    );

    // A head that is not what the station signed, or a station whose key was replaced: refused.
    const forgedFile = path.join(station.dir, 'forged-head.json');
    await fs.writeFile(forgedFile, JSON.stringify({ ...head, seq: head.seq - 1 }));
    const forged = await verify(clean.configFile, forgedFile);
    expect(forged.code).toBe(1);
    expect(forged.json.head.problem).toMatch(/bad signature/);
    const rekeyed = await copyOf('rekeyed');
    const other = generateKeyPairSync('ed25519');
    await fs.writeFile(path.join(rekeyed.storeDir, STATION_KEY_FILE), other.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    await fs.writeFile(
      path.join(rekeyed.storeDir, STATION_PUBLIC_KEY_FILE),
      other.publicKey.export({ type: 'spki', format: 'pem' }),
    );
    const wrongKey = await verify(rekeyed.configFile);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.json.head.problem).toMatch(/signed with another key/);

    // A file that is no head at all is the caller's mistake: exit 2, one clear line, nothing audited.
    const before = (await dockctlAudit(clean.configFile)).length;
    await fs.writeFile(path.join(station.dir, 'not-json'), 'seq=3');
    for (const [file, why] of [
      [path.join(station.dir, 'not-json'), /not JSON/],
      [path.join(station.dir, 'absent.json'), /cannot read it: ENOENT/],
    ] as const) {
      const r = await runDockctl(clean.configFile, ['verify', '--head', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await dockctlAudit(clean.configFile)).toHaveLength(before);
  }, 300_000);
});
