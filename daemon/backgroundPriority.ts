import os from 'node:os';

/**
 * How many nice levels below the event loop dockd's work beside it runs: the copy threads and the ffprobe and ffmpeg
 * it starts. The event loop hands every small recording to a copy thread and commits the copies; on a 2-core station,
 * at the same priority, four busy copy threads kept it off the CPU (a hand-over measured at 0.3 ms where it costs
 * 0.02 ms), and the threads then waited for their next job. With the copy threads 10 levels below, 8 volumes of 270
 * small recordings were safe to undock in 4.4–4.7 s instead of 5.6–6.9 s (`npm run bench`, scenario c). The
 * price: another busy process on the station at normal priority slows dockd's copies more than before.
 */
export const BACKGROUND_NICE = 10;

/** Lowers a process started for background work (ffprobe, ffmpeg) to BACKGROUND_NICE below dockd; quietly, if it is gone. */
export function lowerPriority(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    os.setPriority(pid, Math.min(19, os.getPriority(pid) + BACKGROUND_NICE));
  } catch {
    // exited already, or not ours to change
  }
}
