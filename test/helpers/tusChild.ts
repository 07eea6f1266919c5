import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.ts';
import type { TusImpl } from './tusServerProcess.ts';

const ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tusServerProcess.ts');

export interface FinishedUpload {
  id: string;
  sha256: string;
  size: number;
  metadata: Record<string, string | null>;
}

/**
 * One of the tus servers HQs run (tusServerProcess.ts), in a child process on a fixed loopback port and directory, so
 * that a test can SIGKILL it mid-upload and start it again on the same port with the same uploads (or none).
 */
export class TusChild {
  port = 0;
  /** Finished, re-hashed uploads over every run of this server. */
  readonly finished: FinishedUpload[] = [];
  readonly refused: string[] = [];
  /** Bytes written into uploads by the current run. */
  received = 0;
  private proc: ChildProcess | null = null;
  private stderr = '';

  constructor(
    readonly impl: TusImpl,
    readonly dir: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/files/`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    this.received = 0;
    this.stderr = '';
    let listening = false;
    const proc = spawn(process.execPath, ['--import', 'tsx', ENTRY, this.impl, String(this.port), this.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, i)) as {
          listening?: number;
          received?: number;
          finished?: FinishedUpload;
          refused?: string;
        };
        buf = buf.slice(i + 1);
        if (msg.listening) listening = true;
        if (msg.received !== undefined) this.received = msg.received;
        if (msg.finished) this.finished.push(msg.finished);
        if (msg.refused) this.refused.push(msg.refused);
      }
    });
    proc.stderr!.on('data', (d) => {
      this.stderr += d;
    });
    await waitFor(
      `${this.impl} to listen`,
      () => {
        if (proc.exitCode !== null) throw new Error(`${this.impl} exited ${proc.exitCode}: ${this.stderr}`);
        return listening;
      },
      60_000,
      50,
    );
  }

  /** SIGKILL: the process dies where it stands, whatever it was writing. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }

  /** Upload data files in the directory (not the servers' own records) and their sizes. */
  async uploadFiles(): Promise<{ name: string; size: number }[]> {
    const out: { name: string; size: number }[] = [];
    for (const name of await fs.readdir(this.dir)) {
      if (name.endsWith('.json') || name.endsWith('.tmp')) continue;
      const st = await fs.stat(path.join(this.dir, name));
      if (st.isFile()) out.push({ name, size: st.size });
    }
    return out;
  }

  /** The server forgets every upload it had (its directory emptied), as an HQ that lost its disk or expired them. */
  async forget(): Promise<void> {
    for (const name of await fs.readdir(this.dir)) await fs.rm(path.join(this.dir, name), { recursive: true, force: true });
  }
}
