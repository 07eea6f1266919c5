import { createHash } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { ThreadRest } from './threadRest.ts';
import { systemClock } from '../clock.ts';

/**
 * The workers' code, plain JavaScript run with `eval`: the same from the sources (tsx), the build (dist/) and the
 * bundle the HIL guest runs, none of which has to ship a separate worker file. Each stream is a set of hashes fed
 * chunk by chunk; a chunk's buffer goes back to its sender once hashed, to be filled again.
 */
export const DIGEST_THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    try {
      streams.set(m.id, m.algorithms.map((a) => [a, createHash(a)]));
    } catch (e) {
      parentPort.postMessage({ op: 'failed', id: m.id, message: e.message });
    }
  } else if (m.op === 'update') {
    const hashes = streams.get(m.id);
    if (hashes) for (const [, h] of hashes) h.update(new Uint8Array(m.buffer, 0, m.length));
    parentPort.postMessage({ op: 'hashed', id: m.id, buffer: m.buffer }, [m.buffer]);
  } else if (m.op === 'digest') {
    const hashes = streams.get(m.id);
    streams.delete(m.id);
    if (!hashes) return; // it failed at open: the sender knows
    parentPort.postMessage({ op: 'digest', id: m.id, digests: Object.fromEntries(hashes.map(([a, h]) => [a, h.digest('hex')])) });
  } else if (m.op === 'close') {
    streams.delete(m.id);
  }
});
`;

/** Chunks of one stream in flight to its worker at most: the copy runs this far ahead of the hash, no further. */
const IN_FLIGHT = 2;

type Reply =
  | { op: 'hashed'; id: number; buffer: ArrayBuffer }
  | { op: 'digest'; id: number; digests: Record<string, string> }
  | { op: 'failed'; id: number; message: string };

/** Hashes what a copy hands over, chunk by chunk; the digests (hex, by algorithm name) at the end. */
export interface Digester {
  /** Resolves once `bytes` are hashed or copied out (the caller may reuse its buffer then). */
  update(bytes: Uint8Array): Promise<void>;
  /** The digests of every byte handed over. Ends the stream. */
  digest(): Promise<Record<string, string>>;
  /** Drops the stream without a digest (the copy failed). */
  close(): void;
}

/** A digest thread died under a stream: the bytes handed to it are lost to the hash, not to the copy's source. */
export class DigestThreadGone extends Error {}

/** Digests computed on the calling thread, each chunk as it comes (while digest threads rest, or after one died). */
export function inProcessDigest(algorithms: string[]): Digester {
  let hashes: [string, ReturnType<typeof createHash>][];
  try {
    hashes = algorithms.map((a) => [a, createHash(a)]);
  } catch (e) {
    throw new Error(`cannot compute the digests: ${(e as Error).message}`);
  }
  return {
    update: async (bytes) => {
      for (const [, h] of hashes) h.update(bytes);
    },
    digest: async () => Object.fromEntries(hashes.map(([a, h]) => [a, h.digest('hex')])),
    close: () => {},
  };
}

/** One worker thread and the streams it hashes. Referenced (keeps the process alive) only while it has streams. */
class HashThread {
  readonly worker: Worker;
  readonly streams = new Map<number, DigestStream>();

  constructor(source: string, events: { worked: () => void; gone: (t: HashThread, e: Error) => void }) {
    this.worker = new Worker(source, { eval: true });
    this.worker.unref();
    let gone = false;
    this.worker.on('message', (m: Reply) => {
      // A reply that comes after the thread's error (Node does not order the two) neither counts as work nor reaches
      // a stream that has already failed.
      if (gone) return;
      if (m.op === 'digest') events.worked();
      this.streams.get(m.id)?.reply(m);
    });
    const fail = (e: Error) => {
      if (gone) return;
      gone = true;
      events.gone(this, e);
      for (const s of this.streams.values()) s.fail(new DigestThreadGone(e.message, { cause: e }));
      this.streams.clear();
    };
    this.worker.on('error', (e) => fail(new Error(`digest thread failed: ${e.message}`, { cause: e })));
    this.worker.on('exit', (code) => fail(new Error(`digest thread exited (code ${code})`)));
  }

  add(s: DigestStream): void {
    if (!this.streams.size) this.worker.ref();
    this.streams.set(s.id, s);
  }

  remove(id: number): void {
    if (this.streams.delete(id) && !this.streams.size) this.worker.unref();
  }
}

/**
 * Digests computed off the copy's thread (e.g. SM3, about five times slower than SHA-256 with SHA-NI): the copy hands
 * each chunk over (copied into a buffer of the stream's own, at most IN_FLIGHT of them) and goes on; it waits only
 * when the hash is that far behind, and for the digest at the end.
 */
export class DigestStream implements Digester {
  private readonly free: ArrayBuffer[] = [];
  private inFlight = 0;
  private roomWaiter: (() => void) | null = null;
  private digestWaiter: { resolve: (d: Record<string, string>) => void; reject: (e: Error) => void } | null = null;
  private error: Error | null = null;
  private done = false;

  constructor(
    readonly id: number,
    private readonly thread: HashThread,
    algorithms: string[],
  ) {
    thread.add(this);
    thread.worker.postMessage({ op: 'open', id, algorithms });
  }

  /** Hands `bytes` to the worker; resolves once they are copied out. */
  async update(bytes: Uint8Array): Promise<void> {
    while (!this.error && this.inFlight >= IN_FLIGHT) await new Promise<void>((r) => (this.roomWaiter = r));
    if (this.error) throw this.error;
    let buffer = this.free.pop();
    if (!buffer || buffer.byteLength < bytes.length) buffer = new ArrayBuffer(bytes.length);
    new Uint8Array(buffer, 0, bytes.length).set(bytes);
    this.inFlight++;
    this.thread.worker.postMessage({ op: 'update', id: this.id, buffer, length: bytes.length }, [buffer]);
  }

  digest(): Promise<Record<string, string>> {
    if (this.error) return Promise.reject(this.error);
    this.done = true;
    return new Promise((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.thread.worker.postMessage({ op: 'digest', id: this.id });
    });
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    if (!this.error) this.thread.worker.postMessage({ op: 'close', id: this.id });
    this.thread.remove(this.id);
  }

  reply(m: Reply): void {
    if (m.op === 'hashed') {
      this.inFlight--;
      this.free.push(m.buffer);
      this.wake();
      return;
    }
    this.thread.remove(this.id);
    if (m.op === 'failed') this.fail(new Error(`cannot compute the digests: ${m.message}`));
    else this.digestWaiter?.resolve(m.digests);
  }

  fail(e: Error): void {
    this.error = e;
    this.wake();
    this.digestWaiter?.reject(e);
  }

  private wake(): void {
    const w = this.roomWaiter;
    this.roomWaiter = null;
    w?.();
  }
}

/**
 * A small set of hash worker threads, started when first needed; each new stream goes to the least busy one. A stream
 * whose thread dies fails with DigestThreadGone (copyAndHash then copies again, hashing on the event loop). Threads
 * that keep dying rest as the copy threads do (see ThreadRest): meanwhile every stream is hashed on the event loop.
 */
export class DigestWorkers {
  private readonly threads: HashThread[] = [];
  private nextId = 1;
  private readonly rest: ThreadRest;

  constructor(
    private readonly size = Math.max(1, Math.min(4, os.availableParallelism() - 1)),
    private readonly source = DIGEST_THREAD_SOURCE,
    nowMs: () => number = systemClock.ms,
  ) {
    this.rest = new ThreadRest({ threads: 'digest threads', meanwhile: 'digests run on the main thread' }, nowMs);
  }

  /** `trouble` is why digests run on the event loop, null once a thread works again. One listener (the daemon's). */
  onTrouble(listener: (trouble: string | null) => void): void {
    this.rest.onTrouble(listener);
  }

  /** Hears each thread that dies (the digests it had under way are made again on the event loop). */
  onDeath(listener: (e: Error) => void): void {
    this.rest.onDeath(listener);
  }

  open(algorithms: string[]): Digester {
    if (this.rest.resting()) return inProcessDigest(algorithms);
    if (this.threads.length < this.size)
      this.threads.push(
        new HashThread(this.source, {
          worked: () => this.rest.worked(),
          gone: (t, e) => {
            const i = this.threads.indexOf(t);
            if (i >= 0) this.threads.splice(i, 1);
            this.rest.died(e);
          },
        }),
      );
    const thread = this.threads.reduce((a, b) => (b.streams.size < a.streams.size ? b : a));
    return new DigestStream(this.nextId++, thread, algorithms);
  }
}

/** The process's digest workers (threads are a process resource, like libuv's pool: one set serves every copy). */
export const digestWorkers = new DigestWorkers();
