/**
 * Real MQTT brokers for the interop tests, each owned by one test file, on loopback ports of its own:
 * mosquitto with a config of the test's choosing (ACL, reload on SIGHUP, SIGKILL), and RabbitMQ with its MQTT plugin
 * as a private node (its own node name, Erlang port mapper, data, log and config directories in a temp dir).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { freePort, waitFor } from './ports.ts';

export interface TestBroker {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Starts it (again), on the same port, with whatever it kept on disk. */
  start(): Promise<void>;
  /** A clean stop. */
  stop(): Promise<void>;
}

/** Resolves when an MQTT 3.1.1 client can connect (the listener is up and the broker answers CONNECT). */
async function answersConnect(url: string): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync(url, {
      reconnectPeriod: 0,
      connectTimeout: 3000,
      clientId: `probe-${Math.random().toString(16).slice(2, 10)}`,
    });
    await c.endAsync();
    return true;
  } catch {
    return false;
  }
}

function exitOf(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => p.once('exit', () => resolve()));
}

const MOSQUITTO = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';

export class MosquittoBroker implements TestBroker {
  readonly name = 'mosquitto';
  port = 0;
  private proc: ChildProcess | null = null;
  private stderr = '';

  /** `extraConf`: more mosquitto.conf lines (e.g. an acl_file); re-read by start() and reload(). */
  constructor(
    private readonly dir: string,
    public extraConf: string[] = [],
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  private async writeConf(): Promise<string> {
    const conf = path.join(this.dir, 'mosquitto.conf');
    await fs.writeFile(
      conf,
      [
        `listener ${this.port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        ...this.extraConf,
        '',
      ].join('\n'),
    );
    return conf;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const conf = await this.writeConf();
    this.stderr = '';
    const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d) => {
      this.stderr += d;
    });
    await waitFor(
      'mosquitto to answer',
      () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited ${proc.exitCode}: ${this.stderr}`);
        return answersConnect(this.url);
      },
      15_000,
      50,
    );
  }

  /** Writes the config again and has mosquitto re-read it (SIGHUP: ACL and password files too), connections kept. */
  async reload(): Promise<void> {
    await this.writeConf();
    this.proc?.kill('SIGHUP');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** SIGKILL: no goodbye to anyone. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(sig);
    await exitOf(p);
  }
}

const run = promisify(execFile);
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const EPMD = ['/usr/bin/epmd', '/usr/lib/erlang/bin/epmd'].find((p) => existsSync(p)) ?? 'epmd';
/** A cold start of a RabbitMQ node takes some 20 s on an idle 2-core machine; several times that under load. */
const RABBIT_START_TIMEOUT_MS = 150_000;

/**
 * Debian's rabbitmq-server with rabbitmq_mqtt (MQTT 3.1.1), as a private node: node name, AMQP, distribution, Erlang
 * port mapper (epmd, started here in the foreground and stopped with the node) and MQTT ports all its own, its data
 * (mnesia), logs, config and Erlang cookie in `dir`. Works as root or as any user that can write `dir`.
 */
export class RabbitMqBroker implements TestBroker {
  readonly name = 'rabbitmq';
  port = 0;
  private ports: { amqp: number; dist: number; epmd: number } | null = null;
  private readonly nodeName = `dockd-test-${process.pid}-${Math.random().toString(16).slice(2, 8)}@localhost`;
  private node: ChildProcess | null = null;
  private epmd: ChildProcess | null = null;
  private output = '';

  constructor(private readonly dir: string) {}

  static available(): boolean {
    return existsSync(path.join(RABBIT_BIN, 'rabbitmq-server'));
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.ports) {
      this.port = await freePort();
      this.ports = { amqp: await freePort(), dist: await freePort(), epmd: await freePort() };
    }
    await fs.mkdir(path.join(this.dir, 'log'), { recursive: true });
    await fs.writeFile(
      path.join(this.dir, 'rabbitmq.conf'),
      [
        `listeners.tcp.default = 127.0.0.1:${this.ports.amqp}`,
        `mqtt.listeners.tcp.default = 127.0.0.1:${this.port}`,
        'mqtt.allow_anonymous = true',
        'log.console = false',
        'log.file.level = warning',
        '',
      ].join('\n'),
    );
    await fs.writeFile(path.join(this.dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n');
    const env = {
      ...process.env,
      HOME: this.dir, // the Erlang cookie
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_EPMD_PORT: String(this.ports.epmd),
      RABBITMQ_NODENAME: this.nodeName,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.ports.amqp),
      RABBITMQ_DIST_PORT: String(this.ports.dist),
      RABBITMQ_BASE: this.dir,
      RABBITMQ_CONFIG_FILE: path.join(this.dir, 'rabbitmq.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(this.dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: path.join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(this.dir, 'log'),
      RABBITMQ_PID_FILE: path.join(this.dir, 'rabbitmq.pid'),
    };
    this.output = '';
    this.epmd = spawn(EPMD, ['-port', String(this.ports.epmd), '-address', '127.0.0.1'], { stdio: 'ignore', env });
    // Its own process group: the script is a shell that runs the Erlang VM beside it; a stop reaches both.
    const node = spawn(path.join(RABBIT_BIN, 'rabbitmq-server'), [], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      cwd: this.dir,
      detached: true,
    });
    this.node = node;
    node.stdout!.on('data', (d) => {
      this.output = (this.output + d).slice(-20_000);
    });
    node.stderr!.on('data', (d) => {
      this.output = (this.output + d).slice(-20_000);
    });
    try {
      await waitFor(
        `RabbitMQ node ${this.nodeName} to answer MQTT on port ${this.port}`,
        () => {
          if (node.exitCode !== null) throw new Error(`rabbitmq-server exited ${node.exitCode}`);
          return answersConnect(this.url);
        },
        RABBIT_START_TIMEOUT_MS,
        250,
      );
    } catch (e) {
      const log = await this.logTail();
      await this.stop();
      throw new Error(
        `${(e as Error).message}\n--- rabbitmq-server output ---\n${this.output.slice(-3000)}\n--- log ---\n${log}`,
      );
    }
  }

  /** SIGTERM to the node's process group (a clean shutdown), SIGKILL if it has not ended within 30 s; then epmd. */
  async stop(): Promise<void> {
    const node = this.node;
    this.node = null;
    if (node && node.exitCode === null && node.signalCode === null) {
      try {
        process.kill(-node.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      const ended = await Promise.race([
        exitOf(node).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 30_000)),
      ]);
      if (!ended) {
        try {
          process.kill(-node.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
        await exitOf(node);
      }
      // The Erlang VM may outlive the script by a moment: wait for the group to be empty.
      await waitFor(
        'the RabbitMQ node to exit',
        () => {
          try {
            process.kill(-node.pid!, 0);
            return false;
          } catch {
            return true;
          }
        },
        30_000,
        100,
      ).catch(() => {
        try {
          process.kill(-node.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      });
    }
    const epmd = this.epmd;
    this.epmd = null;
    if (epmd && epmd.exitCode === null && epmd.signalCode === null) {
      epmd.kill('SIGTERM');
      await exitOf(epmd);
    }
  }

  /** rabbitmqctl against this node (its cookie and port mapper), e.g. to add users and permissions; returns stdout. */
  async ctl(...args: string[]): Promise<string> {
    const env = { ...process.env, HOME: this.dir, ERL_EPMD_PORT: String(this.ports!.epmd) };
    const { stdout } = await run(path.join(RABBIT_BIN, 'rabbitmqctl'), ['-n', this.nodeName, ...args], { env, timeout: 60_000 });
    return stdout;
  }

  private async logTail(): Promise<string> {
    const logDir = path.join(this.dir, 'log');
    const names = await fs.readdir(logDir).catch(() => [] as string[]);
    const out: string[] = [];
    for (const n of names) out.push(`${n}:\n${(await fs.readFile(path.join(logDir, n), 'utf8').catch(() => '')).slice(-3000)}`);
    return out.join('\n');
  }
}
