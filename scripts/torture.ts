/**
 * `npm run torture [-- --rounds N --clips N --rate MBps --seed S --keep]`: crash torture of dockd against a real tus
 * server (HQ) and a real mosquitto. Volumes of ≥ 20 real clips are docked one after the other; dockd is started and
 * `kill -9`ed N times at random instants while it copies and while it uploads (throttled through a counting proxy),
 * then allowed to finish. It passes when every clip is at HQ exactly once and byte-identical, no catalog row is stuck,
 * `dockctl verify` is clean and nothing partial is left; it prints what it did, the bytes sent again, and the time.
 * Env: TORTURE_ROUNDS, TORTURE_CLIPS, TORTURE_RATE_MBPS, TORTURE_SEED. Exit 0 pass, 1 failure (named), 2 bad usage.
 */
import fs from 'node:fs/promises';
import { tempDir } from '../test/helpers/daemon.ts';
import { finalChecks, type Figures } from './torture/checks.ts';
import { ClipFactory } from './torture/clips.ts';
import { pendingInQueue, TortureRounds, type KillRecord } from './torture/rounds.ts';
import { TortureStation } from './torture/station.ts';

interface Options {
  rounds: number;
  clips: number;
  rateMBps: number;
  seed: number;
  keep: boolean;
}

const USAGE =
  'usage: npm run torture -- [--rounds N (100)] [--clips N per volume, >= 20 (24)] [--rate MB/s to HQ (5)] [--seed S] [--keep]';
const FINISH_TIMEOUT_MS = 5 * 60_000;

function parseOptions(argv: string[]): Options {
  const env = process.env;
  const raw: Record<string, string | undefined> = {
    rounds: env.TORTURE_ROUNDS,
    clips: env.TORTURE_CLIPS,
    rate: env.TORTURE_RATE_MBPS,
    seed: env.TORTURE_SEED,
  };
  // Where each value came from, to name it in an error.
  const from: Record<string, string> = {
    rounds: 'TORTURE_ROUNDS',
    clips: 'TORTURE_CLIPS',
    rate: 'TORTURE_RATE_MBPS',
    seed: 'TORTURE_SEED',
  };
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--keep') {
      keep = true;
      continue;
    }
    const m = /^--(rounds|clips|rate|seed)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`${a} needs a value`);
    raw[m[1]] = value;
    from[m[1]] = `--${m[1]}`;
  }
  const int = (key: string, def: number, min: number): number => {
    const v = raw[key];
    if (v === undefined || v === '') return def;
    if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`${from[key]} ${v}: expected a whole number >= ${min}`);
    return Number(v);
  };
  const rate = raw.rate === undefined || raw.rate === '' ? 5 : Number(raw.rate);
  if (!Number.isFinite(rate) || rate <= 0) throw new Error(`${from.rate} ${raw.rate}: expected MB/s > 0`);
  return {
    rounds: int('rounds', 100, 1),
    clips: int('clips', 24, 20),
    rateMBps: rate,
    seed: int('seed', Math.floor(Math.random() * 2 ** 31), 0),
    keep,
  };
}

/** mulberry32: a small seeded generator, so a run's choices (targets, delays) can be repeated with --seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const say = (line: string) => process.stdout.write(`torture: ${line}\n`);

function describeKill(k: KillRecord, total: number): string {
  const left =
    Object.entries(k.left)
      .filter(([, n]) => n)
      .map(([s, n]) => `${n} ${s === 'tempFiles' ? 'partial copy file(s)' : s}`)
      .join(', ') || 'none';
  const doing =
    k.copying === null
      ? 'doing what it could not say'
      : [k.copying && 'copying', k.uploading && `uploading (${k.uploadsInFlight} in flight)`].filter(Boolean).join(' and ') ||
        'idle';
  return `round ${k.round}/${total} (volume ${k.wave}, aimed at ${k.target}, page up in ${(k.startMs / 1000).toFixed(1)} s): killed after ${(k.delayMs / 1000).toFixed(2)} s while ${doing}; left half-way: ${left}`;
}

function summary(o: Options, kills: KillRecord[], waves: number, f: Figures | null, wallMs: number, failures: string[]): string {
  const copying = kills.filter((k) => k.copying);
  const uploading = kills.filter((k) => k.uploading);
  const aimed = kills.filter((k) => k.target === 'mid-copy');
  const count = (pred: (k: KillRecord) => number) => kills.filter(pred).length;
  const lines = [
    `rounds ${kills.length}/${o.rounds}, seed ${o.seed}, ${waves} volume(s) of ${o.clips} clips, uploads throttled to ${o.rateMBps} MB/s`,
    `kills while copying ${copying.length}, while uploading ${uploading.length} (both ${copying.filter((k) => k.uploading).length}), neither ${kills.filter((k) => k.copying === false && k.uploading === false).length}, state unreadable ${kills.filter((k) => k.copying === null).length}`,
    `kills that left a partial copy on disk ${count((k) => k.left.tempFiles)}, copied clips awaiting verification ${count((k) => k.left.stored)}, an upload half-way ${count((k) => k.left.uploading)}; ` +
      `aimed inside a big clip's copy ${aimed.length}, of which left a partial copy ${aimed.filter((k) => k.left.tempFiles).length}`,
  ];
  if (f) {
    const resent = f.hqBytes - f.clipBytes;
    lines.push(
      `clips ${f.clips}, ${mb(f.clipBytes)}; HQ received ${mb(f.hqBytes)} of upload bodies (${mb(f.wireBytes)} on the wire with headers)`,
      `bytes re-sent ${resent} (${mb(resent)}), ratio ${(f.hqBytes / f.clipBytes).toFixed(4)}; abandoned uploads at HQ ${f.orphans} (${mb(f.orphanBytes)})`,
    );
  }
  lines.push(`wall time ${(wallMs / 60_000).toFixed(1)} min`);
  lines.push(
    failures.length
      ? `FAILED (${failures.length}):\n${failures.map((x) => `  - ${x}`).join('\n')}`
      : 'PASS: every clip at HQ exactly once and byte-identical, no catalog row stuck, dockctl verify clean',
  );
  return lines.map((l) => `torture: ${l}`).join('\n');
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`torture: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const started = Date.now();
  const dir = await tempDir('dockd-torture-');
  say(`${o.rounds} rounds, seed ${o.seed}, work dir ${dir}`);
  const clips = new ClipFactory(o.clips);
  say('making the base clips with ffmpeg (cached under .cache/fixtures)');
  await clips.prepare();
  const station = await TortureStation.open(dir, o.rateMBps * 1e6);
  const rounds = new TortureRounds(station, clips, seeded(o.seed), say);
  const failures: string[] = [];
  let figures: Figures | null = null;
  const interrupted = () => {
    void station.close().then(() => {
      say(`interrupted; work dir kept: ${dir}`);
      process.exit(130);
    });
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    for (let n = 1; n <= o.rounds; n++) say(describeKill(await rounds.round(n), o.rounds));

    say('letting dockd finish (link no longer throttled)');
    station.proxy.setRate(Infinity);
    await station.startDaemon();
    const last = rounds.current!;
    let queue = '';
    await rounds
      .until(
        'nothing left to copy or upload',
        (s) => {
          queue = Object.entries(s.queue)
            .filter(([, n]) => n)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ');
          return (
            pendingInQueue(s) === 0 &&
            !s.recorders.some((r) => r.state === 'copying' || r.state === 'identifying') &&
            last.safeSeen
          );
        },
        FINISH_TIMEOUT_MS,
      )
      .catch((e: Error) => {
        failures.push(`dockd did not finish: ${e.message} (queue: ${queue})`);
      });
    const code = await station.stopDaemon().catch((e: Error) => {
      failures.push(e.message);
      return null;
    });
    await station.saveLogs('finish');
    if (code !== 0) failures.push(`dockd's clean stop (SIGTERM) exited ${code}`);
    const checked = await finalChecks(station, rounds.waves);
    failures.push(...checked.failures);
    figures = checked.figures;
  } catch (e) {
    const round = rounds.kills.length + 1;
    failures.push(`${round <= o.rounds ? `round ${round}` : 'finish'}: ${(e as Error).message}`);
    await station
      .saveLogs(round <= o.rounds ? `round-${String(round).padStart(3, '0')}-failed` : 'finish-failed')
      .catch(() => {});
  } finally {
    await station.close();
  }
  process.stdout.write(`${summary(o, rounds.kills, rounds.waves.length, figures, Date.now() - started, failures)}\n`);
  if (failures.length || o.keep) say(`work dir kept (store, HQ, dockd logs per round under logs/): ${dir}`);
  else await fs.rm(dir, { recursive: true, force: true });
  return failures.length ? 1 : 0;
}

// Exit even if a socket of a killed dockd lingers somewhere.
process.exit(await main());
