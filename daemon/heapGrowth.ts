import { setFlagsFromString } from 'node:v8';

/*
 * The heap of dockd's event loop at 32 bays. While 32 recorders copy at once, the event loop makes short-lived objects
 * fast (each recording's rows, events and tile updates), and V8 sizes its heap for speed, not for a station's memory.
 * Measured with 32 distinct recorders docked at once (8,640 recordings, 9.5 GiB; bench/daemon.ts (c)), peak RSS:
 *
 * | runtime | V8's defaults | heap growth ×1.35 | and the young generation at 16 MB |
 * | Node 20 | 256–338 MB    | 229–235 MB        | (16 MB is Node 20's default)     |
 * | Node 24 | 336–342 MB    | 326–327 MB        | 237–247 MB (8 MB: 234–256 MB)    |
 *
 * with the same time to safe and the same CPU within the machine's noise. Two settings, set in two ways:
 */

/**
 * How far V8 lets the old generation grow past what survived its last full collection: ×1.35 instead of up to ×4.
 * Set at run time, first thing in the daemon (limitHeapGrowth): V8 reads this flag each time it sets the heap's next
 * limit, and it changes only when the next full collection comes. Node 20, 22 and 24 all have it. 25 took more CPU
 * (more full collections) for no less memory.
 */
const HEAP_GROWING_PERCENT = 35;

export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/**
 * The young generation's cap, on node's command line: V8 reads it only when it creates the heap. Node 24 sizes it from
 * the machine's memory (two 64 MB halves on a 24 GiB machine, against 16 MB in Node 20 and 22): most of the difference
 * above. The unit's ExecStart, `npm start` and the tests' daemons (test/helpers/daemon.ts) pass it; a dockd started
 * without it runs as well, with the larger young generation.
 */
export const YOUNG_GENERATION_CAP = ['--max-semi-space-size=16'];
