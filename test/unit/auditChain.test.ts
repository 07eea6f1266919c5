/**
 * The audit trail as a hash chain, on a real SQLite catalog (Catalog.open on a temp dir): every entry links to the one
 * before it, and verifyChain names the first broken entry when a row was edited, deleted or reordered.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { openStationKey, publicKeyBase64 } from '../../daemon/custody/keys.ts';
import { checkAuditHead, signAuditHead } from '../../daemon/custody/signatures.ts';
import { canonicalJson, entryHash, GENESIS, type AuditEntry } from '../../daemon/store/audit.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import type { StationEvent } from '../../daemon/status/stationEvents.ts';
import { tempDir } from '../helpers/daemon.ts';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

/** A clock that moves one second per reading, so every entry has its own time. */
function steppingClock(start = Date.parse('2026-11-28T00:00:00Z')): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

/** Reads the chain with a connection of its own: the tampering below goes behind the store's back, as an attacker would. */
function rows(db: Database.Database): AuditEntry[] {
  return db.prepare('SELECT * FROM audit ORDER BY seq').all() as AuditEntry[];
}

/** An event reduced to what the chain looks at (type, at, subject): the outbox and audit do not depend on the rest. */
const bareEvent = (e: { type: string; at: string } & Record<string, unknown>): StationEvent => e as unknown as StationEvent;

describe('canonicalJson', () => {
  it('orders object keys at every depth, drops undefined values and keeps array order', () => {
    const a = canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' }, u: undefined });
    const b = canonicalJson({ a: { c: 'x', d: [3, { y: 2, z: 1 }] }, b: 1 });
    expect(a).toBe(b);
    expect(a).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
    expect(canonicalJson({ s: '采集人 "张三"' })).toBe('{"s":"采集人 \\"张三\\""}');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson(undefined)).toBe('null');
  });
});

describe('audit hash chain on a real catalog', () => {
  let dir: string;
  let catalog: Catalog;
  let raw: Database.Database;

  beforeEach(async () => {
    dir = await tempDir('dockd-audit-');
    catalog = Catalog.open(dir, { now: steppingClock() });
    raw = new Database(path.join(dir, 'catalog.sqlite'));
  });

  afterEach(async () => {
    raw.close();
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Eight entries: audit-only entries and events (which are audited in the same transaction as their outbox row). */
  function activity(): AuditEntry[] {
    catalog.audit('config.loaded', null, { file: '/etc/dockd.yaml', sha256: SHA_B });
    catalog.enqueue(
      'event',
      bareEvent({
        type: 'recorder.docked',
        at: '2026-11-28T00:01:00.000Z',
        deviceSerial: '1234567',
        volume: '/dock/REC1',
      }),
    );
    catalog.enqueue('event', bareEvent({ type: 'file.ingested', at: '2026-11-28T00:02:00.000Z', sha256: SHA_A, size: 10 }));
    catalog.enqueue('event', bareEvent({ type: 'file.uploaded', at: '2026-11-28T00:03:00.000Z', sha256: SHA_A }));
    catalog.audit('receipt.ignored', SHA_B, { ok: true, reason: 'no such recording at this station' });
    catalog.enqueue('event', bareEvent({ type: 'file.archived', at: '2026-11-28T00:04:00.000Z', sha256: SHA_A }));
    catalog.audit('file.exported', SHA_A, { id: 1, to: '/tmp/x', by: 'tester' });
    catalog.enqueue('event', bareEvent({ type: 'recorder.undocked', at: '2026-11-28T00:05:00.000Z', volume: '/dock/REC1' }));
    return rows(raw);
  }

  it('links every entry to the one before it, from the genesis hash, with seq 1, 2, 3 …', () => {
    const entries = activity();
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(entries[0].prev_hash).toBe(GENESIS);
    for (let i = 1; i < entries.length; i++) expect(entries[i].prev_hash).toBe(entries[i - 1].hash);
    for (const e of entries) expect(entryHash(e)).toBe(e.hash);
    expect(new Set(entries.map((e) => e.hash)).size).toBe(entries.length);
    const check = catalog.verifyChain();
    expect(check).toEqual({ ok: true, entries: 8, head: { seq: 8, hash: entries[7].hash } });
    expect(catalog.auditHead()).toEqual({ seq: 8, hash: entries[7].hash });
  });

  it('audits an event with its subject and data, in the same transaction as its outbox row', () => {
    catalog.enqueue(
      'event',
      bareEvent({
        type: 'file.ingested',
        at: '2026-11-28T00:02:00.000Z',
        sha256: SHA_A,
        size: 10,
        extra: { b: 2, a: 1 },
      }),
    );
    const entries = rows(raw);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ seq: 1, type: 'file.ingested', subject: SHA_A, at: '2026-11-28T00:02:00.000Z' });
    expect(JSON.parse(entries[0].data)).toEqual({
      type: 'file.ingested',
      at: '2026-11-28T00:02:00.000Z',
      sha256: SHA_A,
      size: 10,
      extra: { a: 1, b: 2 },
    });
    expect(entries[0].data).toBe(canonicalJson(JSON.parse(entries[0].data)));
    expect(catalog.outboxSize()).toBe(1);

    // A change that fails takes its audit entry with it (and vice versa): nothing half-recorded.
    expect(() =>
      catalog.auditWith('file.exported', SHA_A, { id: 1, to: '/tmp/x' }, () => {
        throw new Error('crash before commit');
      }),
    ).toThrow('crash before commit');
    expect(rows(raw)).toHaveLength(1);
    expect(catalog.outboxSize()).toBe(1);
    expect(catalog.verifyChain().ok).toBe(true);
  });

  it('survives a reopen: new entries extend the stored head', async () => {
    const before = activity();
    catalog.close();
    catalog = Catalog.open(dir, { now: steppingClock(Date.parse('2026-12-01T00:00:00Z')) });
    const e = catalog.audit('verify', null, { ok: true });
    expect(e.seq).toBe(9);
    expect(e.prev_hash).toBe(before[7].hash);
    expect(catalog.verifyChain()).toMatchObject({ ok: true, entries: 9, head: { seq: 9, hash: e.hash } });
  });

  it('names an edited row (its own hash no longer matches)', () => {
    activity();
    raw
      .prepare('UPDATE audit SET data = ? WHERE seq = 4')
      .run(canonicalJson({ type: 'file.uploaded', at: '2026-11-28T00:03:00.000Z', sha256: SHA_B }));
    const check = catalog.verifyChain();
    expect(check.ok).toBe(false);
    expect(check.firstBroken).toEqual({ seq: 4, problem: expect.stringMatching(/edited|does not match its hash/) });
  });

  it.each([
    ['at', "UPDATE audit SET at = '2026-11-27T00:00:00.000Z' WHERE seq = 3"],
    ['type', "UPDATE audit SET type = 'file.viewed' WHERE seq = 3"],
    ['subject', `UPDATE audit SET subject = '${SHA_B}' WHERE seq = 3`],
  ])('names a row whose %s was edited', (_col, sql) => {
    activity();
    raw.exec(sql);
    expect(catalog.verifyChain()).toMatchObject({ ok: false, firstBroken: { seq: 3 } });
  });

  it('names the next row when an edited row was re-hashed to hide the edit (its successor no longer links to it)', () => {
    activity();
    const e = rows(raw)[3];
    const data = canonicalJson({ type: 'file.uploaded', at: e.at, sha256: SHA_B });
    raw.prepare('UPDATE audit SET data = ?, hash = ? WHERE seq = 4').run(data, entryHash({ ...e, data }));
    const check = catalog.verifyChain();
    expect(check.ok).toBe(false);
    expect(check.firstBroken).toEqual({ seq: 5, problem: expect.stringMatching(/link/) });
  });

  it('names a deleted row: the entry after the gap reports the missing seq', () => {
    activity();
    raw.exec('DELETE FROM audit WHERE seq = 5');
    const check = catalog.verifyChain();
    expect(check.ok).toBe(false);
    expect(check.firstBroken!.seq).toBe(6);
    expect(check.firstBroken!.problem).toMatch(/\b5\b.*missing/);
  });

  it('names a deleted row even when the later rows were renumbered to close the gap', () => {
    activity();
    raw.transaction(() => {
      raw.exec('DELETE FROM audit WHERE seq = 5');
      for (const seq of [6, 7, 8]) raw.prepare('UPDATE audit SET seq = ? WHERE seq = ?').run(seq - 1, seq);
    })();
    expect(rows(raw).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(catalog.verifyChain()).toMatchObject({ ok: false, firstBroken: { seq: 5 } });
  });

  it('names the first position of two rows whose contents were swapped (reordered)', () => {
    const entries = activity();
    const [a, b] = [entries[2], entries[5]]; // seq 3 and seq 6
    const put = raw.prepare('UPDATE audit SET at = ?, type = ?, subject = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    raw.transaction(() => {
      put.run(b.at, b.type, b.subject, b.data, b.prev_hash, b.hash, a.seq);
      put.run(a.at, a.type, a.subject, a.data, a.prev_hash, a.hash, b.seq);
    })();
    expect(
      rows(raw)
        .map((e) => e.type)
        .slice(2, 6),
    ).toEqual(['file.archived', 'file.uploaded', 'receipt.ignored', 'file.ingested']);
    const check = catalog.verifyChain();
    expect(check.ok).toBe(false);
    expect(check.firstBroken!.seq).toBe(3);
  });

  it('an untouched chain of many entries verifies; a broken one reports how far it got', () => {
    for (let i = 0; i < 200; i++) catalog.audit('file.viewed', SHA_A, { i });
    expect(catalog.verifyChain()).toMatchObject({ ok: true, entries: 200, head: { seq: 200 } });
    raw.exec('UPDATE audit SET data = \'{"i":-1}\' WHERE seq = 150');
    expect(catalog.verifyChain()).toMatchObject({ ok: false, entries: 150, firstBroken: { seq: 150 } });
  });

  it('auditEntries filters by time (inclusive) and by subject', () => {
    const entries = activity();
    // The stepping clock gives audit-only entries distinct times; events carry their own `at`.
    const since = entries[4].at; // receipt.ignored
    const got = catalog.auditEntries({ since });
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(entries.length);
    expect(got.every((e) => e.at >= since)).toBe(true);
    expect(got.map((e) => e.seq)).toEqual(entries.filter((e) => e.at >= since).map((e) => e.seq));
    expect(got.map((e) => e.seq)).toContain(5);
    expect(catalog.auditEntries({ subject: SHA_A }).map((e) => e.type)).toEqual([
      'file.ingested',
      'file.uploaded',
      'file.archived',
      'file.exported',
    ]);
    expect(catalog.auditEntries()).toHaveLength(entries.length);
  });

  it('a published head catches what the chain alone cannot: its newest entries deleted, or the chain rebuilt', () => {
    activity();
    const kept = catalog.auditHead(); // seq 8, as HQ saw it on P/S/audit
    catalog.audit('verify', null, { ok: true }); // the station goes on working: later entries are fine
    expect(catalog.checkChainAgainstHead(kept)).toEqual({ ok: true });
    expect(catalog.checkChainAgainstHead({ seq: 0, hash: GENESIS })).toEqual({ ok: true });

    // The newest entries cut off: the rest is a perfectly valid chain, only the head shows the loss.
    raw.exec('DELETE FROM audit WHERE seq >= 7');
    expect(catalog.verifyChain()).toMatchObject({ ok: true, entries: 6 });
    const cut = catalog.checkChainAgainstHead(kept);
    expect(cut.ok).toBe(false);
    expect(!cut.ok && cut.problem).toMatch(/ends at entry 6.*names entry 8.*7–8.*deleted/);

    // Rebuilt (re-hashed from an edit onwards) to the same length: the entry at the head's seq differs.
    const e = rows(raw)[3];
    const data = canonicalJson({ type: 'file.uploaded', at: e.at, sha256: SHA_B });
    raw.prepare('UPDATE audit SET data = ?, hash = ? WHERE seq = 4').run(data, entryHash({ ...e, data }));
    let prev = entryHash({ ...e, data });
    for (const r of rows(raw).slice(4)) {
      const hash = entryHash({ ...r, prev_hash: prev });
      raw.prepare('UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?').run(prev, hash, r.seq);
      prev = hash;
    }
    for (let i = 0; i < 2; i++) catalog.audit('file.viewed', SHA_A, { i });
    expect(catalog.verifyChain()).toMatchObject({ ok: true, entries: 8 });
    const rebuilt = catalog.checkChainAgainstHead(kept);
    expect(!rebuilt.ok && rebuilt.problem).toMatch(/entry 8 hashes to .*signed head says.*rewritten/);
  });

  it('audit heads are signed with the station key: any changed field, another key or no signature fails', () => {
    activity();
    const key = openStationKey(dir);
    const head = signAuditHead(key, { stationId: 'st-1', ...catalog.auditHead(), at: '2026-11-28T00:10:00.000Z' });
    expect(Object.keys(head)).toEqual(['stationId', 'seq', 'hash', 'at', 'key', 'sig']);
    expect(head.key).toBe(publicKeyBase64(key.publicKey));
    expect(checkAuditHead(JSON.parse(JSON.stringify(head)), key.publicKey)).toEqual({ head });

    const error = (doc: unknown) => {
      const r = checkAuditHead(doc, key.publicKey);
      return 'error' in r ? r.error : null;
    };
    expect(error({ ...head, seq: head.seq - 1 })).toMatch(/bad signature/);
    expect(error({ ...head, hash: GENESIS })).toMatch(/bad signature/);
    expect(error({ ...head, at: '2026-11-28T00:11:00.000Z' })).toMatch(/bad signature/);
    expect(error({ ...head, stationId: 'st-2' })).toMatch(/bad signature/);
    expect(error({ ...head, sig: undefined })).toMatch(/not signed/);
    expect(error({ ...head, sig: 'not base64 at all!' })).toMatch(/bad signature/);
    expect(error({ seq: head.seq, hash: head.hash, at: head.at })).toMatch(/needs stationId/);
    expect(error([head])).toMatch(/not a JSON object/);
    // Signed by someone else, naming their own key: refused even though it verifies with that key.
    const other = generateKeyPairSync('ed25519');
    const forged = signAuditHead({ ...other, publicKeyBase64: publicKeyBase64(other.publicKey) }, head);
    expect(error(forged)).toMatch(/another key/);
    expect(error({ ...forged, key: head.key })).toMatch(/bad signature/);
  });
});
