import { freshStatement } from './statementCache.ts';
import { nodeCrypto } from '../nodeCrypto.ts';
import type Database from 'better-sqlite3';

export const GENESIS = '0'.repeat(64);

export interface AuditEntry {
  seq: number;
  at: string;
  type: string;
  subject: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

/** JSON with object keys sorted, so the same entry always hashes the same. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  return nodeCrypto()
    .createHash('sha256')
    .update([e.prev_hash, e.seq, e.at, e.type, e.subject ?? '', e.data].join('\n'))
    .digest('hex');
}

/**
 * Appends one entry to the hash chain. Call inside the transaction that makes the change it records (an IMMEDIATE
 * transaction, so no other writer can slip an entry in between reading the head and writing the next one).
 */
export function appendAudit(db: Database.Database, at: string, type: string, subject: string | null, data: unknown): AuditEntry {
  const head = db.prepare(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).get() as
    | { seq: number; hash: string }
    | undefined;
  const base = { seq: (head?.seq ?? 0) + 1, at, type, subject, data: canonicalJson(data), prev_hash: head?.hash ?? GENESIS };
  const entry = { ...base, hash: entryHash(base) };
  db.prepare(`INSERT INTO audit (seq, at, type, subject, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(
    entry.seq,
    entry.at,
    entry.type,
    entry.subject,
    entry.data,
    entry.prev_hash,
    entry.hash,
  );
  return entry;
}

export function auditHead(db: Database.Database): { seq: number; hash: string } {
  const head = db.prepare(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).get() as
    | { seq: number; hash: string }
    | undefined;
  return head ?? { seq: 0, hash: GENESIS };
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  head: { seq: number; hash: string };
  firstBroken?: { seq: number; problem: string };
}

/**
 * Re-computes the chain in storage order. An edited row fails its own hash; a deleted row leaves a gap in seq and a
 * prev_hash that no longer matches; a reordered row breaks the link to its predecessor.
 */
export function verifyChain(db: Database.Database): ChainCheck {
  let prev = GENESIS;
  let expectedSeq = 1;
  let n = 0;
  // rowid order is storage order: renumbering seq to hide a reordering still shows here.
  for (const e of freshStatement(db, `SELECT rowid AS rid, * FROM audit ORDER BY rowid`).iterate() as IterableIterator<
    AuditEntry & { rid: number }
  >) {
    n++;
    const fail = (problem: string): ChainCheck => ({
      ok: false,
      entries: n,
      head: { seq: e.seq, hash: e.hash },
      firstBroken: { seq: e.seq, problem },
    });
    if (e.seq !== expectedSeq)
      return fail(
        e.seq > expectedSeq
          ? `entries ${expectedSeq}–${e.seq - 1} are missing`
          : `entry out of order (expected seq ${expectedSeq})`,
      );
    if (e.prev_hash !== prev) return fail('does not link to the entry before it');
    if (entryHash(e) !== e.hash) return fail('content does not match its hash (edited)');
    prev = e.hash;
    expectedSeq++;
  }
  return { ok: true, entries: n, head: { seq: expectedSeq - 1, hash: prev } };
}

/**
 * Compares the chain with a head published earlier (and kept by HQ): the entry at that seq must still be there with
 * that hash. A chain that verifies on its own can still have lost its newest entries, or been rebuilt from an edited
 * past; only an outside head shows that. Entries after the head are fine (the station went on working).
 */
export function checkChainAgainstHead(
  db: Database.Database,
  head: { seq: number; hash: string },
): { ok: true } | { ok: false; problem: string } {
  if (head.seq === 0)
    return head.hash === GENESIS ? { ok: true } : { ok: false, problem: 'a head at seq 0 must carry the genesis hash' };
  const row = db.prepare(`SELECT hash FROM audit WHERE seq = ?`).get(head.seq) as { hash: string } | undefined;
  const last = auditHead(db);
  if (!row) {
    const gone =
      last.seq + 1 === head.seq ? `entry ${head.seq} (at least) was` : `entries ${last.seq + 1}–${head.seq} (at least) were`;
    return {
      ok: false,
      problem:
        last.seq < head.seq
          ? `the chain ends at entry ${last.seq}, but the signed head names entry ${head.seq}: ${gone} deleted`
          : `entry ${head.seq}, named by the signed head, is missing`,
    };
  }
  if (row.hash !== head.hash) {
    return {
      ok: false,
      problem: `entry ${head.seq} hashes to ${row.hash.slice(0, 16)}…, the signed head says ${head.hash.slice(0, 16)}…: the history up to it was rewritten`,
    };
  }
  return { ok: true };
}
