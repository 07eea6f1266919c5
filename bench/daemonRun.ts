/** One run of the real daemon for bench/daemon.ts: dock volumes, read the times from the daemon's own log lines. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DaemonProcess, type LogLine, makeWorld } from '../test/helpers/daemon.ts';
import type { Mosquitto } from '../test/helpers/mosquitto.ts';
import { waitFor } from '../test/helpers/ports.ts';
import type { TusTestServer } from '../test/helpers/tusServer.ts';

const run = promisify(execFile);
/** dock.concurrency for every run (default: one copy slot per volume, at most 16). */
const concurrency = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : undefined;
/** Milliseconds between one volume docked and the next (default 0: all at once). */
const stagger = Number(process.env.BENCH_STAGGER_MS ?? 0);

export interface Servers {
  broker: Mosquitto;
  tus: TusTestServer;
}

export interface RunOptions {
  /** More config for the daemon (e.g. integrity.algorithms). */
  config?: Record<string, unknown>;
  /**
   * Dock the volumes, wait until they are safe, undock them, then time the second dock (a re-dock of recordings
   * already stored); `sha256sum` of the same files, warm as dockd finds them, is timed just before it.
   */
  redock?: boolean;
}

export interface RunResult {
  /** Seconds from the volumes appearing to the last one safe to undock. */
  secs: number;
  /** The longest a volume waited, from appearing to being announced (`recorder docked`), in seconds. */
  announceSecs: number;
  /** p90 of the time each upload took (tus, its `uploaded` log line) among those that ended during the ingest. */
  uploadP90Ms: number | null;
  /** How many uploads ended during the ingest. */
  uploads: number;
  /** With `redock`: the time `sha256sum` took over the same files just before the re-dock. */
  sha256sum?: { wall: number; cpu: number };
  rssMb: number;
  /** CPU time the daemon used (all its threads, user + system) from the volumes appearing to the last one safe. */
  cpuSecs: number;
}

/** A process's CPU time so far, in seconds (/proc/<pid>/stat utime + stime). */
async function cpuSecs(pid: number): Promise<number> {
  const fields = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const logTime = (l: LogLine) => Date.parse(String(l.time));

/**
 * A pause before every timed copy, dockd's and the baselines' alike (BENCH_SETTLE_S, default 10; 0 for none). On a VM
 * whose balloon reports free memory to the host (free page reporting: `features` bit 5 of the virtio balloon; these
 * machines have it), memory freed in the last seconds is fast to write into again and memory freed earlier is not (the
 * host has taken it back, as far as the timings tell). Without the pause each side ran in whatever state the step before left, and the
 * baselines ran right after a run's files were deleted (1 GiB: `cp` + `sync` 0.68 s then, 1.95 s after 10 s idle).
 */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_S ?? 10) * 1000;
export const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

/**
 * Waits until the daemon is idle (under 10 ms of CPU in 250 ms, at most 10 s): a recorder docks at a station whose
 * daemon has long finished starting (its copy threads among it), not while it compiles.
 */
async function idle(pid: number): Promise<void> {
  const until = Date.now() + 10_000;
  let before = await cpuSecs(pid);
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await cpuSecs(pid);
    if (now - before < 0.01) return;
    before = now;
  }
}

/** Files of `dirs`, for the command-line baselines. */
export async function filesOf(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs)
    for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
      if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

/**
 * A command's time over `files` (e.g. `sha256sum`, `openssl dgst -sm3`), arguments split to fit a command line: wall
 * seconds, and its CPU seconds (user + system: what it needs of one core of its own, whatever else the machine runs).
 */
export async function timeOver(cmd: string, args: string[], files: string[]): Promise<{ wall: number; cpu: number }> {
  const times = path.join(os.tmpdir(), `dockd-bench-time-${process.pid}`);
  await fs.rm(times, { force: true });
  const t0 = performance.now();
  for (let i = 0; i < files.length; i += 500)
    await run('/usr/bin/time', ['-a', '-o', times, '-f', '%U %S', cmd, ...args, ...files.slice(i, i + 500)], {
      maxBuffer: 64 << 20,
      timeout: 3_600_000,
    });
  const wall = (performance.now() - t0) / 1000;
  const cpu = (await fs.readFile(times, 'utf8'))
    .split(/\s+/)
    .filter(Boolean)
    .reduce((n, x) => n + Number(x), 0);
  await fs.rm(times, { force: true });
  return { wall, cpu };
}

/** Docks copies of `sources` at once under a fresh daemon; the times until every one is announced and safe to undock. */
export async function dockAndWait(sources: string[], work: string, servers: Servers, opts: RunOptions = {}): Promise<RunResult> {
  await fs.mkdir(work, { recursive: true });
  const world = await makeWorld(work, {
    tusEndpoint: servers.tus.endpoint,
    mqttUrl: servers.broker.url,
    extra: {
      log: { level: process.env.BENCH_TRACE ? 'debug' : 'info' },
      dock: { mountRoots: [path.join(work, 'dock')], concurrency: concurrency ?? Math.min(16, Math.max(2, sources.length)) },
      ...(opts.config ?? {}),
    },
  });
  const daemon = new DaemonProcess(world.configFile);
  // BENCH_CPU_PROF=<dir>: the daemon writes a V8 CPU profile there when it stops (for the note's profile).
  daemon.start(
    process.env.BENCH_CPU_PROF
      ? {
          wrap: ['sh', '-c', 'n=$1; shift; exec "$n" --cpu-prof --cpu-prof-dir="$PROF" "$@"', 'sh'],
          env: { PROF: process.env.BENCH_CPU_PROF },
        }
      : {},
  );
  await daemon.started();
  // Staged beside the mount root (same filesystem), then renamed in: the volumes appear at once, like mounts.
  const staged: string[] = [];
  for (const [i, s] of sources.entries()) {
    const st = path.join(work, `staging-${i}`);
    await run('cp', ['-r', '--preserve=timestamps', s, st]);
    staged.push(st);
  }
  await run('sync');
  await settle();
  await idle(daemon.proc!.pid!);
  const docked = staged.map((_, i) => path.join(world.mountRoot, `REC${i}`));
  const lines = (msg: string) => daemon.logs.filter((l) => l.msg === msg);
  const dock = async (round: number) => {
    const t0 = Date.now();
    const cpu0 = await cpuSecs(daemon.proc!.pid!);
    const dockedAt: number[] = [];
    if (stagger) {
      for (const [i, st] of staged.entries()) {
        if (i) await new Promise((r) => setTimeout(r, stagger));
        dockedAt[i] = Date.now();
        await fs.rename(st, docked[i]);
      }
    } else {
      await Promise.all(staged.map((st, i) => fs.rename(st, docked[i])));
      dockedAt.push(...docked.map(() => t0));
    }
    const want = sources.length * round;
    await waitFor('every volume safe to undock', () => lines('recorder safe to undock').length >= want, 3_600_000, 50);
    const safeAt = Math.max(
      ...lines('recorder safe to undock')
        .slice(want - sources.length)
        .map(logTime),
    );
    const announced = lines('recorder docked').slice(want - sources.length);
    const lag = docked.map((d, i) => logTime(announced.find((l) => l.volume === d)!) - dockedAt[i]);
    // Uploads finished while the volumes were ingested (dockd uploads what is ready as it copies).
    const during = lines('uploaded')
      .filter((l) => logTime(l) >= t0 && logTime(l) <= safeAt)
      .map((l) => Number(l.ms))
      .sort((a, b) => a - b);
    const uploadP90Ms = during.length ? during[Math.min(during.length - 1, Math.floor(during.length * 0.9))] : null;
    const cpuSecsUsed = (await cpuSecs(daemon.proc!.pid!)) - cpu0;
    if (process.env.BENCH_TRACE) {
      // The daemon's own timeline of this dock (BENCH_TRACE=1), milliseconds from the volumes appearing: for profiling.
      for (const l of daemon.logs.filter((l) => logTime(l) >= t0 && logTime(l) <= safeAt + 50))
        process.stdout.write(`  +${String(logTime(l) - t0).padStart(6)} ms ${l.msg}${l.path ? ` ${l.path}` : ''}\n`);
    }
    return {
      cpuSecs: cpuSecsUsed,
      secs: (safeAt - t0) / 1000,
      announceSecs: Math.max(...lag) / 1000,
      uploadP90Ms,
      uploads: during.length,
    };
  };
  let result = await dock(1);
  let sha256sum: { wall: number; cpu: number } | undefined;
  if (opts.redock) {
    await Promise.all(docked.map((d, i) => fs.rename(d, staged[i])));
    await waitFor('every volume undocked', () => lines('recorder undocked').length >= sources.length, 600_000, 50);
    sha256sum = await timeOver('sha256sum', [], await filesOf(staged));
    result = await dock(2);
  }
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
  return { ...result, sha256sum, rssMb };
}
