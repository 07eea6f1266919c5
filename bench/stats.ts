/**
 * `npx tsx bench/stats.ts [--rows N] [--runs R] [--dir DIR]`: how fast `dockctl stats` answers over a big catalog.
 * Builds a catalog of N recordings (default 100,000; `--rows 1000000` for the figure in the README) straight into
 * SQLite (50 officers and recorders, one docking per 20 recordings, capture times over 180 days, a tenth late (the
 * flag stored, as the daemon's deadline check stores it, but for the newest 100), some awaiting annotation, most at
 * HQ), then times `dockctl stats --json` per grouping, over everything and over the last
 * 7 days, as a whole command (Node start included) and as the query alone (catalog.statistics). Median of R runs.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../daemon/config.ts';
import { Catalog } from '../daemon/store/catalog.ts';
import { STATS_GROUPINGS, type StatsQuery } from '../daemon/store/statistics.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: { rows: { type: 'string', default: '100000' }, runs: { type: 'string', default: '3' }, dir: { type: 'string' } },
});
const rows = Number(values.rows);
const runs = Number(values.runs);
const dir = values.dir ?? path.join(PACKAGE_ROOT, '.cache', `bench-stats-${rows}`);
const HOUR = 3600_000;
const END = Date.parse('2026-12-01T00:00:00Z');
const STATES = ['uploaded', 'archived', 'archived', 'archived', 'ready', 'needs-annotation', 'uploading', 'archived'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const shanghai = (ms: number) => `${new Date(ms + 8 * HOUR).toISOString().slice(0, 19)}+08:00`;

async function build(): Promise<void> {
  const storeDir = path.join(dir, 'store');
  try {
    const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true });
    const n = (db.prepare(`SELECT COUNT(*) n FROM files`).get() as { n: number }).n;
    db.close();
    if (n === rows) return;
  } catch {
    /* build it */
  }
  await fs.rm(dir, { recursive: true, force: true });
  Catalog.open(storeDir).close();
  const db = new Database(path.join(storeDir, 'catalog.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const t0 = performance.now();
  const session = db.prepare(`INSERT INTO sessions (id, volume, device_serial, officer_id, docked_at) VALUES (?, ?, ?, ?, ?)`);
  const file = db.prepare(`INSERT INTO files (sha256, size, state, kind, filename, source_path, device_serial, officer_id,
    captured_at, important, duration, session_id, created_at, updated_at, uploaded_at, late)
    VALUES (?, ?, ?, 'video', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      const sessionId = Math.floor(i / 20) + 1;
      const who = sessionId % 50;
      const officer = String(100000 + who);
      const serial = `D${String(who).padStart(6, '0')}`;
      const docked = END - ((rows - i) / rows) * 180 * 24 * HOUR;
      if (i % 20 === 0) session.run(sessionId, `vol-${sessionId}`, serial, officer, shanghai(docked));
      const late = i % 10 === 0;
      const captured = docked - (late ? 30 : 1 + (i % 7)) * HOUR;
      const state = STATES[i % STATES.length];
      const atHq = state === 'uploaded' || state === 'archived';
      const at = new Date(docked).toISOString();
      file.run(
        createHash('sha256').update(String(i)).digest('hex'),
        20_000_000 + (i % 1000) * 10_000,
        state,
        `${officer}_${serial}_${i}.mp4`,
        `DCIM/${i}.mp4`,
        serial,
        officer,
        shanghai(captured),
        i % 13 === 0 ? 1 : 0,
        60 + (i % 600),
        sessionId,
        at,
        at,
        atHq ? new Date(docked + (5 + (i % 50)) * 60_000).toISOString() : null,
        // flagged as the daemon's deadline check flags it, soon after the docking; the newest few not yet
        i < rows - 100 ? Number(late) : null,
      );
    }
  })();
  db.close();
  process.stdout.write(
    `built a catalog of ${rows.toLocaleString('en')} recordings in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}

async function main(): Promise<void> {
  await build();
  // A catalog cached by an older dockd: migrated as the daemon would at start (dockctl opens it read-only).
  const t0 = performance.now();
  Catalog.open(path.join(dir, 'store')).close();
  process.stdout.write(`opened (and migrated) the catalog in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const configFile = path.join(dir, 'dockd.yaml');
  await fs.writeFile(
    configFile,
    stringify({
      station: { id: 'bench', timeZone: 'Asia/Shanghai' },
      storage: { dir: path.join(dir, 'store') },
      dock: { mountRoots: [path.join(dir, 'dock')] },
      hq: { tus: { endpoint: 'http://127.0.0.1:1/files/' }, mqtt: { url: 'mqtt://127.0.0.1:1' } },
    }),
  );
  const catalog = Catalog.open(path.join(dir, 'store'), { readonly: true });
  const week = { from: shanghai(END - 7 * 24 * HOUR), to: shanghai(END) };
  const lines = [`dockctl stats over ${rows.toLocaleString('en')} recordings (median of ${runs}):`];
  try {
    for (const by of STATS_GROUPINGS) {
      for (const [label, period, args] of [
        ['all', {}, []],
        ['last 7 days', week, ['--from', '2026-11-24', '--to', '2026-11-30']],
      ] as const) {
        const q: StatsQuery = { by, offloadWithinHours: 24, ...period };
        const query: number[] = [];
        const command: number[] = [];
        let groups = 0;
        for (let r = 0; r < runs; r++) {
          let t0 = performance.now();
          groups = catalog.statistics(q).groups.length;
          query.push(performance.now() - t0);
          t0 = performance.now();
          await run(
            process.execPath,
            [path.join(PACKAGE_ROOT, 'bin', 'dockctl.js'), '--config', configFile, 'stats', '--by', by, '--json', ...args],
            {
              maxBuffer: 64 << 20,
            },
          );
          command.push(performance.now() - t0);
        }
        lines.push(
          `  --by ${by.padEnd(7)} ${label.padEnd(11)} ${String(groups).padStart(4)} groups  query ${median(query).toFixed(0).padStart(5)} ms  dockctl ${median(command).toFixed(0).padStart(5)} ms`,
        );
      }
    }
  } finally {
    catalog.close();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
