import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DaemonProcess, DOCKCTL_BIN, makeWorld, type LogLine } from '../../test/helpers/daemon.ts';
import { Mosquitto } from '../../test/helpers/mosquitto.ts';
import { ThrottleProxy } from '../../test/helpers/throttleProxy.ts';
import { TusTestServer } from '../../test/helpers/tusServer.ts';

/** The parts of dockd's `GET /api/state` (the `P/S/state` snapshot) the torture watches. */
export interface StationState {
  recorders: {
    volume: string;
    name: string;
    state: string;
    current: string | null;
    safeToUndock: boolean;
    files: { total: number; done: number };
  }[];
  uploads: { id: number; offset: number; size: number }[];
  queue: Record<string, number>;
}

export interface CatalogRow {
  id: number;
  state: string;
  sha256: string | null;
  filename: string;
  size: number;
}

const START_TIMEOUT_MS = 90_000;

/** Waits for a log line of this dockd; fails at once when it exits (say it cannot start), or after a long while. */
async function waitForLine(d: DaemonProcess, msg: string): Promise<LogLine> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const line = d.logs.find((l) => l.msg === msg);
    if (line) return line;
    const code = d.proc?.exitCode;
    if (code !== null && code !== undefined)
      throw new Error(`dockd exited ${code} before logging '${msg}': ${d.stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`dockd did not log '${msg}' within ${START_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function dockctlWithStdin(configFile: string, args: string[], input: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [DOCKCTL_BIN, '--config', configFile, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d) => {
      stderr += d;
    });
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code, stderr }));
    p.stdin!.end(input);
  });
}

/**
 * The world the torture runs in: a real mosquitto, a real @tus/server (HQ) behind a counting, throttling TCP proxy,
 * and a station (store, mount root, config) whose dockd is started and `kill -9`ed again and again. HQ and the broker
 * live in this process or their own, so killing dockd never touches them.
 */
export class TortureStation {
  daemon: DaemonProcess | null = null;
  /** The station page of the running dockd (port 0 in the config: a new port each start). */
  private pageUrl: string | null = null;
  /** The station page shows state only to a logged-in user: an admin made for the torture, and its session. */
  private readonly admin = { user: 'torture', password: randomBytes(18).toString('base64url') };
  private cookie: string | null = null;

  private constructor(
    readonly dir: string,
    readonly broker: Mosquitto,
    readonly hq: TusTestServer,
    readonly proxy: ThrottleProxy,
    readonly world: Awaited<ReturnType<typeof makeWorld>>,
  ) {}

  static async open(dir: string, uploadBytesPerSecond: number): Promise<TortureStation> {
    const broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    const hq = new TusTestServer(path.join(dir, 'hq'));
    await hq.start();
    const proxy = new ThrottleProxy({ port: hq.port }, uploadBytesPerSecond);
    await proxy.start();
    const world = await makeWorld(path.join(dir, 'station'), {
      tusEndpoint: `http://127.0.0.1:${proxy.port}/files/`,
      mqttUrl: broker.url,
      // The product's stall timeout: the proxy serves one connection at a time, and a short timeout would abort the
      // upload waiting behind a big one again and again (a stall test, not this one).
      tus: { stallTimeoutSeconds: 30 },
      extra: { log: { level: 'info' } },
    });
    await fs.mkdir(path.join(dir, 'logs'), { recursive: true });
    const station = new TortureStation(dir, broker, hq, proxy, world);
    await station.prepare();
    return station;
  }

  /** A first, clean run of dockd makes the catalog; then the admin whose session reads the live state is added. */
  private async prepare(): Promise<void> {
    await this.startDaemon(false);
    await waitForLine(this.daemon!, 'dockd started');
    await this.saveLogs('prepare');
    const code = await this.stopDaemon();
    if (code !== 0) throw new Error(`dockd's first clean stop (SIGTERM) exited ${code}`);
    const add = await dockctlWithStdin(
      this.world.configFile,
      ['user', 'add', this.admin.user, '--role', 'admin', '--password-stdin'],
      this.admin.password,
    );
    if (add.code !== 0) throw new Error(`dockctl user add exit ${add.code}: ${add.stderr.trim()}`);
  }

  /** Logs in on the station page (POST /api/login) and keeps the session cookie. */
  private async logIn(): Promise<void> {
    const r = await fetch(new URL('api/login', this.pageUrl!), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(this.admin),
      signal: AbortSignal.timeout(30_000),
    });
    const cookie = r.headers.get('set-cookie')?.split(';')[0];
    if (!r.ok || !cookie)
      throw new Error(`cannot log in on the station page: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    this.cookie = cookie;
  }

  get running(): boolean {
    const p = this.daemon?.proc;
    return Boolean(p && p.exitCode === null && p.signalCode === null);
  }

  get hqDir(): string {
    return path.join(this.dir, 'hq');
  }

  /** Starts dockd and waits until it runs and its page answers (and, unless told not to, logs in on it). */
  async startDaemon(logIn = true): Promise<void> {
    if (this.running) throw new Error('dockd is already running');
    const d = new DaemonProcess(this.world.configFile);
    this.daemon = d;
    d.start();
    // Not 'dockd started': that waits for the files stored before a kill to be verified, a window worth killing in too.
    const page = await waitForLine(d, 'station page listening');
    this.pageUrl = String(page.url);
    if (logIn) await this.logIn();
  }

  /** dockd's live state, or null when it does not answer in time; a refusal (4xx) is an error. */
  async state(): Promise<StationState | null> {
    if (!this.pageUrl) return null;
    let r: Response;
    try {
      r = await fetch(new URL('api/state', this.pageUrl), {
        headers: { cookie: this.cookie ?? '' },
        signal: AbortSignal.timeout(2000),
      });
    } catch {
      return null;
    }
    if (r.status >= 400 && r.status < 500)
      throw new Error(`GET /api/state refused: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    return r.ok ? ((await r.json()) as StationState) : null;
  }

  async kill9(): Promise<void> {
    await this.daemon?.kill9();
    this.pageUrl = null;
  }

  /** SIGTERM; returns the exit code. */
  async stopDaemon(): Promise<number | null> {
    const code = (await this.daemon?.stop(60_000)) ?? null;
    this.pageUrl = null;
    return code;
  }

  /** Keeps the last dockd's log lines (and stderr) for a person to read. */
  async saveLogs(name: string): Promise<string> {
    const file = path.join(this.dir, 'logs', `${name}.jsonl`);
    const d = this.daemon;
    if (!d) return file;
    await fs.writeFile(file, `${d.logs.map((l) => JSON.stringify(l)).join('\n')}\n${d.stderr ? `# stderr:\n${d.stderr}` : ''}`);
    return file;
  }

  /** Every catalog row, read straight from SQLite (read-only). Only while dockd is down: the state it left behind. */
  catalogRows(): CatalogRow[] {
    if (this.running) throw new Error('read the catalog only while dockd is down');
    const db = new Database(path.join(this.world.storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT id, state, sha256, filename, size FROM files ORDER BY id').all() as CatalogRow[];
    } finally {
      db.close();
    }
  }

  /** Partial copies in the store's temp dir (as a kill leaves them, until the next start sweeps them). */
  async tempFiles(): Promise<number> {
    return (await fs.readdir(path.join(this.world.storeDir, 'tmp')).catch(() => [] as string[])).length;
  }

  async close(): Promise<void> {
    await this.daemon?.kill9().catch(() => {});
    await this.proxy.stop().catch(() => {});
    await this.hq.stop().catch(() => {});
    await this.broker.stop().catch(() => {});
  }
}
