import type { RecorderState } from '../status/board.ts';
import type { LeftBehindEntry } from '../recorder/discover.ts';

/** The abort reason of a session whose volume left the mount root (as opposed to dockd stopping). */
export const UNDOCKED = 'undocked';

/** What a pass over the volume ended with, as the finish step weighs it. */
export interface PassResult {
  /** The tile's state before the verdict (copying, paused, unplugged mid-copy, …). */
  state: RecorderState;
  error: string | null;
  /** Recordings that stay on the recorder, with why. */
  left: LeftBehindEntry[];
  /** Recordings still being written, and ones waiting for their retry. */
  settling: number;
  retrying: number;
  /** Every ready recording of the pass was taken (or failed and waits for its retry). */
  copied: boolean;
  signal: AbortSignal;
  /** Files found but not yet stored, for the unplugged message. */
  notStored: number;
  /** Verifications of this session's copies still running. */
  verifying: boolean;
}

/**
 * The finish step's verdict: what the officer is told. Safe only when nothing is left behind, nothing is still
 * changing or waiting for a retry, and the walk was complete.
 */
export function passVerdict(p: PassResult): { state: RecorderState; error: string | null } {
  const { left, signal } = p;
  const waiting = p.settling + p.retrying;
  const complete = p.copied && !waiting && !left.length && p.state !== 'unplugged';
  if (!complete && (p.state === 'unplugged' || (signal.aborted && signal.reason === UNDOCKED))) {
    return {
      state: 'unplugged',
      error: `recorder removed during copy; ${Math.max(0, p.notStored)} file(s) not yet stored stay on it: dock it again`,
    };
  }
  if (signal.aborted && !complete) return { state: 'error', error: 'ingest stopped before it finished (dockd is stopping)' };
  // Still being written: the session goes on (what is left behind is listed and alarmed all the same).
  if (p.settling) return { state: 'copying', error: left.length ? describeLeftBehind(left) : null };
  if (left.length) return { state: 'error', error: describeLeftBehind(left) };
  if (waiting) return { state: 'copying', error: null };
  // Every recording is durable with its hash: safe. Verification may still run, off the officer's time.
  if (p.state !== 'paused') return { state: p.verifying ? 'verifying' : 'done', error: null };
  return { state: p.state, error: p.error };
}

/** A copy failure in words, for the officer and the admin. */
export function describeCopyFailure(e: Error): string {
  const errno = (e as { cause?: NodeJS.ErrnoException }).cause?.code;
  if (errno === 'EACCES' || errno === 'EPERM') return `cannot read (permission denied: ${errno})`;
  if (errno) return `cannot read (${errno})`;
  return e.message;
}

/** "2 recording(s) left behind …: a (why); b (why)", at most five named. */
export function describeLeftBehind(left: LeftBehindEntry[]): string {
  const named = left
    .slice(0, 5)
    .map((l) => `${l.path === '.' ? '(volume root)' : l.path} (${l.reason})`)
    .join('; ');
  const more = left.length > 5 ? `; … ${left.length - 5} more` : '';
  return `${left.length} 个文件未采集 recording(s) left behind on the recorder, not safe to undock: ${named}${more}`;
}
