import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import type { Logger } from '../log.ts';
import type { Catalog, FileRow, FileState } from '../store/catalog.ts';
import { annotateRecording } from './annotate.ts';
import { parseSidecar, type Sidecar } from './metadata.ts';

const MAX_SIDECAR = 64 * 1024;

/** Reads a recording's sidecar (`<name>.meta.json`): never follows a link, never blocks on a fifo, at most 64 KiB. */
export async function readSidecar(p: string | Buffer): Promise<{ sidecar: Sidecar; error?: string; code?: string }> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { sidecar: {}, error: `cannot open sidecar: ${code}`, code };
  }
  try {
    const st = await h.stat();
    if (!st.isFile() || st.size > MAX_SIDECAR) return { sidecar: {}, error: `sidecar larger than ${MAX_SIDECAR} bytes` };
    return parseSidecar((await h.readFile()).toString('utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { sidecar: {}, error: `cannot read sidecar: ${code ?? (e as Error).message}`, code };
  } finally {
    await h.close().catch(() => {});
  }
}

/**
 * A recording stored earlier and still held (needs-annotation) whose sidecar can be read now (it could not be when it
 * was copied: the volume went at the pull, or the sidecar came later): the sidecar fills the fields the recording
 * still lacks, as an annotation (history line, `file.annotated` event, audit). Fields it already has are kept.
 * Returns its state after the annotation (null: not annotated).
 */
export async function annotateFromLateSidecar(
  catalog: Catalog,
  log: Logger,
  seen: FileRow,
  sidecarPath: string | Buffer,
  relPath: string,
): Promise<FileState | null> {
  if (seen.state !== 'needs-annotation') return null;
  const { sidecar, error } = await readSidecar(sidecarPath);
  if (error) return null;
  // Read again: the row was read before the re-hash and the sidecar read, and a person may have annotated it since
  // (the page, dockctl). Their fields are kept, and a recording no longer held is left alone. No await from here on.
  const file = catalog.get(seen.id);
  if (file?.state !== 'needs-annotation') return null;
  const caseNo = file.case_no ?? sidecar.caseNo;
  const purpose = file.purpose ?? sidecar.purpose;
  if (!caseNo || !purpose) return null;
  const wanted = {
    caseNo,
    purpose,
    ...(file.place ? {} : { place: sidecar.place }),
    ...(file.collector ? {} : { collector: sidecar.collector }),
  };
  const nothingNew = file.case_no && file.purpose && !wanted.place && !wanted.collector;
  if (nothingNew) return null;
  const r = annotateRecording(catalog, String(file.id), wanted, `the recorder's sidecar (${relPath})`);
  if (!r.ok) {
    log.warn({ path: relPath, id: file.id, err: r.message }, 'sidecar read on re-dock not applied');
    return null;
  }
  log.info({ path: relPath, id: file.id, state: r.state }, 'stored recording annotated from its sidecar on re-dock');
  return r.state;
}
