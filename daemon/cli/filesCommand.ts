import type { Config } from '../config.ts';
import { FILE_STATES, type FileRow, type FileState } from '../store/catalog.ts';
import type { FileFilter } from '../store/catalogReads.ts';
import { publicFile } from '../store/publicFile.ts';
import { bytes, table } from './format.ts';
import { openCatalog } from './openCatalog.ts';
import { UsageError } from './usage.ts';

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

export interface FilesOptions {
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

/** `dockctl files`: one page of the catalog (or all of it), as a table or streamed JSON. */
export function files(config: Config, o: FilesOptions): number {
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
