import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { YOUNG_GENERATION_CAP } from '../../daemon/heapGrowth.ts';
import { TEST_HQ_PUBLIC_PEM } from './hqKeys.ts';
import { waitFor } from './ports.ts';

export const DOCKD_BIN = path.join(PACKAGE_ROOT, 'bin', 'dockd.js');
export const DOCKCTL_BIN = path.join(PACKAGE_ROOT, 'bin', 'dockctl.js');

export async function tempDir(prefix = 'dockd-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A dockd process driven from outside, through its contract: a config file, signals, stdout logs and dockctl. */
export class DaemonProcess {
  proc: ChildProcess | null = null;
  logs: LogLine[] = [];
  stderr = '';
  private exit: Promise<number | null> | null = null;

  constructor(readonly configFile: string) {}

  /**
   * `as`: run the daemon as another user (permissions then apply, as for the dockd service user); `env`: extra
   * variables; `wrap`: a command that execs the daemon (e.g. unshare … setpriv …), so its pid is the daemon's.
   */
  start(opts: { as?: { uid: number; gid: number }; env?: Record<string, string>; wrap?: string[] } = {}): void {
    // With node's options as the unit gives them (daemon/heapGrowth.ts), so that the bench measures what a station runs.
    const node = [process.execPath, ...YOUNG_GENERATION_CAP];
    const [file, ...args] = [...(opts.wrap ?? []), ...node, DOCKD_BIN, '--config', this.configFile];
    this.proc = spawn(file!, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DOCKD_CONFIG: '', ...(opts.env ?? {}) },
      ...(opts.as ?? {}),
    });
    let buf = '';
    this.proc.stdout!.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line));
        } catch {
          this.logs.push({ level: 0, msg: line });
        }
      }
    });
    this.proc.stderr!.on('data', (d) => {
      this.stderr += d;
    });
    const p = this.proc;
    this.exit = new Promise((resolve) => p.once('exit', (code) => resolve(code)));
  }

  async waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> {
    return waitFor(
      what,
      () => {
        if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined)
          throw new Error(`dockd exited ${this.proc.exitCode}: ${this.stderr}`);
        return this.logs.find(pred);
      },
      timeoutMs,
    );
  }

  async started(): Promise<void> {
    // A start is quick on a quiet machine; 60 s leaves room for a CI machine whose two cores run several suites.
    await this.waitForLog((l) => l.msg === 'dockd started', 'dockd to start', 60_000);
  }

  async connectedToBroker(): Promise<LogLine> {
    return this.waitForLog((l) => l.msg === 'connected to broker', 'the daemon to connect to the broker');
  }

  /** SIGTERM and wait for the exit code. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? null;
    this.proc.kill('SIGTERM');
    return Promise.race([
      this.exit!,
      new Promise<number | null>((_, rej) => setTimeout(() => rej(new Error('dockd did not stop on SIGTERM')), timeoutMs)),
    ]);
  }

  async kill9(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGKILL');
    await this.exit;
  }
}

export function runDockctl(
  configFile: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DOCKCTL_BIN, '--config', configFile, ...args],
      { timeout: 120_000, maxBuffer: 32 << 20, env },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

export function runDockd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DOCKD_BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export interface WorldOptions {
  tusEndpoint: string;
  mqttUrl: string;
  devices?: { serial: string; officerId: string; officerName?: string }[];
  extra?: Record<string, unknown>;
  tus?: Record<string, unknown>;
  /** hq.receiptKey: the test HQ's public key unless given; null for none (receipts then archive but free nothing). */
  receiptKey?: string | null;
}

/** A temp world for one test: a store, a mount root and a config file pointing at the given servers. */
export async function makeWorld(
  dir: string,
  o: WorldOptions,
): Promise<{ configFile: string; storeDir: string; mountRoot: string; config: Record<string, unknown> }> {
  const storeDir = path.join(dir, 'store');
  const mountRoot = path.join(dir, 'dock');
  await fs.mkdir(mountRoot, { recursive: true });
  const config = {
    station: { id: 'test-st', timeZone: 'Asia/Shanghai' },
    storage: { dir: storeDir },
    dock: { mountRoots: [mountRoot], settleMs: 100 },
    devices: o.devices ?? [{ serial: '1234567', officerId: '012345', officerName: '张三' }],
    hq: {
      embedded: false,
      tus: { endpoint: o.tusEndpoint, stallTimeoutSeconds: 5, maxRetryDelaySeconds: 2, ...(o.tus ?? {}) },
      mqtt: { url: o.mqttUrl, topicPrefix: 'dockd' },
      ...(o.receiptKey === null ? {} : { receiptKey: o.receiptKey ?? TEST_HQ_PUBLIC_PEM }),
    },
    log: { level: 'debug' },
    // The fixtures' recordings are dated 2026-11-28 (and some tests move the clock by months): late by the default
    // rule, which is not what those tests are about (test/integration/deadlines.test.ts is).
    rules: { offloadWithinHours: 1_000_000 },
    // Tests run daemons side by side: the station page on a port of its own choosing unless a test names one.
    http: { listen: '127.0.0.1:0' },
    ...(o.extra ?? {}),
  };
  const configFile = path.join(dir, 'dockd.yaml');
  await fs.writeFile(configFile, stringify(config));
  return { configFile, storeDir, mountRoot, config };
}

/** Writes a copy of a world's config with other top-level sections replaced (e.g. a storage dir that is a copy). */
export async function writeConfigVariant(
  config: Record<string, unknown>,
  file: string,
  override: Record<string, unknown>,
): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, stringify({ ...config, ...override }));
  return file;
}

/** Rewrites a config file with `edit` applied to it (e.g. another hq.mqtt.topicPrefix). */
export async function editConfig(file: string, edit: (doc: Record<string, any>) => void): Promise<void> {
  const doc = parse(await fs.readFile(file, 'utf8'));
  edit(doc);
  await fs.writeFile(file, stringify(doc));
}
