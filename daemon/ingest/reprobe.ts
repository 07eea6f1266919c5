import type { MediaKind } from '../media/mediaTypes.ts';
import { classifyStored, makePlayableCopy, type ClassifyDeps } from './classify.ts';
import { fileEvent } from '../status/stationEvents.ts';
import type { FileRow } from '../store/catalog.ts';

export interface ReprobeResult {
  ok: boolean;
  message: string;
  file?: FileRow;
}

/**
 * Probes a stored recording again (`dockctl reprobe`, the page's button): after a verdict of `damaged`, or when the
 * probe could not run. The new verdict replaces the old one in the catalog and is audited and announced with who
 * asked; a recording already sent to HQ keeps what HQ was told (the event says both). Only the object is read.
 */
export async function reprobe(
  deps: ClassifyDeps,
  file: FileRow,
  actor: string,
  actorFields: Record<string, unknown> = {},
): Promise<ReprobeResult> {
  const { catalog, objects, media } = deps;
  if (!file.sha256) return { ok: false, message: `#${file.id} is still being copied` };
  if (file.local_deleted_at)
    return {
      ok: false,
      message: `#${file.id}: the local copy was freed on ${file.local_deleted_at} (HQ holds it); nothing to probe here`,
    };
  if (file.size === 0) return { ok: false, message: `#${file.id} is an empty file (0 bytes): there is nothing to probe` };
  if (file.state === 'stored') {
    const f = await classifyStored(deps, file.id);
    catalog.audit('file.reprobed', f.sha256, {
      id: f.id,
      by: actor,
      ...actorFields,
      integrity: f.integrity,
      note: f.integrity_note,
      state: f.state,
    });
    return f.state === 'stored'
      ? { ok: false, message: `#${f.id}: ${f.last_error ?? 'verification could not run'}; it is tried again later`, file: f }
      : { ok: true, message: `#${f.id}: ${describe(f)}`, file: f };
  }
  const probe = await media.probe(objects.pathOf(file.sha256), file.kind as MediaKind, file.size);
  if (probe.unavailable)
    return {
      ok: false,
      message: `#${file.id}: 校验 verification could not run: ${probe.unavailable} (no verdict; nothing changed)`,
    };
  const integrity = probe.ok ? 'ok' : 'damaged';
  const note = probe.ok ? null : (probe.reason ?? 'failed verification');
  const sentToHq = ['uploading', 'uploaded', 'archived'].includes(file.state);
  const detail = `probed again by ${actor}: ${integrity}${note ? ` (${note})` : ''}${sentToHq ? `; HQ was sent integrity=${file.integrity ?? 'ok'}` : ''}`;
  // The file.reprobed event (with who asked) is itself an entry of the audit chain.
  catalog.transition(
    file.id,
    file.state,
    {
      integrity,
      integrity_note: note,
      probe: JSON.stringify({
        format: probe.format,
        duration: probe.duration,
        streams: probe.streams,
        creationTime: probe.creationTime,
      }),
      duration: probe.duration ?? file.duration,
    },
    {
      from: [file.state],
      detail,
      event: fileEvent(
        'file.reprobed',
        { ...file, integrity, integrity_note: note },
        { by: actor, ...actorFields, previous: file.integrity, ...(sentToHq ? { sentToHqAs: file.integrity ?? 'ok' } : {}) },
      ),
    },
  );
  let f = catalog.get(file.id)!;
  if (integrity === 'damaged' && !f.derived_sha256 && /\.(mp4|mov)$/i.test(f.filename)) {
    await makePlayableCopy(deps, f);
    f = catalog.get(file.id)!;
  }
  return {
    ok: true,
    message: `#${f.id}: ${describe(f)}${sentToHq ? ` (already sent to HQ as integrity=${file.integrity ?? 'ok'})` : ''}`,
    file: f,
  };
}

function describe(f: FileRow): string {
  if (f.integrity === 'damaged')
    return `damaged: ${f.integrity_note}${f.derived_sha256 ? `; a playable copy is kept beside it (${f.derived_sha256.slice(0, 12)})` : ''}`;
  return `demuxes cleanly (integrity ok); state ${f.state}`;
}
