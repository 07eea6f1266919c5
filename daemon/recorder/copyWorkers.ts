import { close, closeSync, fdatasync } from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import {
  CopyError,
  type CopyOptions,
  type CopyResult,
  copyAndHash,
  forwardOnly,
  removeForRedo,
  sourceError,
} from './copyAndHash.ts';
import { type DigestWorkers, digestWorkers } from './digestWorkers.ts';
import { escapeName } from './rawName.ts';
import { ThreadRest } from './threadRest.ts';
import { BACKGROUND_NICE } from '../backgroundPriority.ts';
import { systemClock } from '../clock.ts';

/**
 * The copy threads' code, plain JavaScript run with `eval` (see digestWorkers.ts for why). One job is one whole file,
 * with the same rules as copyAndHash: the source opened O_NOFOLLOW | O_NONBLOCK and refused unless regular, the
 * target created new (O_EXCL, 0600), every byte written hashed, the source's size and mtime the same after as before
 * and exactly that many bytes read. Calls are synchronous here (the thread is the copy's own): a small file costs a
 * dozen system calls and no hand-over to libuv's pool for each. With `deferSync` the target stays open and its fd
 * goes back (file descriptors are the process's, not the thread's), its mode already 0444 (see CopyOptions.deferSync).
 */
export const COPY_THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
const CHUNK = 1 << 20;
const PROGRESS_EVERY = 8 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
// Below the event loop (see daemon/backgroundPriority.ts); on Linux this sets the priority of this thread alone.
try {
  const os = require('node:os');
  os.setPriority(0, Math.min(19, os.getPriority(0) + ${BACKGROUND_NICE}));
} catch {}
// Loads the hashing code now, while the thread waits for its first job, not in the officer's wait.
createHash('sha256').update(buffer.subarray(0, 64)).digest();
const failure = (kind, e) => ({ kind, errno: e.code ?? null, message: e.message });
const aborted = (job) => Atomics.load(job.shared, 0) === 1;
// The job's open files, in slots 1 (source) and 2 (target) of its shared array: if the thread dies mid-job, the event
// loop closes them (fds are the process's, and with trackUnmanagedFds off nothing else would).
const holding = (job, slot, fd) => Atomics.store(job.shared, slot, fd);
function copy(job) {
  if (aborted(job)) return { error: { kind: 'ABORTED' } };
  const source = typeof job.source === 'string' ? job.source : Buffer.from(job.source);
  let src;
  try {
    src = fs.openSync(source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    return { error: failure('source', e) };
  }
  holding(job, 1, src);
  let dst = -1;
  try {
    const before = fs.fstatSync(src);
    if (!before.isFile()) return { error: { kind: 'SOURCE_NOT_REGULAR' } };
    let hashes;
    try {
      hashes = [createHash('sha256'), ...job.extraDigests.map((a) => createHash(a))];
    } catch (e) {
      return { error: failure('digest', e) };
    }
    if (job.target !== null) {
      try {
        dst = fs.openSync(job.target, O_WRONLY | O_CREAT | O_EXCL, 0o600);
      } catch (e) {
        return { error: failure('create', e) };
      }
      holding(job, 2, dst);
    }
    let total = 0;
    let reported = 0;
    for (;;) {
      let n;
      try {
        n = fs.readSync(src, buffer, 0, CHUNK, null);
      } catch (e) {
        return { error: failure('source', e) };
      }
      if (n === 0) break;
      if (aborted(job)) return { error: { kind: 'ABORTED' } };
      const bytes = buffer.subarray(0, n);
      for (const h of hashes) h.update(bytes);
      if (dst >= 0) {
        try {
          for (let off = 0; off < n; ) off += fs.writeSync(dst, bytes, off, n - off);
        } catch (e) {
          return { error: failure('write', e) };
        }
      }
      total += n;
      if (total - reported >= PROGRESS_EVERY) {
        reported = total;
        parentPort.postMessage({ id: job.id, progress: total });
      }
    }
    let after;
    try {
      after = fs.fstatSync(src);
    } catch (e) {
      return { error: failure('source', e) };
    }
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) return { error: { kind: 'SOURCE_CHANGED' } };
    if (total !== before.size) return { error: { kind: 'SOURCE_SHORT', read: total, listed: before.size } };
    if (dst >= 0) {
      try {
        // A deferred target goes back read-only, as its object will be (here: no round trip through libuv's pool).
        if (job.deferSync) fs.fchmodSync(dst, 0o444);
        else fs.fdatasyncSync(dst);
      } catch (e) {
        return { error: failure(job.deferSync ? 'mode' : 'sync', e) };
      }
    }
    const [sha256, ...extra] = hashes.map((h) => h.digest('hex'));
    const result = {
      sha256,
      size: total,
      mtimeMs: Math.trunc(before.mtimeMs),
      digests: Object.fromEntries(job.extraDigests.map((a, i) => [a, extra[i]])),
      fd: job.deferSync && dst >= 0 ? dst : null,
    };
    if (result.fd !== null) {
      dst = -1; // now the caller's to sync and close
      holding(job, 2, -1);
    }
    return { result };
  } finally {
    try {
      fs.closeSync(src);
    } catch {}
    holding(job, 1, -1);
    if (dst >= 0) {
      try {
        fs.closeSync(dst);
      } catch {}
      holding(job, 2, -1);
    }
  }
}
parentPort.on('message', (job) => {
  let reply;
  try {
    reply = copy(job);
  } catch (e) {
    reply = { error: failure('source', e) };
  }
  parentPort.postMessage({ id: job.id, ...reply });
});
`;

type Failure =
  | { kind: 'source' | 'digest' | 'create' | 'write' | 'sync' | 'mode'; errno: string | null; message: string }
  | { kind: 'SOURCE_NOT_REGULAR' | 'SOURCE_CHANGED' | 'ABORTED' }
  | { kind: 'SOURCE_SHORT'; read: number; listed: number };

interface Done {
  sha256: string;
  size: number;
  mtimeMs: number;
  digests: Record<string, string>;
  fd: number | null;
}

type Reply = { id: number; progress: number } | { id: number; result: Done } | { id: number; error: Failure };

interface Job {
  id: number;
  source: string | Buffer;
  target: string | null;
  extraDigests: string[];
  deferSync: boolean;
  /**
   * Shared with the thread: [0] set to 1 when the caller aborts; [1] and [2] the source's and the target's fd while
   * the thread holds them open (-1 when not), for the event loop to close should the thread die mid-job.
   */
  shared: Int32Array;
  onBytes?: (n: number) => void;
  resolve: (r: Done) => void;
  reject: (e: Error) => void;
}

const fdatasyncFd = promisify(fdatasync);
const closeFd = promisify(close);

/** A target left open by a copy thread (group commit syncs it with its batch), by its file descriptor. */
class OpenTarget {
  private closed = false;
  constructor(private readonly fd: number) {}
  datasync(): Promise<void> {
    return fdatasyncFd(this.fd);
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeFd(this.fd);
  }
}

function withErrno(message: string, errno: string | null): Error {
  return Object.assign(new Error(message), { code: errno ?? undefined });
}

/** A copy thread's failure as copyAndHash reports it. */
function copyError(f: Failure, source: string, target: string | null): Error {
  switch (f.kind) {
    case 'source':
      return sourceError(withErrno(f.message, f.errno), source);
    case 'digest':
      return new Error(`cannot compute the digests: ${f.message}`);
    case 'create':
      return new CopyError('TARGET_IO', `cannot create ${target}: ${f.message}`, withErrno(f.message, f.errno));
    case 'write':
      return new CopyError('TARGET_IO', `writing ${target}: ${f.message}`, withErrno(f.message, f.errno));
    case 'sync':
      return new CopyError('TARGET_IO', `syncing ${target}: ${f.message}`, withErrno(f.message, f.errno));
    case 'mode':
      return new CopyError('TARGET_IO', `making ${target} read-only: ${f.message}`, withErrno(f.message, f.errno));
    case 'SOURCE_NOT_REGULAR':
      return new CopyError('SOURCE_NOT_REGULAR', `${source} is not a regular file`);
    case 'SOURCE_CHANGED':
      return new CopyError('SOURCE_CHANGED', `${source} changed while it was copied`);
    case 'ABORTED':
      return new CopyError('SOURCE_IO', `${source}: copy interrupted`);
    case 'SOURCE_SHORT':
      return new CopyError('SOURCE_SHORT', `${source}: read ${f.read} bytes, the volume lists ${f.listed}`);
  }
}

/** One copy thread; it takes one job at a time (it blocks in the job's system calls). */
class CopyThread {
  private readonly worker: Worker;
  job: Job | null = null;

  constructor(
    source: string,
    private readonly events: { done: (t: CopyThread) => void; gone: (t: CopyThread, e: Error) => void },
  ) {
    // trackUnmanagedFds off: a target's fd handed back to the event loop is the caller's; with tracking on, the thread
    // would close it when it exits (or when it closes a later file of the same number) behind the caller's back.
    // Its heap holds a job's few objects at a time: small limits keep 32 bays' worth of copying within the memory goal.
    this.worker = new Worker(source, {
      eval: true,
      trackUnmanagedFds: false,
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    this.worker.unref();
    this.worker.on('message', (m: Reply) => {
      const job = this.job;
      if (!job || job.id !== m.id) return;
      if ('progress' in m) return job.onBytes?.(m.progress);
      this.job = null;
      this.worker.unref();
      if ('result' in m) job.resolve(m.result);
      else job.reject(copyError(m.error, escapedName(job.source), job.target));
      this.events.done(this);
    });
    let gone = false;
    const fail = (e: Error) => {
      if (gone) return;
      gone = true;
      const job = this.job;
      this.job = null;
      if (job) closeHeld(job);
      job?.reject(new ThreadGone(e.message, { cause: e }));
      this.events.gone(this, e);
    };
    this.worker.on('error', (e) => fail(new Error(`copy thread failed: ${e.message}`, { cause: e })));
    this.worker.on('exit', (code) => fail(new Error(`copy thread exited (code ${code})`)));
  }

  run(job: Job): void {
    this.job = job;
    this.worker.ref();
    const { id, source, target, extraDigests, deferSync, shared } = job;
    this.worker.postMessage({ id, source, target, extraDigests, deferSync, shared });
  }
}

/** The fds a dead thread held for its job: closed, so that a volume it was reading is not kept busy. */
function closeHeld(job: Job): void {
  for (const slot of [1, 2]) {
    const fd = Atomics.exchange(job.shared, slot, -1);
    if (fd >= 0)
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
  }
}

/** A copy thread died (or never started): says nothing about the recording, whose copy is done again elsewhere. */
class ThreadGone extends Error {}

const escapedName = (p: string | Buffer) => (typeof p === 'string' ? p : escapeName(p).text);

/**
 * Copy threads for small recordings: a day's photos and short clips cost more in per-file system calls (each a
 * round trip through libuv's pool, on this thread) than in bytes, and their hashing would hold the event loop. A few
 * threads copy whole files side by side; the event loop only hands the job over and takes the result. Jobs wait in one
 * queue and go to whichever thread is free (a thread stuck on a failing device holds up only its own job). Large files
 * stay with copyAndHash (its reads, hash and writes overlap; a thread doing them in turn would be slower).
 *
 * A thread that dies takes nothing with it: its copy is done again on the event loop. Threads that keep dying (or
 * cannot start at all) are left alone for a while, doubling up to half an hour, and every copy runs on the event
 * loop meanwhile: slower, never lost, and no CPU spent starting thread after thread. `onTrouble` hears when that
 * starts and when a thread works again.
 */
export class CopyWorkers {
  private readonly threads: CopyThread[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private readonly rest: ThreadRest;

  constructor(
    private readonly size = Math.min(4, 2 * os.availableParallelism()),
    private readonly source = COPY_THREAD_SOURCE,
    nowMs: () => number = systemClock.ms,
  ) {
    this.rest = new ThreadRest({ threads: 'copy threads', meanwhile: 'copies run on the main thread' }, nowMs);
  }

  /** `trouble` is why copies run on the event loop, null once a thread works again. One listener (the daemon's). */
  onTrouble(listener: (trouble: string | null) => void): void {
    this.rest.onTrouble(listener);
  }

  /** Hears each thread that dies (the copies it had under way are made again on the event loop). */
  onDeath(listener: (e: Error) => void): void {
    this.rest.onDeath(listener);
  }

  /**
   * copyAndHash on a copy thread, with the same result and errors. An abort stops the copy between chunks (or before
   * it starts) with SOURCE_IO "copy interrupted", leaving any partial target for the caller, as copyAndHash does.
   */
  async copyAndHash(source: string | Buffer, target: string | null, opts: CopyOptions = {}): Promise<CopyResult> {
    if (opts.signal?.aborted) throw new CopyError('SOURCE_IO', `${escapedName(source)}: copy interrupted`);
    if (this.rest.resting()) return copyAndHash(source, target, opts);
    // Progress only goes forward, also when a copy is made again after its thread died.
    const onBytes = forwardOnly(opts.onBytes);
    try {
      return await this.onThread(source, target, { ...opts, onBytes });
    } catch (e) {
      if (!(e instanceof ThreadGone) || opts.signal?.aborted) throw e;
      // The thread is gone, not the recording: the copy starts again here, from a new target.
      if (target !== null) await removeForRedo(target, e);
      return copyAndHash(source, target, { ...opts, onBytes });
    }
  }

  private async onThread(source: string | Buffer, target: string | null, opts: CopyOptions): Promise<CopyResult> {
    // Read by the thread between chunks: set once the caller aborts. Then the fds it holds (see Job.shared).
    const shared = new Int32Array(new SharedArrayBuffer(12));
    shared.set([0, -1, -1]);
    const onAbort = () => Atomics.store(shared, 0, 1);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let done: Done;
    try {
      done = await new Promise<Done>((resolve, reject) => {
        this.queue.push({
          id: this.nextId++,
          source,
          target,
          extraDigests: opts.extraDigests ?? [],
          deferSync: opts.deferSync ?? false,
          shared,
          onBytes: opts.onBytes,
          resolve,
          reject,
        });
        this.dispatch();
      });
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    opts.onBytes?.(done.size);
    const result: CopyResult = { sha256: done.sha256, size: done.size, mtimeMs: done.mtimeMs, digests: done.digests };
    if (done.fd !== null) result.unsynced = new OpenTarget(done.fd);
    return result;
  }

  /**
   * Starts every copy thread now. A thread takes ≈ 0.1–0.2 s of CPU to start (Node's own modules compiled again in
   * each): the daemon pays that once, after it has started, not in the first recorder's copy. Starting only one per
   * core left the other two to start inside the first dock: on a 2-core station a system-wide profile of 270 small
   * files showed them taking ≈ 0.2 s of the dock's CPU, and the dock went from 0.75 s to 0.67 s with all four warm.
   * An idle thread holds ≈ 18 MB and no event loop; the peak at 32 bays is unchanged (all four run there anyway).
   */
  warm(): void {
    while (this.threads.length < this.size) this.startThread();
  }

  private startThread(): CopyThread {
    const thread = new CopyThread(this.source, {
      done: () => this.threadWorks(),
      gone: (t, e) => {
        const i = this.threads.indexOf(t);
        if (i >= 0) this.threads.splice(i, 1);
        this.threadDied(e);
      },
    });
    this.threads.push(thread);
    return thread;
  }

  private threadWorks(): void {
    this.rest.worked();
    this.dispatch();
  }

  private threadDied(e: Error): void {
    const next = this.rest.died(e);
    if (next === 'again') this.dispatch();
    else if (next === 'rest') for (const job of this.queue.splice(0)) job.reject(new ThreadGone('copy threads are resting'));
  }

  /** Hands queued jobs to free threads, starting a thread when all are busy and there may be more. */
  private dispatch(): void {
    while (this.queue.length) {
      const thread = this.threads.find((t) => !t.job) ?? (this.threads.length < this.size ? this.startThread() : null);
      if (!thread) return;
      thread.run(this.queue.shift()!);
    }
  }
}

/** The process's copy threads (like libuv's pool, one set serves every recorder). */
export const copyWorkers = new CopyWorkers();

/** The threads recordings are copied and hashed on: copy threads, and digest threads for a large file's extra digests. */
export interface HashThreads {
  copy: CopyWorkers;
  digest: DigestWorkers;
}

/** The process's threads (the daemon's host hands these on; a test's host may hand in others). */
export const processThreads: HashThreads = { copy: copyWorkers, digest: digestWorkers };

/** A recording smaller than this is copied on a copy thread; a larger one by copyAndHash on the event loop. */
export const SMALL_FILE = 32 << 20;

/**
 * copyAndHash, on a copy thread when the walk found the recording small; `threads` are the process's unless handed in
 * (a test's, through the daemon's host).
 */
export function copyRecording(
  listedSize: number,
  source: string | Buffer,
  target: string | null,
  opts: CopyOptions = {},
  threads: HashThreads = processThreads,
): Promise<CopyResult> {
  const withThreads = { ...opts, digestWorkers: opts.digestWorkers ?? threads.digest };
  return listedSize < SMALL_FILE
    ? threads.copy.copyAndHash(source, target, withThreads)
    : copyAndHash(source, target, withThreads);
}
