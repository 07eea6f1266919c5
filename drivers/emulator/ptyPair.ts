/**
 * A pseudo-terminal pair made by socat: two linked ptys, each reachable through a symlink. The emulator holds one end,
 * the station opens the other (e.g. a link placed in a directory standing in for /dev/serial/by-id). Closing the pair
 * stops socat, which removes both links: the tty vanishes, as when a recorder leaves command mode or is unplugged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EmulatorError } from './errors.ts';

export interface PtyPairOptions {
  /** Symlink for the recorder's end. */
  recorderLink: string;
  /** Symlink for the station's end. */
  stationLink: string;
  /** How long to wait for socat to create the links (default 5000 ms). */
  timeoutMs?: number;
}

export interface PtyPair {
  readonly recorderLink: string;
  readonly stationLink: string;
  readonly pid: number;
  /** Settles when socat exits, for whatever reason. */
  readonly exited: Promise<void>;
  /** Stops socat (its links disappear); idempotent. */
  close(): Promise<void>;
}

async function removeStaleLink(p: string): Promise<void> {
  try {
    const st = await fs.lstat(p);
    // Only a symlink (left by a socat that was killed hard) is ours to remove; anything else is an error.
    if (!st.isSymbolicLink())
      throw new EmulatorError('EMULATOR_PTY_FAILED', `${p} exists and is not a symlink; refusing to replace it`);
    await fs.unlink(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export async function createPtyPair(opts: PtyPairOptions): Promise<PtyPair> {
  const { recorderLink, stationLink } = opts;
  for (const link of [recorderLink, stationLink]) {
    await fs.mkdir(path.dirname(link), { recursive: true });
    await removeStaleLink(link);
  }
  let child: ChildProcess;
  try {
    child = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${recorderLink}`, `pty,raw,echo=0,link=${stationLink}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    throw new EmulatorError('EMULATOR_SOCAT_MISSING', `cannot start socat: ${(e as Error).message}`, e);
  }
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new EmulatorError(
            'EMULATOR_PTY_FAILED',
            `socat did not create its ptys within ${opts.timeoutMs ?? 5000} ms: ${stderr.trim()}`,
          ),
        ),
      opts.timeoutMs ?? 5000,
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      if (stderr.length < 16_384) stderr += s;
      if (stderr.includes('starting data transfer loop')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === 'ENOENT'
          ? new EmulatorError(
              'EMULATOR_SOCAT_MISSING',
              'socat is not installed (the recorder emulator needs it for its pty): apt-get install socat',
              e,
            )
          : new EmulatorError('EMULATOR_PTY_FAILED', `socat: ${e.message}`, e),
      );
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new EmulatorError('EMULATOR_PTY_FAILED', `socat exited (${signal ?? code}) before its ptys were ready: ${stderr.trim()}`),
      );
    });
  });
  const close = async () => {
    if (child.pid === undefined) return; // never started
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await ready;
    for (const link of [recorderLink, stationLink]) await fs.stat(link);
  } catch (e) {
    await close();
    throw e instanceof EmulatorError ? e : new EmulatorError('EMULATOR_PTY_FAILED', `socat: ${(e as Error).message}`, e);
  }
  return { recorderLink, stationLink, pid: child.pid!, exited, close };
}
