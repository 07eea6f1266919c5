import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, configFileFromArgs, loadConfig, type Config } from '../config.ts';
import { annotateRecording, type AnnotationInput } from '../ingest/annotate.ts';
import { Catalog, FILE_STATES, type FileRow, type FileState } from '../store/catalog.ts';
import { publicFile } from '../store/publicFile.ts';
import { ObjectStore } from '../store/objects.ts';
import { createFfmpegTools } from '../media/ffprobe.ts';
import { systemTimeZone } from '../ingest/fileName.ts';
import { systemClock } from '../host.ts';
import { reprobe } from '../ingest/reprobe.ts';
import { bytes, table } from './format.ts';
import { collectStatus, renderStatus, watchStatus } from './statusView.ts';
import { runUserCommand, USER_USAGE } from './userCommands.ts';
import { POOL_COMMANDS, POOL_USAGE, PoolUsageError, runPoolCommand } from './poolCommands.ts';
import { audit, exportRecording } from './custodyCommands.ts';
import { whoIsAsking } from './actor.ts';
import { HeadFileError, verify } from './verifyCommand.ts';

const USAGE = `usage: dockctl [--config FILE] <command>
  status [--json | --watch]               station, docked recorders, queue, disk, alarms (--watch: refresh every second)
  files [--json] [--state STATE]          the catalog (states: ${FILE_STATES.join(', ')}; damaged: every recording whose
                                          content does not demux cleanly, whatever its state)
  reprobe ID | --all-damaged              verify a stored recording again (after damaged, or a probe that could not run)
  annotate ID --case-no X --purpose Y [--place P] [--collector C] [--captured-at ISO]
                                          complete a recording's required metadata (ID: catalog id or sha256 prefix)
  verify [--json] [--head FILE]           re-hash every stored object and check the audit chain (and that it still holds the
                                          signed audit head HQ kept in FILE); exit 1 naming each bad item
  audit [--json] [--since T]              the audit trail (hash chain)
  export ID --to DIR [--json]             copy a recording with its metadata and audit entries; the export is audited
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

function files(config: Config, json: boolean, state?: string): number {
  if (state && state !== 'damaged' && !FILE_STATES.includes(state as FileState))
    throw new UsageError(`unknown state ${state} (one of ${FILE_STATES.join(', ')}, damaged)`);
  const catalog = openCatalog(config, true);
  try {
    const rows =
      state === 'damaged'
        ? catalog.list().filter((f) => f.integrity === 'damaged')
        : catalog.list(state as FileState | undefined);
    if (json) {
      out(JSON.stringify(rows.map(publicFile), null, 2));
      return 0;
    }
    if (!rows.length) {
      out('no recordings');
      return 0;
    }
    out(
      table([
        ['ID', 'STATE', 'SHA256', 'SIZE', 'CAPTURED', 'FILE', 'NOTE'],
        ...rows.map((f) => [
          String(f.id),
          f.state,
          (f.sha256 ?? '').slice(0, 12),
          bytes(f.size),
          f.captured_at ?? '-',
          f.filename,
          fileNote(f),
        ]),
      ]),
    );
    return 0;
  } finally {
    catalog.close();
  }
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
        head: { type: 'string' },
        'all-damaged': { type: 'boolean' },
      },
    });
    const { config } = loadConfig(file);
    switch (command) {
      case 'status':
        return await status(config, Boolean(values.json), Boolean(values.watch));
      case 'files':
        return files(config, Boolean(values.json), values.state);
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
