/**
 * `npx tsx bench/catalogScale.ts [--rows N] [--runs R] [--dir DIR]` (also the third part of `npm run bench`): a busy
 * station's year. Builds a catalog of N recordings (default 1,000,000) with their history, sightings and ≈ 4 audit
 * entries each (a valid hash chain) straight into SQLite, on the schema the store's own migrations make; then starts the
 * real daemon on it (with a real tus server and MQTT broker) and prints the time to start, `dockctl status`,
 * `GET /api/state`, `GET /api/files?limit=100`, `dockctl files --limit 100`, `dockctl stats` (median of R runs) and the
 * daemon's RSS once started; `dockctl status` also on an empty catalog, both interleaved with `node -e 0` (Node's own
 * start, the part of any command no code of ours can save). Issue 14's goals: start ≤ 2 s whatever the history, status
 * and /api/state ≤ 100 ms, status on a small catalog ≤ 150 ms, memory flat in the catalog's size. The catalog is kept
 * in DIR (default .cache/bench-catalog-N) for the next run. It runs on the Node that runs it: `npm run bench` runs it
 * on the machine's Node, then on the station's (Node 24, `bash .ci/node-lts --exec npx tsx bench/catalogScale.ts`).
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';
import { canonicalJson, entryHash, GENESIS } from '../daemon/store/audit.ts';
import { Catalog } from '../daemon/store/catalog.ts';
import { DaemonProcess, DOCKCTL_BIN, makeWorld } from '../test/helpers/daemon.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';
import { TusTestServer } from '../test/helpers/tusServer.ts';
import { login } from '../test/http/client.ts';
import { addUser } from '../test/http/stationUsers.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '5' }, dir: { type: 'string' } },
});
const rows = Number(values.rows);
const runs = Number(values.runs);
const dir = values.dir ?? path.join(PACKAGE_ROOT, '.cache', `bench-catalog-${rows}`);
const storeDir = path.join(dir, 'store');
const HOUR = 3600_000;
const END = Date.parse('2026-12-01T00:00:00Z');
const PASSWORD = 'bench-catalog-scale-password';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => `${x.toFixed(0)} ms`;

/** Rows of the catalog, or 0 when there is none (or it is not one of ours). */
function filesIn(file: string): number {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare(`SELECT COUNT(*) n FROM files`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

/**
 * The history of N recordings, each docked, copied, verified, uploaded and archived long ago (HQ holds it and
 * retention freed the station's copy), except the last 0.1 %, which wait for annotation: what `dockctl status` lists.
 */
function build(): void {
  const file = path.join(storeDir, 'catalog.sqlite');
  Catalog.open(storeDir).close(); // the schema, by the store's own migrations
  const db = new Database(file);
  // A scratch build: no journal on disk, and the indexes made once at the end (much faster than kept up row by row).
  db.pragma('journal_mode = MEMORY'); // OFF is refused in better-sqlite3's defensive mode
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  const indexes = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`).all() as {
    name: string;
    sql: string;
  }[];
  for (const i of indexes) db.exec(`DROP INDEX ${i.name}`);
  const t0 = performance.now();
  const ins = {
    session: db.prepare(`INSERT INTO sessions (id, volume, device_serial, officer_id, docked_at, undocked_at, result,
      files_found, files_copied, files_known, skipped) VALUES (?, ?, ?, ?, ?, ?, 'done', 20, 20, 0, 0)`),
    file: db.prepare(`INSERT INTO files (id, sha256, size, state, kind, filename, source_path, device_serial, officer_id,
      captured_at, captured_at_source, collector, case_no, purpose, place, important, reason, duration, session_id,
      created_at, updated_at, uploaded_at, receipt_at, archived_at, local_deleted_at, announced_at, integrity, late)
      VALUES (?, ?, ?, ?, 'video', ?, ?, ?, ?, ?, 'file-name', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?)`),
    sighting: db.prepare(`INSERT INTO sightings (file_id, session_id, device_serial, source_path, source_size,
      source_mtime_ms, copied, seen_at, volume) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`),
    history: db.prepare(`INSERT INTO history (file_id, at, from_state, to_state, detail) VALUES (?, ?, ?, ?, NULL)`),
    audit: db.prepare(`INSERT INTO audit (seq, at, type, subject, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`),
  };
  let seq = 0;
  let prev = GENESIS;
  const audit = (at: string, type: string, subject: string, data: Record<string, unknown>) => {
    const base = { seq: ++seq, at, type, subject, data: canonicalJson({ ...data, at, type }), prev_hash: prev };
    prev = entryHash(base);
    ins.audit.run(base.seq, at, type, subject, base.data, base.prev_hash, prev);
  };
  const held = rows - Math.max(1, Math.floor(rows / 1000));
  const BATCH = 50_000;
  for (let from = 0; from < rows; from += BATCH) {
    db.transaction(() => {
      for (let i = from; i < Math.min(rows, from + BATCH); i++) {
        const id = i + 1;
        const sessionId = Math.floor(i / 20) + 1;
        const who = sessionId % 50;
        const officer = String(100000 + who);
        const serial = `D${String(who).padStart(6, '0')}`;
        const docked = END - ((rows - i) / rows) * 365 * 24 * HOUR;
        const dockedAt = new Date(docked).toISOString();
        if (i % 20 === 0)
          ins.session.run(sessionId, `vol-${sessionId}`, serial, officer, dockedAt, new Date(docked + HOUR).toISOString());
        const sha256 = createHash('sha256').update(String(i)).digest('hex');
        const size = 20_000_000 + (i % 1000) * 10_000;
        const captured = new Date(docked - (1 + (i % 7)) * HOUR + 8 * HOUR).toISOString().slice(0, 19);
        const name = `${officer}_${serial}_${captured.replace(/\D/g, '')}_${String(i % 10000).padStart(4, '0')}.mp4`;
        const archived = i < held;
        const at = (h: number) => new Date(docked + h * HOUR).toISOString();
        ins.file.run(
          id,
          sha256,
          size,
          archived ? 'archived' : 'needs-annotation',
          name,
          `DCIM/100MEDIA/${name}`,
          serial,
          officer,
          `${captured}+08:00`,
          archived ? `officer ${officer}` : null,
          archived ? `A${String(id % 99991).padStart(8, '0')}` : null,
          archived ? 'traffic stop' : null,
          archived ? 'Road 1' : null,
          i % 13 === 0 ? 1 : 0,
          archived ? null : 'missing: caseNo, purpose',
          60 + (i % 600),
          sessionId,
          dockedAt,
          archived ? at(30 * 24) : dockedAt,
          archived ? at(2) : null,
          archived ? at(3) : null,
          archived ? at(3) : null,
          archived ? at(30 * 24) : null,
          archived ? at(2) : null,
          0,
        );
        ins.sighting.run(id, sessionId, serial, `DCIM/100MEDIA/${name}`, size, docked - HOUR, dockedAt, `vol-${sessionId}`);
        ins.history.run(id, dockedAt, null, 'copying');
        ins.history.run(id, dockedAt, 'copying', 'stored');
        ins.history.run(id, dockedAt, 'stored', archived ? 'ready' : 'needs-annotation');
        audit(dockedAt, 'file.ingested', sha256, { id, filename: name, size });
        if (archived) {
          ins.history.run(id, at(1), 'ready', 'uploading');
          ins.history.run(id, at(2), 'uploading', 'uploaded');
          ins.history.run(id, at(3), 'uploaded', 'archived');
          audit(at(2), 'file.uploaded', sha256, { id });
          audit(at(3), 'file.archived', sha256, { id });
          audit(at(30 * 24), 'object.deleted', sha256, { id, where: 'station store', why: 'retention' });
        } else audit(dockedAt, 'file.needs-annotation', sha256, { id, missing: ['caseNo', 'purpose'] });
      }
    })();
  }
  for (const i of indexes) db.exec(i.sql);
  db.pragma('journal_mode = WAL');
  db.close();
  process.stdout.write(
    `built a catalog of ${rows.toLocaleString('en')} recordings and ${seq.toLocaleString('en')} audit entries in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** CPU milliseconds (user + system) of each command timed by timedCpu: on a shared machine, steadier than its wall time. */
const commandCpu: number[] = [];

async function dockctl(configFile: string, args: string[]): Promise<void> {
  await timedCpu([process.execPath, DOCKCTL_BIN, '--config', configFile, ...args]);
}

/** Runs a command under /usr/bin/time and adds its CPU milliseconds to commandCpu. */
async function timedCpu(command: string[]): Promise<void> {
  const timeFile = path.join(dir, 'command.time');
  await run('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', ...command], { maxBuffer: 64 << 20 });
  const [user, sys] = (await fs.readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number);
  commandCpu.push((user + sys) * 1000);
}

/** CPU milliseconds a process has used so far (/proc/PID/stat utime + stime, in clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const f = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function get(base: string, route: string, cookie: string): Promise<void> {
  const r = await fetch(new URL(route, base), { headers: { cookie } });
  if (r.status !== 200) throw new Error(`GET ${route}: HTTP ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

async function main(): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const catalogFile = path.join(storeDir, 'catalog.sqlite');
  const found = filesIn(catalogFile);
  if (found !== rows) {
    await fs.rm(storeDir, { recursive: true, force: true });
    build();
  } else {
    const t0 = performance.now();
    Catalog.open(storeDir).close(); // a catalog of an older schema is migrated here, not in the start timed below
    process.stdout.write(
      `catalog of ${rows.toLocaleString('en')} recordings kept from the last run (${dir}; opened in ${ms(performance.now() - t0)})\n`,
    );
  }
  const sizeMb = (await fs.stat(catalogFile)).size / 1048576;

  const broker = new Mosquitto(path.join(dir, 'mosquitto'));
  await broker.start();
  const tus = new TusTestServer(path.join(dir, 'hq'));
  await tus.start();
  const world = await makeWorld(path.join(dir, 'world'), {
    tusEndpoint: tus.endpoint,
    mqttUrl: broker.url,
    extra: { log: { level: 'info' }, storage: { dir: storeDir }, station: { id: 'bench', timeZone: 'Asia/Shanghai' } },
  });
  const lines: string[] = [];
  const say = (what: string, v: string) => lines.push(`  ${what.padEnd(34)} ${v}`);
  const daemon = new DaemonProcess(world.configFile);
  try {
    await addUser(world.configFile, 'bench', 'admin', PASSWORD).catch(() => undefined); // kept from the last run
    const t0 = Date.now();
    daemon.start();
    await daemon.waitForLog((l) => l.msg === 'dockd started', 'dockd to start', 600_000);
    const startMs = Date.parse(String(daemon.logs.find((l) => l.msg === 'dockd started')!.time)) - t0;
    const startCpu = await cpuMs(daemon.proc!.pid!);
    const rss = async () => {
      const s = await fs.readFile(`/proc/${daemon.proc!.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
    };
    const rssStarted = await rss();
    const page = String(daemon.logs.find((l) => l.msg === 'station page listening')?.url);
    const cookie = await login(page, 'bench', PASSWORD);
    // Issue 14's `dockctl status` goals (≤ 100 ms here, ≤ 150 ms on a small catalog) next to Node's own start on this
    // machine, interleaved run by run: a slow host slows all three alike.
    const smallStore = path.join(dir, 'small-store');
    await fs.rm(smallStore, { recursive: true, force: true });
    Catalog.open(smallStore).close();
    const small = await makeWorld(path.join(dir, 'world-small'), {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { storage: { dir: smallStore }, station: { id: 'bench-small' } },
    });
    const startUps: [string, string[]][] = [
      ["node -e 0 (Node's own start)", [process.execPath, '-e', '0']],
      ['dockctl status', [process.execPath, DOCKCTL_BIN, '--config', world.configFile, 'status']],
      ['dockctl status, empty catalog', [process.execPath, DOCKCTL_BIN, '--config', small.configFile, 'status']],
    ];
    const timer = path.join(PACKAGE_ROOT, 'bench', 'commandTimes.mjs');
    const rounds = String(Math.max(runs, 10));
    const { stdout } = await run(process.execPath, [timer, rounds, JSON.stringify(startUps.map(([, argv]) => argv))]);
    const startUpTimes = JSON.parse(stdout) as { wall: number[][]; cpu: number[][] };
    const nodeWall = median(startUpTimes.wall[0]);
    for (const [k, [what]] of startUps.entries()) {
      const [wall, cpu] = [startUpTimes.wall[k], startUpTimes.cpu[k]];
      const above = k ? `, ${ms(median(wall) - nodeWall)} above node -e 0` : '';
      say(what, `${ms(median(wall))}, ${ms(median(cpu))} CPU (median of ${wall.length}, interleaved${above})`);
    }
    const measures: [string, () => Promise<unknown>][] = [
      ['GET /api/state', () => get(page, '/api/state', cookie)],
      ['GET /api/files?limit=100', () => get(page, '/api/files?limit=100', cookie)],
      ['dockctl files --limit 100', () => dockctl(world.configFile, ['files', '--limit', '100'])],
      ['dockctl stats (whole catalog)', () => dockctl(world.configFile, ['stats'])],
    ];
    say('start (spawn to "dockd started")', `${ms(startMs)} wall, ${ms(startCpu)} CPU (all of it, Node's own start included)`);
    for (const [what, fn] of measures) {
      const times: number[] = [];
      commandCpu.length = 0;
      for (let i = 0; i < runs; i++) times.push(await timed(fn));
      const cpu = commandCpu.length ? `, ${ms(median(commandCpu))} CPU` : '';
      say(what, `${ms(median(times))}${cpu} (median of ${runs}; wall ${times.map((t) => t.toFixed(0)).join(', ')})`);
    }
    say('daemon RSS once started', `${rssStarted.toFixed(0)} MB (after the requests: ${(await rss()).toFixed(0)} MB)`);
  } finally {
    await daemon.stop(120_000).catch(() => daemon.kill9());
    await tus.stop();
    await broker.stop();
  }
  process.stdout.write(
    `\na catalog of ${rows.toLocaleString('en')} recordings (${sizeMb.toFixed(0)} MiB) under the real daemon on Node ${process.versions.node}` +
      ` (goals: start ≤ 2 s, status and /api/state ≤ 100 ms, status on a small catalog ≤ 150 ms, memory flat):\n${lines.join('\n')}\n`,
  );
}

await main();
