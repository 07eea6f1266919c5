import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.ts';
import { copyAndHash } from '../ingest/copyAndHash.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import { fsyncDir, ObjectStore } from '../store/objects.ts';
import { uploadMetadata } from '../upload/uploadMetadata.ts';
import { whoIsAsking } from './actor.ts';
import { table } from './format.ts';

function out(s: string): void { process.stdout.write(`${s}\n`); }

export function audit(catalog: Catalog, json: boolean, since?: string): number {
  if (since && Number.isNaN(Date.parse(since))) throw new Error(`--since ${since} is not a date/time (ISO 8601)`);
  const sinceIso = since ? new Date(since).toISOString() : undefined;
  const rows = catalog.auditEntries({ since: sinceIso });
  if (json) { out(JSON.stringify(rows.map((r) => ({ ...r, data: JSON.parse(r.data) })), null, 2)); return 0; }
  if (!rows.length) { out('no audit entries'); return 0; }
  out(table([['SEQ', 'AT', 'TYPE', 'SUBJECT', 'HASH'], ...rows.map((r) => [String(r.seq), r.at, r.type, (r.subject ?? '').slice(0, 16), r.hash.slice(0, 16)])]));
  return 0;
}

/**
 * Copies a stored recording with its metadata JSON and its audit entries into DIR, verifies the copy's hash, and
 * audits the export (调阅留痕).
 */
export async function exportRecording(config: Config, catalog: Catalog, file: FileRow, toDir: string, json: boolean): Promise<number> {
  if (!file.sha256) throw new Error(`recording #${file.id} is not stored yet`);
  if (file.local_deleted_at) throw new Error(`recording #${file.id} was freed locally after HQ archived it (${file.local_deleted_at}); retrieve it from HQ`);
  const objects = new ObjectStore(config.storage.dir);
  const dir = path.resolve(toDir);
  await fs.mkdir(dir, { recursive: true });
  const base = `${file.id}-${path.basename(file.filename)}`;
  const target = path.join(dir, base);
  const metaPath = `${target}.meta.json`;
  // Both names are claimed before anything is copied or audited: an export either completes (copy, manifest, audit
  // entry) or leaves nothing of its own behind, and never overwrites what is in DIR already.
  const h = await fs.open(metaPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o444).catch((e) => {
    throw new Error(`${metaPath} exists already or cannot be written: ${(e as Error).message}`);
  });
  let entry;
  let by;
  let copiedHere = false;
  try {
    const copied = await copyAndHash(objects.pathOf(file.sha256), target).catch(async (e) => {
      if ((e as { code?: string }).code === 'TARGET_IO') throw new Error(`${target} exists already or cannot be written: ${(e as Error).message}`);
      throw e;
    });
    copiedHere = true;
    if (copied.sha256 !== file.sha256) {
      throw new Error(`the copy hashes to ${copied.sha256}, expected ${file.sha256}: stored object damaged (run dockctl verify)`);
    }
    await fs.chmod(target, 0o444);
    by = whoIsAsking();
    entry = catalog.audit('file.exported', file.sha256, { id: file.id, to: target, by });
  } catch (e) {
    await h.close().catch(() => {});
    await fs.rm(metaPath, { force: true });
    if (copiedHere) await fs.rm(target, { force: true });
    throw e;
  }
  const manifest = {
    id: file.id, sha256: file.sha256, ...(file.sm3 ? { sm3: file.sm3 } : {}), size: file.size, state: file.state,
    metadata: uploadMetadata(file, config.station.id), sourcePath: file.source_path, recorderTime: file.recorder_time,
    probe: file.probe ? JSON.parse(file.probe) : null, history: catalog.historyOf(file.id), sightings: catalog.sightingsOf(file.id),
    audit: catalog.auditEntries({ subject: file.sha256 }).map((a) => ({ ...a, data: JSON.parse(a.data) })),
    exportedAt: entry.at, exportedBy: by,
  };
  try { await h.writeFile(JSON.stringify(manifest, null, 2)); await h.sync(); } finally { await h.close(); }
  await fsyncDir(dir);
  if (json) out(JSON.stringify({ file: target, metadata: metaPath, sha256: file.sha256, auditSeq: entry.seq }, null, 2));
  else out(`exported #${file.id} to ${target} (sha256 ${file.sha256} verified) with ${path.basename(metaPath)}; recorded as audit entry ${entry.seq}`);
  return 0;
}
