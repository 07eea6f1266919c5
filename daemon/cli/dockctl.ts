import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, configFileFromArgs, loadConfig, type Config } from '../config.ts';
import { annotateRecording, type AnnotationInput } from '../ingest/annotate.ts';
import { Catalog, FILE_STATES, type FileRow, type FileState } from '../store/catalog.ts';
import type { FileFilter } from '../store/catalogReads.ts';
import { publicFile } from '../store/publicFile.ts';
import { ObjectStore } from '../store/objects.ts';
import { createFfmpegTools } from '../media/ffprobe.ts';
import { systemClock } from '../clock.ts';
import { systemTimeZone } from '../media/zonedTime.ts';
import { reprobe } from '../ingest/reprobe.ts';
import { bytes, table } from './format.ts';
import { collectStatus, renderStatus, watchStatus } from './statusView.ts';
import { runUserCommand, USER_USAGE } from './userCommands.ts';
import { POOL_COMMANDS, POOL_USAGE, PoolUsageError, runPoolCommand } from './poolCommands.ts';
import { audit, exportRecording } from './custodyCommands.ts';
import { whoIsAsking } from './actor.ts';
import { HeadFileError, verify } from './verifyCommand.ts';
import { collectStats, renderStats } from './statsCommand.ts';

const USAGE = `usage: dockctl [--config FILE] <command>
  status [--json | --watch]               station, docked recorders, queue, disk, alarms (--watch: refresh every second)
  files [--json] [--state STATE]          the catalog (states: ${FILE_STATES.join(', ')}; damaged: every recording whose
                                          content does not demux cleanly, whatever its state); --json streams the array
        [--officer ID] [--case-no X]      only one officer's recordings, only one case's
        [--from T] [--to T]               captured at or after T, before T (ISO 8601; without an offset: UTC)
        [--after ID] [--limit N]          a page: the N recordings after catalog id ID
  reprobe ID | --all-damaged              verify a stored recording again (after damaged, or a probe that could not run)
  annotate ID --case-no X --purpose Y [--place P] [--collector C] [--captured-at ISO]
                                          complete a recording's required metadata (ID: catalog id or sha256 prefix)
  verify [--json] [--head FILE]           re-hash every stored object and check the audit chain (and that it still holds the
                                          signed audit head HQ kept in FILE); exit 1 naming each bad item
  audit [--json] [--since T]              the audit trail (hash chain)
  export ID --to DIR [--json]             copy a recording with its metadata and audit entries; the export is audited
  stats [--from DATE] [--to DATE] [--by officer|device|day] [--json | --csv]
                                          counts per officer, recorder or capture day over capture times (DATE: a day
                                          YYYY-MM-DD in station time, whole day included, or an ISO 8601 time)
${POOL_USAGE}
${USER_USAGE}`;

class UsageError extends Error {}

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

function openCatalog(config: Config, readonly: boolean): Catalog {
  const file = path.join(config.storage.dir, 'catalog.sqlite');
  if (!existsSync(file)) throw new UsageError(`no catalog at ${file}: has dockd run with this config?`);
  return Catalog.open(config.storage.dir, { readonly });
}

async function withCatalog<T>(config: Config, readonly: boolean, fn: (c: Catalog) => Promise<T> | T): Promise<T> {
  const catalog = openCatalog(config, readonly);
  try {
    return await fn(catalog);
  } finally {
    catalog.close();
  }
}

async function status(config: Config, json: boolean, watch: boolean): Promise<number> {
  if (watch && json) throw new UsageError('status: --watch and --json do not go together');
  const catalog = openCatalog(config, true);
  try {
    if (watch) return await watchStatus(config, catalog);
    const view = collectStatus(config, catalog);
    out(json ? JSON.stringify(view, null, 2) : renderStatus(view));
    return 0;
  } finally {
    catalog.close();
  }
}

interface FilesOptions {
  json: boolean;
  state?: string;
  officer?: string;
  caseNo?: string;
  from?: string;
  to?: string;
  after?: string;
  limit?: string;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

function filesQuery(o: FilesOptions): { filter: FileFilter; after?: number; limit?: number } {
  const { state } = o;
  if (state && state !== 'damaged' && !FILE_STATES.includes(state as FileState))
    throw new UsageError(`unknown state ${state} (one of ${FILE_STATES.join(', ')}, damaged)`);
  for (const [k, v] of [
    ['--from', o.from],
    ['--to', o.to],
  ] as const)
    if (v !== undefined && !ISO_DATE.test(v))
      throw new UsageError(`${k} ${v}: give a date or time in ISO 8601 (2026-11-28, 2026-11-28T09:00+08:00)`);
  const count = (k: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d{1,12}$/.test(v) || Number(v) < min) throw new UsageError(`${k} ${v}: give a whole number of at least ${min}`);
    return Number(v);
  };
  return {
    filter: {
      state: state === 'damaged' ? undefined : (state as FileState | undefined),
      damaged: state === 'damaged',
      officerId: o.officer,
      caseNo: o.caseNo,
      capturedFrom: o.from,
      capturedBefore: o.to,
    },
    after: count('--after', o.after, 0),
    limit: count('--limit', o.limit, 1),
  };
}

/** A JSON array written one element at a time, byte for byte what JSON.stringify(rows, null, 2) would print. */
function writeJsonArray(rows: Iterable<unknown>): void {
  let n = 0;
  for (const r of rows) {
    process.stdout.write(`${n++ ? ',\n' : '[\n'}${JSON.stringify(r, null, 2).replace(/^/gm, '  ')}`);
  }
  process.stdout.write(n ? '\n]\n' : '[]\n');
}

function* mapped<T, U>(rows: Iterable<T>, f: (t: T) => U): Generator<U> {
  for (const r of rows) yield f(r);
}

function files(config: Config, o: FilesOptions): number {
  const q = filesQuery(o);
  const catalog = openCatalog(config, true);
  try {
    const rows = catalog.each(q.filter, { order: 'asc', after: q.after, limit: q.limit });
    if (o.json) {
      // Streamed: a catalog of 1,000,000 recordings is never held in memory at once.
      writeJsonArray(mapped(rows, publicFile));
      return 0;
    }
    const lines = [...mapped(rows, fileLine)];
    if (!lines.length) {
      out('no recordings');
      return 0;
    }
    out(table([['ID', 'STATE', 'SHA256', 'SIZE', 'CAPTURED', 'FILE', 'NOTE'], ...lines]));
    return 0;
  } finally {
    catalog.close();
  }
}

function fileLine(f: FileRow): string[] {
  return [String(f.id), f.state, (f.sha256 ?? '').slice(0, 12), bytes(f.size), f.captured_at ?? '-', f.filename, fileNote(f)];
}

function fileNote(f: FileRow): string {
  return [
    f.important ? 'IMP' : '',
    f.integrity === 'damaged' ? `damaged: ${f.integrity_note}` : '',
    f.reason ?? '',
    f.state === 'stored' && f.probe_after ? (f.last_error ?? 'verification waits for a retry') : '',
  ]
    .filter(Boolean)
    .join('; ');
}

async function reprobeCommand(config: Config, id: string | undefined, allDamaged: boolean): Promise<number> {
  if (Boolean(id) === allDamaged) throw new UsageError('usage: dockctl reprobe ID | --all-damaged');
  return withCatalog(config, false, async (catalog) => {
    let targets: FileRow[];
    if (allDamaged) targets = catalog.list().filter((f) => f.integrity === 'damaged' || (f.state === 'stored' && f.probe_after));
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

function annotate(config: Config, id: string, v: AnnotationInput): number {
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

export async function main(argv: string[]): Promise<number> {
  try {
    const { file, rest } = configFileFromArgs(argv);
    const [command, ...args] = rest;
    if (!command || command === 'help' || command === '--help') {
      out(USAGE);
      return command ? 0 : 2;
    }
    if (command === 'user') return await runUserCommand(file, args);
    if (POOL_COMMANDS.includes(command)) return await runPoolCommand(file, command, args);
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        watch: { type: 'boolean' },
        state: { type: 'string' },
        'case-no': { type: 'string' },
        purpose: { type: 'string' },
        place: { type: 'string' },
        collector: { type: 'string' },
        'captured-at': { type: 'string' },
        since: { type: 'string' },
        to: { type: 'string' },
        from: { type: 'string' },
        officer: { type: 'string' },
        after: { type: 'string' },
        limit: { type: 'string' },
        head: { type: 'string' },
        'all-damaged': { type: 'boolean' },
        by: { type: 'string' },
        csv: { type: 'boolean' },
      },
    });
    const { config } = loadConfig(file);
    switch (command) {
      case 'status':
        return await status(config, Boolean(values.json), Boolean(values.watch));
      case 'files':
        return files(config, {
          json: Boolean(values.json),
          state: values.state,
          officer: values.officer,
          caseNo: values['case-no'],
          from: values.from,
          to: values.to,
          after: values.after,
          limit: values.limit,
        });
      case 'annotate':
        if (positionals.length !== 1) throw new UsageError('annotate needs exactly one ID');
        return annotate(config, positionals[0], {
          caseNo: values['case-no'],
          purpose: values.purpose,
          place: values.place,
          collector: values.collector,
          capturedAt: values['captured-at'],
        });
      case 'reprobe':
        if (positionals.length > 1) throw new UsageError('usage: dockctl reprobe ID | --all-damaged');
        return await reprobeCommand(config, positionals[0], Boolean(values['all-damaged']));
      case 'verify':
        return await withCatalog(config, false, (c) => verify(config, c, Boolean(values.json), values.head));
      case 'audit':
        return await withCatalog(config, true, (c) => audit(c, Boolean(values.json), values.since));
      case 'export': {
        if (positionals.length !== 1 || !values.to) throw new UsageError('usage: dockctl export ID --to DIR');
        return await withCatalog(config, false, (c) => {
          const { file, error } = c.resolve(positionals[0]);
          if (!file) throw new UsageError(error!);
          return exportRecording(config, c, file, values.to!, Boolean(values.json));
        });
      }
      case 'stats':
        return await withCatalog(config, true, (c) => {
          const r = collectStats(config, c, { ...values, json: Boolean(values.json), csv: Boolean(values.csv) });
          if ('error' in r) throw new UsageError(r.error);
          out(renderStats(r.stats, values));
          return 0;
        });
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (
      e instanceof UsageError ||
      e instanceof PoolUsageError ||
      e instanceof ConfigError ||
      e instanceof HeadFileError ||
      (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(
        `dockctl: ${(e as Error).message}\n${e instanceof UsageError || e instanceof PoolUsageError || e instanceof ConfigError || e instanceof HeadFileError ? '' : `${USAGE}\n`}`,
      );
      return 2;
    }
    process.stderr.write(`dockctl: ${(e as Error).message}\n`);
    return 1;
  }
}
