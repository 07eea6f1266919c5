/**
 * `npm run bench`: dockd's copy-and-hash ingest of a large valid MP4 against `cp` of the same file, `cp` + fsync, and
 * `cp` + `sha256sum`, all on the same filesystem in the same run; prints throughput and ratios (median of N runs).
 * Also measures the ingest with SM3 too (integrity.algorithms [sha256, sm3]: hashed on a worker thread beside the copy)
 * and its cost relative to the SHA-256-only ingest.
 * BENCH_SIZE_MB (default 1024) sets the clip size, BENCH_RUNS (default 3) the repetitions, BENCH_DIR the directory.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';
import { copyAndHash } from '../daemon/recorder/copyAndHash.ts';
import { createFfmpegTools } from '../daemon/media/ffprobe.ts';
import { ObjectStore } from '../daemon/store/objects.ts';
import { largeClip } from './largeClip.ts';

const run = promisify(execFile);
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const dir = process.env.BENCH_DIR ?? path.join(PACKAGE_ROOT, '.cache', 'bench');

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const clip = await largeClip(sizeMb);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  // The source lives on the same filesystem as the destinations.
  const src = path.join(dir, 'source.mp4');
  await fs.copyFile(clip, src);
  const size = (await fs.stat(src)).size;
  await run('cat', [src], { maxBuffer: 1 }).catch(() => {}); // cat output overflows maxBuffer on purpose: we only warm the page cache
  await run('sha256sum', [src], { timeout: 600_000 });
  const store = new ObjectStore(path.join(dir, 'store'));
  await store.init();

  const INGEST = 'dockd ingest (copy + SHA-256 + fsync)';
  const INGEST_SM3 = 'dockd ingest + SM3 (worker thread) + fsync';
  const results: Record<string, number[]> = { cp: [], 'cp + fsync': [], 'cp + sha256sum': [], [INGEST]: [], [INGEST_SM3]: [] };
  for (let i = 0; i < runs; i++) {
    const dst = path.join(dir, `cp-${i}`);
    results.cp.push(
      await time(async () => {
        await run('cp', [src, dst]);
      }),
    );
    await fs.rm(dst);
    results['cp + fsync'].push(
      await time(async () => {
        await run('cp', [src, dst]);
        await run('sync', [dst]);
      }),
    );
    await fs.rm(dst);
    results['cp + sha256sum'].push(
      await time(async () => {
        await run('cp', [src, dst]);
        await run('sha256sum', [dst], { timeout: 600_000 });
      }),
    );
    await fs.rm(dst);
    results[INGEST].push(
      await time(async () => {
        const tmp = store.tempPath();
        const r = await copyAndHash(src, tmp);
        await store.commit(tmp, r.sha256, r.size);
      }),
    );
    await fs.rm(store.objectsDir, { recursive: true, force: true });
    await fs.mkdir(store.objectsDir, { recursive: true });
    // The same ingest as dockd runs it with integrity.algorithms [sha256, sm3].
    results[INGEST_SM3].push(
      await time(async () => {
        const tmp = store.tempPath();
        const r = await copyAndHash(src, tmp, { extraDigests: ['sm3'] });
        if (!r.digests.sm3) throw new Error('no SM3 digest computed');
        await store.commit(tmp, r.sha256, r.size);
      }),
    );
    await fs.rm(store.objectsDir, { recursive: true, force: true });
    await fs.mkdir(store.objectsDir, { recursive: true });
  }
  const hashOnly: number[] = [];
  for (let i = 0; i < runs; i++)
    hashOnly.push(
      await time(async () => {
        await copyAndHash(src, null);
      }),
    );
  const media = createFfmpegTools();
  const probeSecs = await time(async () => {
    await media.probe(src, 'video', size);
  });

  const mbps = (s: number) => size / s / 1048576;
  const base = mbps(median(results.cp));
  process.stdout.write(`\nfile: ${(size / 1048576).toFixed(0)} MiB valid MP4, ${runs} runs each, median, dir ${dir}\n`);
  for (const [name, secs] of Object.entries(results)) {
    const m = median(secs);
    process.stdout.write(
      `${name.padEnd(40)} ${mbps(m).toFixed(0).padStart(6)} MiB/s  ${m.toFixed(2).padStart(6)} s   ×${(mbps(m) / base).toFixed(2)} of cp\n`,
    );
  }
  const ingest = mbps(median(results[INGEST]));
  const ingestSm3 = mbps(median(results[INGEST_SM3]));
  process.stdout.write(`\ningest vs cp:             ×${(ingest / base).toFixed(2)}  (target ≥ 0.90)\n`);
  process.stdout.write(`ingest vs cp + fsync:     ×${(ingest / mbps(median(results['cp + fsync']))).toFixed(2)}\n`);
  process.stdout.write(`ingest vs cp + sha256sum: ×${(ingest / mbps(median(results['cp + sha256sum']))).toFixed(2)}\n`);
  process.stdout.write(
    `ingest with SM3 vs SHA-256 only: ×${(ingestSm3 / ingest).toFixed(2)}  (${ingestSm3.toFixed(0)} vs ${ingest.toFixed(0)} MiB/s; integrity.algorithms [sha256, sm3])\n`,
  );
  process.stdout.write(`dockd read + SHA-256 pass alone (re-dock confirmation): ${mbps(median(hashOnly)).toFixed(0)} MiB/s\n`);
  process.stdout.write(
    `note: plain cp leaves its copy in the page cache (not on disk); dockd fsyncs before it calls a copy stored, so "cp + fsync" is the like-for-like baseline\n`,
  );
  process.stdout.write(
    `verification (ffprobe + demux check) of the same file: ${probeSecs.toFixed(2)} s (${mbps(probeSecs).toFixed(0)} MiB/s)\n`,
  );
  await fs.rm(dir, { recursive: true, force: true });
}

await main();
