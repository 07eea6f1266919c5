import type { Config } from '../config.ts';
import { systemClock } from '../clock.ts';
import { annotateRecording, type AnnotationInput } from '../ingest/annotate.ts';
import { reprobe } from '../ingest/reprobe.ts';
import { createFfmpegTools } from '../media/ffprobe.ts';
import { systemTimeZone } from '../media/zonedTime.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import { ObjectStore } from '../store/objects.ts';
import { whoIsAsking } from './actor.ts';
import { openCatalog, withCatalog } from './openCatalog.ts';
import { UsageError } from './usage.ts';

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** `dockctl reprobe ID | --all-damaged`: verify stored recordings again. */
export async function reprobeCommand(config: Config, id: string | undefined, allDamaged: boolean): Promise<number> {
  if (Boolean(id) === allDamaged) throw new UsageError('usage: dockctl reprobe ID | --all-damaged');
  return withCatalog(config, false, async (catalog) => {
    let targets: FileRow[];
    if (allDamaged) targets = damagedOrUnprobed(catalog);
    else {
      const { file, error } = catalog.resolve(id!);
      if (!file) throw new UsageError(error!);
      targets = [file];
    }
    if (!targets.length) {
      out('no damaged recordings');
      return 0;
    }
    const deps = {
      catalog,
      objects: new ObjectStore(config.storage.dir),
      media: createFfmpegTools(),
      timeZone: config.station.timeZone ?? systemTimeZone(),
      stationId: config.station.id,
      now: systemClock.now,
    };
    const actor = whoIsAsking();
    let failed = 0;
    for (const f of targets) {
      const r = await reprobe(deps, f, actor);
      if (!r.ok) failed++;
      (r.ok ? process.stdout : process.stderr).write(`${r.message}\n`);
    }
    return failed ? 1 : 0;
  });
}

/**
 * Recordings whose content does not demux cleanly, and stored ones still waiting for a probe, in id order. Read a row at
 * a time through the filters: not the whole catalog (a million rows) into memory to keep a handful.
 */
function damagedOrUnprobed(catalog: Catalog): FileRow[] {
  const byId = new Map<number, FileRow>();
  for (const f of catalog.each({ damaged: true })) byId.set(f.id, f);
  for (const f of catalog.each({ state: 'stored' })) if (f.probe_after) byId.set(f.id, f);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** `dockctl annotate ID ...`: complete a recording's required metadata. */
export function annotate(config: Config, id: string, v: AnnotationInput): number {
  if (!v.caseNo?.trim() || !v.purpose?.trim()) throw new UsageError('annotate needs --case-no and --purpose');
  const catalog = openCatalog(config, false);
  try {
    const r = annotateRecording(catalog, id, v, whoIsAsking());
    if (!r.ok) {
      process.stderr.write(`dockctl: ${r.message}\n`);
      return 1;
    }
    out(
      r.missing.length
        ? `#${r.file.id} annotated but still held: ${r.reason}. Add the rest with dockctl annotate ${r.file.id} --case-no ... --purpose ... --place ...`
        : `#${r.file.id} annotated: ready, it will be uploaded`,
    );
    return 0;
  } finally {
    catalog.close();
  }
}
