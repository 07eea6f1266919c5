/**
 * `npm run bench` (second part): time to safe to undock through the real daemon — from a volume appearing under the
 * mount root to dockd's own "recorder safe to undock" log line — against `cp -r` + `sync` of the same volume(s), in the
 * same run. The daemon runs with a real tus server and MQTT broker (it uploads while it copies, as at a station).
 * Scenarios: (a) one clip of BENCH_SIZE_MB (default 1024); (b) 200 clips of 1–2 MB, 50 photos, 20 sound files;
 * (c) BENCH_BAYS (default "8") such volumes docked at once. BENCH_RUNS (default 3) runs each, median printed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';
import { DaemonProcess, makeWorld } from '../test/helpers/daemon.ts';
import { Mosquitto } from '../test/helpers/mosquitto.ts';
import { waitFor } from '../test/helpers/ports.ts';
import { TusTestServer } from '../test/helpers/tusServer.ts';
import { bigVolume, shiftVolume } from './volumes.ts';

const run = promisify(execFile);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const bays = (process.env.BENCH_BAYS ?? '8')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const root = process.env.BENCH_DIR ?? path.join(PACKAGE_ROOT, '.cache', 'bench-daemon');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  return n;
}

/** `cp -r` of every volume at once, then `sync`: the same bytes, made durable, with nothing else. */
async function cpSync(sources: string[], work: string): Promise<number> {
  await fs.mkdir(work, { recursive: true });
  const t0 = performance.now();
  await Promise.all(sources.map((s, i) => run('cp', ['-r', s, path.join(work, `cp-${i}`)])));
  await run('sync');
  const secs = (performance.now() - t0) / 1000;
  await fs.rm(work, { recursive: true, force: true });
  return secs;
}

/** Docks copies of `sources` at once under a fresh daemon; seconds until every one is safe to undock, and peak RSS. */
async function dockd(
  sources: string[],
  work: string,
  servers: { broker: Mosquitto; tus: TusTestServer },
): Promise<{ secs: number; rssMb: number }> {
  await fs.mkdir(work, { recursive: true });
  const world = await makeWorld(work, {
    tusEndpoint: servers.tus.endpoint,
    mqttUrl: servers.broker.url,
    extra: {
      log: { level: 'info' },
      dock: { mountRoots: [path.join(work, 'dock')], concurrency: Math.min(16, Math.max(2, sources.length)) },
    },
  });
  const daemon = new DaemonProcess(world.configFile);
  daemon.start();
  await daemon.started();
  // Staged beside the mount root (same filesystem), then renamed in: the volumes appear at once, like mounts.
  const staged: string[] = [];
  for (const [i, s] of sources.entries()) {
    const st = path.join(work, `staging-${i}`);
    await run('cp', ['-r', '--preserve=timestamps', s, st]);
    staged.push(st);
  }
  await run('sync');
  const t0 = Date.now();
  await Promise.all(staged.map((st, i) => fs.rename(st, path.join(world.mountRoot, `REC${i}`))));
  const safe = () => daemon.logs.filter((l) => l.msg === 'recorder safe to undock');
  await waitFor('every volume safe to undock', () => safe().length >= sources.length, 3_600_000, 50);
  const secs = (Math.max(...safe().map((l) => Date.parse(String(l.time)))) - t0) / 1000;
  const status = await fs.readFile(`/proc/${daemon.proc!.pid}/status`, 'utf8');
  const rssMb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  await daemon.stop(60_000).catch((e) => {
    process.stdout.write(
      `${daemon.logs
        .slice(-15)
        .map((l) => JSON.stringify(l))
        .join('\n')}\n`,
    );
    throw e;
  });
  await fs.rm(work, { recursive: true, force: true });
  return { secs, rssMb };
}

async function main(): Promise<void> {
  await fs.rm(root, { recursive: true, force: true });
  await fs.mkdir(root, { recursive: true });
  const broker = new Mosquitto(path.join(root, 'mosquitto'));
  await broker.start();
  const tus = new TusTestServer(path.join(root, 'hq'));
  await tus.start();
  const srcA = path.join(root, 'src-a');
  const srcB = path.join(root, 'src-b');
  await bigVolume(srcA, sizeMb);
  await shiftVolume(srcB);
  const scenarios: { name: string; sources: string[] }[] = [
    { name: `(a) one ${sizeMb} MiB clip`, sources: [srcA] },
    { name: '(b) 200 clips + 50 photos + 20 sound files', sources: [srcB] },
    ...bays.map((n) => ({ name: `(c) ${n} volumes like (b) at once`, sources: Array.from({ length: n }, () => srcB) })),
  ];
  const lines: string[] = [];
  try {
    for (const sc of scenarios) {
      const bytes = (await Promise.all(sc.sources.map(dirBytes))).reduce((a, b) => a + b, 0);
      const cp: number[] = [];
      const ours: number[] = [];
      let rss = 0;
      for (let i = 0; i < runs; i++) {
        cp.push(await cpSync(sc.sources, path.join(root, 'cp')));
        const r = await dockd(sc.sources, path.join(root, 'run'), { broker, tus });
        ours.push(r.secs);
        rss = Math.max(rss, r.rssMb);
        process.stdout.write(
          `${sc.name} run ${i + 1}: cp -r + sync ${cp[i].toFixed(2)} s, dockd to safe ${r.secs.toFixed(2)} s (×${(cp[i] / r.secs).toFixed(2)}), peak RSS ${r.rssMb.toFixed(0)} MB\n`,
        );
      }
      const c = median(cp);
      const o = median(ours);
      lines.push(
        `${sc.name.padEnd(46)} ${(bytes / 1048576).toFixed(0).padStart(6)} MiB  cp -r + sync ${c.toFixed(2).padStart(6)} s  dockd ${o.toFixed(2).padStart(6)} s  ×${(c / o).toFixed(2)} (target ≥ ×0.91, i.e. ≤ ×1.1 the time)  peak RSS ${rss.toFixed(0)} MB`,
      );
    }
  } finally {
    await tus.stop();
    await broker.stop();
  }
  process.stdout.write(
    `\ntime to safe to undock through the real daemon, median of ${runs} (ratio = cp -r + sync time / dockd time):\n${lines.join('\n')}\n`,
  );
  await fs.rm(root, { recursive: true, force: true });
}

await main();
