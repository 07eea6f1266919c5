import { readFileSync } from 'node:fs';
import type { Config } from '../config.ts';
import { readStationPublicKey } from '../custody/keys.ts';
import { checkAuditHead } from '../custody/signatures.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import { ObjectStore, ObjectStoreError } from '../store/objects.ts';
import { whoIsAsking } from './actor.ts';
import { UsageError } from './usage.ts';

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** A --head FILE that is not a head at all (unreadable, not JSON): the caller's mistake, not a verification result. */
export class HeadFileError extends UsageError {}

export interface HeadCheck {
  ok: boolean;
  seq: number | null;
  problem?: string;
}

/** Reads a kept audit head (the JSON of a P/S/audit message) and checks its signature and the chain against it. */
export function checkHeadFile(config: Config, catalog: Catalog, file: string): HeadCheck {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new HeadFileError(`--head ${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new HeadFileError(`--head ${file}: not JSON (expected the payload of a P/S/audit message)`);
  }
  const seq = Number.isInteger((doc as { seq?: unknown })?.seq) ? (doc as { seq: number }).seq : null;
  const key = readStationPublicKey(config.storage.dir);
  if (!key)
    return {
      ok: false,
      seq,
      problem: `this station has no key in ${config.storage.dir} (station-key.pub.pem): it cannot have signed that head`,
    };
  const checked = checkAuditHead(doc, key);
  if ('error' in checked) return { ok: false, seq, problem: checked.error };
  const { head } = checked;
  if (head.stationId !== config.station.id)
    return { ok: false, seq, problem: `the head is station ${head.stationId}'s, not ${config.station.id}'s` };
  const against = catalog.checkChainAgainstHead(head);
  return against.ok ? { ok: true, seq: head.seq } : { ok: false, seq: head.seq, problem: against.problem };
}

/**
 * Re-hashes every stored object (not those freed after archive) and checks the audit chain, and with `headFile` the
 * chain against a signed head kept elsewhere; audits the result when the chain is intact.
 */
/**
 * Every file whose object should be here, read a page at a time: memory stays flat in the catalog's size, and no read
 * transaction stays open across the hours a large store takes to re-hash (the daemon's WAL could not be checkpointed).
 */
function* storedObjects(catalog: Catalog): Generator<FileRow> {
  let after = 0;
  for (;;) {
    const page = catalog.page({}, { order: 'asc', after, limit: 1000 });
    for (const f of page) if (f.sha256 && !f.local_deleted_at) yield f;
    if (page.length < 1000) return;
    after = page[page.length - 1].id;
  }
}

export async function verify(config: Config, catalog: Catalog, json: boolean, headFile?: string): Promise<number> {
  const head = headFile === undefined ? undefined : checkHeadFile(config, catalog, headFile);
  const objects = new ObjectStore(config.storage.dir);
  const bad: { id: number; sha256: string; problem: string }[] = [];
  let checked = 0;
  for (const f of storedObjects(catalog)) {
    checked++;
    try {
      const r = await objects.rehash(f.sha256!);
      if (r.sha256 !== f.sha256) bad.push({ id: f.id, sha256: f.sha256!, problem: `content changed: now hashes to ${r.sha256}` });
      else if (r.size !== f.size) bad.push({ id: f.id, sha256: f.sha256!, problem: `size ${r.size}, catalog says ${f.size}` });
    } catch (e) {
      bad.push({
        id: f.id,
        sha256: f.sha256!,
        problem: e instanceof ObjectStoreError && e.code === 'OBJECT_MISSING' ? 'object missing' : (e as Error).message,
      });
    }
  }
  const chain = catalog.verifyChain();
  const headOk = head?.ok ?? true;
  const ok = bad.length === 0 && chain.ok && headOk;
  if (chain.ok && headOk) {
    // Only an intact chain is extended: appending to a broken (or cut-off) one would bury the break.
    catalog.audit('verify', null, {
      ok,
      checked,
      bad: bad.map((b) => ({ id: b.id, sha256: b.sha256, problem: b.problem })),
      by: whoIsAsking(),
      ...(head ? { head: { seq: head.seq, ok: head.ok } } : {}),
    });
  }
  if (json) out(JSON.stringify({ ok, checked, bad, audit: chain, ...(head ? { head } : {}) }, null, 2));
  else {
    for (const b of bad) out(`BAD #${b.id} ${b.sha256}: ${b.problem}`);
    out(
      chain.ok
        ? `audit chain: ok, ${chain.entries} entries, head ${chain.head.seq} ${chain.head.hash.slice(0, 16)}`
        : `BAD audit chain: entry ${chain.firstBroken!.seq}: ${chain.firstBroken!.problem}`,
    );
    if (head)
      out(
        head.ok
          ? `signed head ${head.seq}: ok, the chain holds it`
          : `BAD signed head${head.seq === null ? '' : ` ${head.seq}`}: ${head.problem}`,
      );
    const problems = [chain.ok ? '' : 'audit chain broken', headOk ? '' : 'signed head not matched'].filter(Boolean).join(', ');
    out(ok ? `ok: ${checked} object(s) intact` : `${bad.length} of ${checked} object(s) bad${problems ? `, ${problems}` : ''}`);
  }
  return ok ? 0 : 1;
}
