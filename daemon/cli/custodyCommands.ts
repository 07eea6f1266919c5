import { randomBytes } from 'node:crypto';
import { constants, fsyncSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.ts';
import { copyAndHash, CopyError } from '../recorder/copyAndHash.ts';
import { DirectoryProblem, ensureDirectory, errnoWords } from '../makeDirectory.ts';
import type { AuditEntry } from '../store/audit.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import { fsyncDir, ObjectStore } from '../store/objects.ts';
import { uploadMetadata } from '../upload/uploadMetadata.ts';
import { whoIsAsking } from './actor.ts';
import { table } from './format.ts';

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

export function audit(catalog: Catalog, json: boolean, since?: string): number {
  if (since && Number.isNaN(Date.parse(since))) throw new Error(`--since ${since} is not a date/time (ISO 8601)`);
  const sinceIso = since ? new Date(since).toISOString() : undefined;
  const rows = catalog.auditEntries({ since: sinceIso });
  if (json) {
    out(
      JSON.stringify(
        rows.map((r) => ({ ...r, data: JSON.parse(r.data) })),
        null,
        2,
      ),
    );
    return 0;
  }
  if (!rows.length) {
    out('no audit entries');
    return 0;
  }
  out(
    table([
      ['SEQ', 'AT', 'TYPE', 'SUBJECT', 'HASH'],
      ...rows.map((r) => [String(r.seq), r.at, r.type, (r.subject ?? '').slice(0, 16), r.hash.slice(0, 16)]),
    ]),
  );
  return 0;
}

/**
 * Copies a stored recording with its metadata JSON and its audit entries into DIR, verifies the copy's hash, and
 * audits the export (调阅留痕). It either completes (copy, manifest, audit entry) or leaves nothing of its own in DIR
 * and no `file.exported` entry (a `file.export-failed` entry says what went wrong); it never overwrites.
 */
export async function exportRecording(
  config: Config,
  catalog: Catalog,
  file: FileRow,
  toDir: string,
  json: boolean,
): Promise<number> {
  if (!file.sha256) throw new Error(`recording #${file.id} is not stored yet`);
  if (file.local_deleted_at)
    throw new Error(
      `recording #${file.id} was freed locally after HQ archived it (${file.local_deleted_at}); retrieve it from HQ`,
    );
  const dir = path.resolve(toDir);
  const target = path.join(dir, `${file.id}-${path.basename(file.filename)}`);
  const by = whoIsAsking();
  try {
    const { entry, metaPath } = await exportInto(config, catalog, file, dir, target, by);
    if (json) out(JSON.stringify({ file: target, metadata: metaPath, sha256: file.sha256, auditSeq: entry.seq }, null, 2));
    else
      out(
        `exported #${file.id} to ${target} (sha256 ${file.sha256} verified) with ${path.basename(metaPath)}; recorded as audit entry ${entry.seq}`,
      );
    return 0;
  } catch (e) {
    const message = e instanceof DirectoryProblem ? `export to ${e.message}` : (e as Error).message;
    try {
      catalog.audit('file.export-failed', file.sha256, { id: file.id, to: target, by, error: message });
    } catch (auditError) {
      throw new Error(`${message} (and the failed attempt could not be audited: ${(auditError as Error).message})`);
    }
    throw new Error(message);
  }
}

async function exportInto(
  config: Config,
  catalog: Catalog,
  file: FileRow,
  dir: string,
  target: string,
  by: string,
): Promise<{ entry: AuditEntry; metaPath: string }> {
  const sha256 = file.sha256!;
  await ensureDirectory(dir, { create: true });
  const metaPath = `${target}.meta.json`;
  if (
    await fs.lstat(target).then(
      () => true,
      () => false,
    )
  )
    throw new Error(`${target} exists already`);
  // The manifest's name is claimed first, so that an export never overwrites what is in DIR already.
  const h = await fs.open(metaPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o444).catch((e) => {
    throw new Error(
      (e as NodeJS.ErrnoException).code === 'EEXIST'
        ? `${metaPath} exists already`
        : `${metaPath} cannot be written: ${errnoWords(e)}`,
    );
  });
  // The copy is made under a hidden name and linked to its own only once complete and verified: a failure midway
  // (a full disk, a read-only or odd file system) leaves no truncated recording under the recording's name.
  const partial = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.partial`);
  let linked = false;
  try {
    const copied = await copyAndHash(new ObjectStore(config.storage.dir).pathOf(sha256), partial).catch((e) => {
      if (!(e instanceof CopyError)) throw e;
      throw new Error(
        e.code === 'TARGET_IO'
          ? `cannot export to ${dir}: ${errnoWords(e.cause ?? e)}`
          : `the stored object of #${file.id} cannot be read (${errnoWords(e.cause ?? e)}); run dockctl verify`,
      );
    });
    if (copied.sha256 !== sha256)
      throw new Error(`the copy hashes to ${copied.sha256}, expected ${sha256}: stored object damaged (run dockctl verify)`);
    await fs.chmod(partial, 0o444);
    await fs.link(partial, target).catch((e) => {
      throw new Error(
        (e as NodeJS.ErrnoException).code === 'EEXIST'
          ? `${target} exists already`
          : `${target} cannot be written: ${errnoWords(e)}`,
      );
    });
    linked = true;
    await fs.unlink(partial);
    await fsyncDir(dir);
    // The audit entry and the manifest that carries it commit together: the manifest is written (synchronously)
    // inside the audit transaction, so a manifest that cannot be written rolls the entry back.
    const entry = catalog.auditWith('file.exported', sha256, { id: file.id, to: target, by }, (e) => {
      const manifest = {
        id: file.id,
        sha256,
        ...(file.sm3 ? { sm3: file.sm3 } : {}),
        size: file.size,
        state: file.state,
        metadata: uploadMetadata(file, config.station.id),
        sourcePath: file.source_path,
        recorderTime: file.recorder_time,
        probe: file.probe ? JSON.parse(file.probe) : null,
        history: catalog.historyOf(file.id),
        sightings: catalog.sightingsOf(file.id),
        audit: catalog.auditEntries({ subject: sha256 }).map((a) => ({ ...a, data: JSON.parse(a.data) })),
        exportedAt: e.at,
        exportedBy: by,
      };
      try {
        writeFileSync(h.fd, JSON.stringify(manifest, null, 2));
        fsyncSync(h.fd);
      } catch (err) {
        throw new Error(`${metaPath} cannot be written: ${errnoWords(err)}`);
      }
      return e;
    });
    // Committed: the manifest is on disk (fsynced above), so nothing after this may undo the export.
    await h.close().catch(() => {});
    return { entry, metaPath };
  } catch (e) {
    await h.close().catch(() => {});
    await fs.rm(metaPath, { force: true });
    await fs.rm(partial, { force: true });
    if (linked) await fs.rm(target, { force: true });
    throw e;
  }
}
