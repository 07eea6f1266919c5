import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, configFileFromArgs, loadConfig, type Config } from '../config.ts';
import { describeMissing, missingFields } from '../ingest/metadata.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import { Catalog, FILE_STATES, type FileRow, type FileState } from '../store/catalog.ts';
import { bar, bytes, table } from './format.ts';
import { audit, exportRecording, verify, whoIsAsking } from './custodyCommands.ts';

const USAGE = `usage: dockctl [--config FILE] <command>
  status [--json]                         station, docked recorders, queue, disk, alarms
  files [--json] [--state STATE]          the catalog (states: ${FILE_STATES.join(', ')})
  annotate ID --case-no X --purpose Y [--place P] [--collector C]
                                          complete a recording's required metadata (ID: catalog id or sha256 prefix)
  verify [--json]                         re-hash every stored object and check the audit chain; exit 1 naming each bad item
  audit [--json] [--since T]              the audit trail (hash chain)
  export ID --to DIR [--json]             copy a recording with its metadata and audit entries; the export is audited`;

class UsageError extends Error {}

function out(s: string): void { process.stdout.write(`${s}\n`); }

function openCatalog(config: Config, readonly: boolean): Catalog {
  const file = path.join(config.storage.dir, 'catalog.sqlite');
  if (!existsSync(file)) throw new UsageError(`no catalog at ${file}: has dockd run with this config?`);
  return Catalog.open(config.storage.dir, { readonly });
}

async function withCatalog<T>(config: Config, readonly: boolean, fn: (c: Catalog) => Promise<T> | T): Promise<T> {
  const catalog = openCatalog(config, readonly);
  try { return await fn(catalog); } finally { catalog.close(); }
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

function publicFile(f: FileRow): Record<string, unknown> {
  return {
    id: f.id, sha256: f.sha256, state: f.state, size: f.size, kind: f.kind, filename: f.filename, sourcePath: f.source_path,
    deviceSerial: f.device_serial, officerId: f.officer_id, capturedAt: f.captured_at, capturedAtSource: f.captured_at_source,
    recorderTime: f.recorder_time, caseNo: f.case_no, purpose: f.purpose, place: f.place, collector: f.collector,
    important: Boolean(f.important), reason: f.reason, duration: f.duration, creationTime: f.creation_time,
    probe: f.probe ? JSON.parse(f.probe) : null, uploadUrl: f.upload_url, uploadOffset: f.upload_offset, uploadAttempts: f.upload_attempts,
    lastError: f.last_error, createdAt: f.created_at, updatedAt: f.updated_at, uploadedAt: f.uploaded_at,
  };
}

function status(config: Config, json: boolean): number {
  const catalog = openCatalog(config, true);
  try {
    const snap = catalog.getKv<StateSnapshot>('state');
    const running = Boolean(snap && pidAlive(snap.pid));
    const counts = catalog.counts();
    const held = catalog.list('needs-annotation');
    const result = {
      stationId: config.station.id, daemon: running ? 'running' : 'not running', snapshotAt: snap?.at ?? null,
      recorders: running ? snap!.recorders : [], queue: { ...counts, bytesPending: catalog.bytesPending(), outbox: catalog.outboxSize() },
      uploads: running ? snap!.uploads : [], disk: snap?.disk ?? null, links: running ? snap!.links : null, alarms: running ? snap!.alarms : [],
      needsAnnotation: held.map((f) => ({ id: f.id, sha256: f.sha256, filename: f.filename, reason: f.reason })),
    };
    if (json) { out(JSON.stringify(result, null, 2)); return 0; }
    out(`station ${result.stationId} — dockd ${result.daemon}${snap ? ` (state as of ${snap.at})` : ''}`);
    out('');
    out('recorders:');
    if (!result.recorders.length) out('  none docked');
    for (const r of result.recorders) {
      const who = `${r.serial ?? r.name}${r.officerId ? `, officer ${r.officerId}${r.officerName ? ` ${r.officerName}` : ''}` : ''}`;
      out(`  ${r.name}: ${who} — ${r.state} ${r.files.done}/${r.files.total} files ${bar(r.bytes.done, r.bytes.total)}${r.safeToUndock ? '  可安全拔出 safe to undock' : ''}`);
      if (r.error) out(`    ! ${r.error}`);
      if (r.files.rejected || r.files.needsAnnotation || r.files.skipped) out(`    rejected ${r.files.rejected}, needs annotation ${r.files.needsAnnotation}, skipped ${r.files.skipped}`);
    }
    out('');
    out(`queue: ${FILE_STATES.filter((s) => counts[s]).map((s) => `${s} ${counts[s]}`).join(', ') || 'empty'}; ${bytes(result.queue.bytesPending)} not yet uploaded; ${result.queue.outbox} event(s) waiting for the broker`);
    for (const u of result.uploads) out(`  uploading #${u.id} ${bar(u.offset, u.size)}`);
    if (result.disk) out(`disk: ${bytes(result.disk.freeBytes)} free of ${bytes(result.disk.totalBytes)} (${result.disk.path})`);
    if (result.links) out(`links: tus ${result.links.tus}, mqtt ${result.links.mqtt}`);
    out('');
    out(`alarms: ${result.alarms.length ? '' : 'none'}`);
    for (const a of result.alarms) out(`  [${a.code}] since ${a.since}: ${a.message}`);
    if (held.length) {
      out('');
      out(`待补录 needs annotation (${held.length}):`);
      out(table(held.map((f) => [`  #${f.id}`, f.sha256!.slice(0, 12), f.filename, f.reason ?? ''])));
      out(`  complete with: dockctl annotate ID --case-no X --purpose Y [--place P]`);
    }
    return 0;
  } finally { catalog.close(); }
}

function files(config: Config, json: boolean, state?: string): number {
  if (state && !FILE_STATES.includes(state as FileState)) throw new UsageError(`unknown state ${state} (one of ${FILE_STATES.join(', ')})`);
  const catalog = openCatalog(config, true);
  try {
    const rows = catalog.list(state as FileState | undefined);
    if (json) { out(JSON.stringify(rows.map(publicFile), null, 2)); return 0; }
    if (!rows.length) { out('no recordings'); return 0; }
    out(table([['ID', 'STATE', 'SHA256', 'SIZE', 'CAPTURED', 'FILE', 'NOTE'],
      ...rows.map((f) => [String(f.id), f.state, (f.sha256 ?? '').slice(0, 12), bytes(f.size), f.captured_at ?? '-', f.filename, f.reason ?? (f.important ? 'IMP' : '')])]));
    return 0;
  } finally { catalog.close(); }
}

const EDITABLE: FileState[] = ['needs-annotation', 'ready'];

function annotate(config: Config, id: string, v: { caseNo?: string; purpose?: string; place?: string; collector?: string }): number {
  if (!v.caseNo?.trim() || !v.purpose?.trim()) throw new UsageError('annotate needs --case-no and --purpose');
  const catalog = openCatalog(config, false);
  try {
    const { file, error } = catalog.resolve(id);
    if (!file) { process.stderr.write(`dockctl: ${error}\n`); return 1; }
    if (!EDITABLE.includes(file.state)) {
      process.stderr.write(`dockctl: recording #${file.id} is ${file.state}; only ${EDITABLE.join(' or ')} recordings can be annotated\n`);
      return 1;
    }
    const next = {
      case_no: v.caseNo.trim(), purpose: v.purpose.trim(),
      place: v.place?.trim() || file.place, collector: v.collector?.trim() || file.collector,
    };
    const missing = missingFields({ caseNo: next.case_no, purpose: next.purpose, place: next.place, collector: next.collector, capturedAt: file.captured_at });
    const to: FileState = missing.length ? 'needs-annotation' : 'ready';
    const reason = missing.length ? describeMissing(missing) : null;
    const old = { caseNo: file.case_no, purpose: file.purpose, place: file.place, collector: file.collector };
    const changed = catalog.transition(file.id, to, { ...next, reason }, {
      from: EDITABLE, detail: `annotated by ${whoIsAsking()}`,
      event: { type: 'file.annotated', id: file.id, sha256: file.sha256, state: to, by: whoIsAsking(), old, new: { caseNo: next.case_no, purpose: next.purpose, place: next.place, collector: next.collector }, missing },
    });
    if (!changed) { process.stderr.write(`dockctl: recording #${file.id} changed state meanwhile; try again\n`); return 1; }
    out(missing.length
      ? `#${file.id} annotated but still held: ${reason}. Add the rest with dockctl annotate ${file.id} --case-no ... --purpose ... --place ...`
      : `#${file.id} annotated: ready, it will be uploaded`);
    return 0;
  } finally { catalog.close(); }
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { file, rest } = configFileFromArgs(argv);
    const [command, ...args] = rest;
    if (!command || command === 'help' || command === '--help') { out(USAGE); return command ? 0 : 2; }
    const { values, positionals } = parseArgs({
      args, allowPositionals: true, strict: true,
      options: {
        json: { type: 'boolean' }, state: { type: 'string' }, 'case-no': { type: 'string' }, purpose: { type: 'string' },
        place: { type: 'string' }, collector: { type: 'string' }, since: { type: 'string' }, to: { type: 'string' },
      },
    });
    const { config } = loadConfig(file);
    switch (command) {
      case 'status': return status(config, Boolean(values.json));
      case 'files': return files(config, Boolean(values.json), values.state);
      case 'annotate':
        if (positionals.length !== 1) throw new UsageError('annotate needs exactly one ID');
        return annotate(config, positionals[0], { caseNo: values['case-no'], purpose: values.purpose, place: values.place, collector: values.collector });
      case 'verify': return await withCatalog(config, false, (c) => verify(config, c, Boolean(values.json)));
      case 'audit': return await withCatalog(config, true, (c) => audit(c, Boolean(values.json), values.since));
      case 'export': {
        if (positionals.length !== 1 || !values.to) throw new UsageError('usage: dockctl export ID --to DIR');
        return await withCatalog(config, false, (c) => {
          const { file, error } = c.resolve(positionals[0]);
          if (!file) throw new UsageError(error!);
          return exportRecording(config, c, file, values.to!, Boolean(values.json));
        });
      }
      default: throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`dockctl: ${(e as Error).message}\n${e instanceof UsageError || e instanceof ConfigError ? '' : `${USAGE}\n`}`);
      return 2;
    }
    process.stderr.write(`dockctl: ${(e as Error).message}\n`);
    return 1;
  }
}
