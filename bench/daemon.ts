/**
 * `npm run bench` (second part): time to safe to undock through the real daemon — from a volume appearing under the
 * mount root to dockd's own "recorder safe to undock" log line — against the command-line tools doing the same work
 * in the same run. The daemon runs with a real tus server and MQTT broker (it uploads while it copies, as at a station).
 * Scenarios (BENCH_SCENARIOS, default "a,b,c,cl,sm3,redock"):
 *   a       one clip of BENCH_SIZE_MB (default 1024), against `cp -r` + `sync`, and against the copy-and-hash floor
 *           (`cp -r` beside `openssl dgst -sha256` on every core, then `sync`: see copyAndHashFloor), as are b and c;
 *   b       200 clips of 1–2 MB, 50 photos, 20 sound files, against `cp -r` + `sync`;
 *   c       BENCH_BAYS (default "8", a list: "8,32") volumes like (b), each of another recorder with content of its
 *           own, docked at once, against `cp -r` + `sync` of all (BENCH_SAME_VOLUMES=1: (b)'s volume in every bay);
 *   cl      BENCH_BAYS volumes of one clip of BENCH_LARGE_MB (default 256) each, every clip of its own, docked at
 *           once, against `cp -r` + `sync` of all: as many large copies at once as dock.concurrency lets run (peak RSS);
 *           clsm3: the same with integrity.algorithms [sha256, sm3], against the slower of that and `openssl dgst -sm3`
 *           (not in the default list);
 *   sm3     (a) and (b) with integrity.algorithms [sha256, sm3], against the slower of `cp -r` + `sync` and
 *           `openssl dgst -sm3` of the same files (one core); sm3a, sm3b: one of the two;
 *   redock  (b) docked again once it is stored, against `sha256sum` of the same files.
 * BENCH_CONCURRENCY sets dock.concurrency (default: one slot per volume, at most 16); BENCH_STAGGER_MS docks the
 * volumes one after another, that far apart (time to safe then counts from the first).
 * BENCH_SETTLE_S (default 10) pauses before dockd's dock and before each baseline alike (see settle in daemonRun.ts).
 * BENCH_RUNS (default 3) runs each, median printed; each line also shows the longest a volume waited to be announced
 * (`recorder docked`), the p90 of the uploads that ended during the ingest (an upload of a small file should not
 * starve while recorders copy), the peak RSS and the load average.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';
import { TusTestServer } from '../test/helpers/tusServer.ts';
import { dockAndWait, filesOf, type RunOptions, type RunResult, type Servers, settle, timeOver } from './daemonRun.ts';
import { bigVolume, shiftVolume } from './volumes.ts';

const run = promisify(execFile);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const largeMb = Number(process.env.BENCH_LARGE_MB ?? 256);
const list = (s: string) => s.split(',').map((x) => x.trim());
const bays = list(process.env.BENCH_BAYS ?? '8')
  .map(Number)
  .filter((n) => n > 0);
const chosen = new Set(list(process.env.BENCH_SCENARIOS ?? 'a,b,c,cl,sm3,redock'));
const root = process.env.BENCH_DIR ?? path.join(PACKAGE_ROOT, '.cache', 'bench-daemon');
const SM3 = { integrity: { algorithms: ['sha256', 'sm3'] } };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () => os.loadavg()[0].toFixed(1);

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await filesOf([dir])) n += (await fs.stat(f)).size;
  return n;
}

/**
 * `cp -r` of every volume at once, then `sync`: the same bytes, made durable, with nothing else. `alongside` runs
 * beside the copies and is timed with them (the copy-and-hash floor).
 */
async function cpSync(sources: string[], work: string, alongside: (() => Promise<unknown>)[] = []): Promise<number> {
  await fs.mkdir(work, { recursive: true });
  const t0 = performance.now();
  await Promise.all([...sources.map((s, i) => run('cp', ['-r', s, path.join(work, `cp-${i}`)])), ...alongside.map((f) => f())]);
  await run('sync');
  const secs = (performance.now() - t0) / 1000;
  await fs.rm(work, { recursive: true, force: true });
  return secs;
}

/**
 * The floor for copying and hashing with the fastest tools on the machine: `cp -r` of every volume while
 * `openssl dgst -sha256` (SHA-NI where the CPU has it) hashes the same files in one process per core, then `sync`.
 * dockd has to do both (the hash is the proof), so where hashing costs as much as copying, this, not `cp` alone, is the
 * least time it can take; dockd's ratio against it shows what is its own overhead.
 */
async function copyAndHashFloor(sources: string[], work: string): Promise<number> {
  const files = await filesOf(sources);
  const cores = os.availableParallelism();
  const lanes = Array.from({ length: cores }, (_, i) => files.filter((_, j) => j % cores === i));
  const hashLane = async (lane: string[]) => {
    for (let i = 0; i < lane.length; i += 500)
      await run('openssl', ['dgst', '-sha256', ...lane.slice(i, i + 500)], { maxBuffer: 64 << 20 });
  };
  return cpSync(
    sources,
    work,
    lanes.map((lane) => () => hashLane(lane)),
  );
}

interface Scenario {
  name: string;
  sources: string[];
  /** What dockd is measured against. */
  baseline: 'cp -r + sync' | 'max(cp -r + sync, openssl sm3)' | 'sha256sum';
  options?: RunOptions;
}

/**
 * The baseline's wall time for one run (`sha256sum` comes from the run itself: it is timed just before the re-dock),
 * and a note with the tool's CPU time (its time on one core of its own: the machine is shared).
 */
async function baselineSecs(
  sc: Scenario,
  sha256sum: RunResult['sha256sum'],
): Promise<{ secs: number; floor?: number; note: string }> {
  if (sc.baseline === 'sha256sum') return { secs: sha256sum!.wall, note: ` (CPU ${sha256sum!.cpu.toFixed(2)} s)` };
  await settle();
  const cp = await cpSync(sc.sources, path.join(root, 'cp'));
  if (sc.baseline === 'cp -r + sync') {
    await settle();
    const floor = await copyAndHashFloor(sc.sources, path.join(root, 'floor'));
    return { secs: cp, floor, note: '' };
  }
  const sm3 = await timeOver('openssl', ['dgst', '-sm3'], await filesOf(sc.sources));
  return {
    secs: Math.max(cp, sm3.wall),
    note: ` (cp -r + sync ${cp.toFixed(2)} s, openssl sm3 ${sm3.wall.toFixed(2)} s, CPU ${sm3.cpu.toFixed(2)} s)`,
  };
}

async function main(): Promise<void> {
  await fs.rm(root, { recursive: true, force: true });
  await fs.mkdir(root, { recursive: true });
  const broker = new Mosquitto(path.join(root, 'mosquitto'));
  await broker.start();
  const tus = new TusTestServer(path.join(root, 'hq'));
  await tus.start();
  const servers: Servers = { broker, tus };
  const srcA = path.join(root, 'src-a');
  const srcB = path.join(root, 'src-b');
  if (chosen.has('a') || chosen.has('sm3') || chosen.has('sm3a')) await bigVolume(srcA, sizeMb);
  await shiftVolume(srcB);
  // (c): the other bays' recorders, each with a day of its own (BENCH_SAME_VOLUMES=1: srcB in every bay, as the
  // bench did before December 2026: then all but one bay's recordings are duplicates of the first's).
  const sameVolumes = process.env.BENCH_SAME_VOLUMES === '1';
  const bayVolumes: string[] = [srcB];
  if (chosen.has('c') && !sameVolumes)
    for (let i = 1; i < Math.max(0, ...bays); i++) {
      bayVolumes.push(path.join(root, `src-c${i}`));
      await shiftVolume(bayVolumes[i], i);
    }
  const largeVolumes: string[] = [];
  if (chosen.has('cl') || chosen.has('clsm3'))
    for (let i = 0; i < Math.max(0, ...bays); i++) {
      largeVolumes.push(path.join(root, `src-cl${i}`));
      await bigVolume(largeVolumes[i], largeMb, i + 1);
    }
  const B = '200 clips + 50 photos + 20 sound files';
  const scenarios: Scenario[] = [
    ...(chosen.has('a') ? [{ name: `(a) one ${sizeMb} MiB clip`, sources: [srcA], baseline: 'cp -r + sync' as const }] : []),
    ...(chosen.has('b') ? [{ name: `(b) ${B}`, sources: [srcB], baseline: 'cp -r + sync' as const }] : []),
    ...(chosen.has('c')
      ? bays.map((n) => ({
          name: `(c) ${n} volumes like (b) at once`,
          sources: sameVolumes ? Array.from({ length: n }, () => srcB) : bayVolumes.slice(0, n),
          baseline: 'cp -r + sync' as const,
        }))
      : []),
    ...(chosen.has('cl')
      ? bays.map((n) => ({
          name: `(c) ${n} volumes of one ${largeMb} MiB clip`,
          sources: largeVolumes.slice(0, n),
          baseline: 'cp -r + sync' as const,
        }))
      : []),
    ...(chosen.has('clsm3')
      ? bays.map((n) => ({
          name: `(c) ${n} volumes of one ${largeMb} MiB clip, SM3 too`,
          sources: largeVolumes.slice(0, n),
          baseline: 'max(cp -r + sync, openssl sm3)' as const,
          options: { config: SM3 },
        }))
      : []),
    ...(chosen.has('sm3') || chosen.has('sm3a')
      ? [
          {
            name: `(sm3) (a) with SM3 too`,
            sources: [srcA],
            baseline: 'max(cp -r + sync, openssl sm3)' as const,
            options: { config: SM3 },
          },
        ]
      : []),
    ...(chosen.has('sm3') || chosen.has('sm3b')
      ? [
          {
            name: `(sm3) (b) with SM3 too`,
            sources: [srcB],
            baseline: 'max(cp -r + sync, openssl sm3)' as const,
            options: { config: SM3 },
          },
        ]
      : []),
    ...(chosen.has('redock')
      ? [{ name: '(redock) (b) docked again', sources: [srcB], baseline: 'sha256sum' as const, options: { redock: true } }]
      : []),
  ];
  const lines: string[] = [];
  try {
    for (const sc of scenarios) {
      const bytes = (await Promise.all(sc.sources.map(dirBytes))).reduce((a, b) => a + b, 0);
      const base: number[] = [];
      const ours: number[] = [];
      const floors: number[] = [];
      const loads: string[] = [];
      let rss = 0;
      let announce = 0;
      for (let i = 0; i < runs; i++) {
        const r = await dockAndWait(sc.sources, path.join(root, 'run'), servers, sc.options);
        const baseline = await baselineSecs(sc, r.sha256sum);
        base.push(baseline.secs);
        ours.push(r.secs);
        loads.push(load());
        rss = Math.max(rss, r.rssMb);
        announce = Math.max(announce, r.announceSecs);
        if (baseline.floor !== undefined) floors.push(baseline.floor);
        const floorNote =
          baseline.floor === undefined
            ? ''
            : `, copy-and-hash floor ${baseline.floor.toFixed(2)} s (×${(baseline.floor / r.secs).toFixed(2)})`;
        process.stdout.write(
          `${sc.name} run ${i + 1}: ${sc.baseline} ${base[i].toFixed(2)} s${baseline.note}, dockd to safe ${r.secs.toFixed(2)} s (×${(base[i] / r.secs).toFixed(2)})${floorNote}, longest wait to be announced ${r.announceSecs.toFixed(2)} s, upload p90 ${r.uploadP90Ms ?? '-'} ms (${r.uploads} uploads during the ingest), daemon CPU ${r.cpuSecs.toFixed(2)} s, peak RSS ${r.rssMb.toFixed(0)} MB, load ${loads[i]}\n`,
        );
      }
      const b = median(base);
      const o = median(ours);
      const floor = floors.length ? `  floor ${median(floors).toFixed(2)} s ×${(median(floors) / o).toFixed(2)}` : '';
      lines.push(
        `${sc.name.padEnd(42)} ${(bytes / 1048576).toFixed(0).padStart(6)} MiB  ${sc.baseline} ${b.toFixed(2)} s  dockd ${o.toFixed(2)} s  ×${(b / o).toFixed(2)}${floor}  announced ≤ ${announce.toFixed(2)} s  peak RSS ${rss.toFixed(0)} MB  load ${loads.join('/')}`,
      );
    }
  } finally {
    await tus.stop();
    await broker.stop();
  }
  process.stdout.write(
    `\ntime to safe to undock through the real daemon, median of ${runs} (ratio = baseline time / dockd time; target ≥ ×0.91 for cp, ≥ ×0.9 for SM3 and re-dock; floor = cp -r beside openssl sha256 on every core, then sync):\n${lines.join('\n')}\n`,
  );
  await fs.rm(root, { recursive: true, force: true });
}

await main();
