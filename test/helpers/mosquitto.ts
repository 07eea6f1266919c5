import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { freePort, waitFor } from './ports.ts';
import { makeTestPki, type TestPki } from './testPki.ts';

const MOSQUITTO = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
const run = promisify(execFile);

/** How a test's broker is locked down; with none of it, anyone may connect and do anything. */
export interface MosquittoOptions {
  /** Users and their passwords (a password file); with any, anonymous clients are refused. */
  users?: Record<string, string>;
  /** The text of an ACL file (setAcl replaces it). */
  acl?: string;
  /** Only a TLS listener (mqtts://) that requires a client certificate; the certificates are made in the broker's dir. */
  tls?: boolean;
}

/** A real mosquitto broker on a free loopback port, owned by one test. */
export class Mosquitto {
  private proc: ChildProcess | null = null;
  port = 0;
  /** The certificates of a `tls` broker (set by start). */
  pki: TestPki | null = null;
  private acl: string | undefined;

  constructor(
    private readonly dir: string,
    private readonly opts: MosquittoOptions = {},
  ) {
    this.acl = opts.acl;
  }

  get url(): string {
    return `${this.opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  /** How a client connects as `user` (its password; to a `tls` broker, the CA and the client certificate too). */
  clientOptions(user?: string): IClientOptions {
    const tls = this.pki && {
      ca: readFileSync(this.pki.ca),
      cert: readFileSync(this.pki.clientCert),
      key: readFileSync(this.pki.clientKey),
    };
    return { ...(user ? { username: user, password: this.opts.users?.[user] } : {}), ...tls };
  }

  /** Replaces the ACL and has mosquitto re-read it (SIGHUP), connections kept. */
  async setAcl(text: string): Promise<void> {
    this.acl = text;
    await fs.writeFile(path.join(this.dir, 'acl'), text);
    this.proc?.kill('SIGHUP');
  }

  private async configLines(): Promise<string[]> {
    const { users, tls } = this.opts;
    const acl = this.acl;
    const lines = ['persistence false', 'log_dest stderr', 'log_type error'];
    // The files below live in a root-only temp dir: do not drop to the mosquitto user.
    if (process.getuid?.() === 0 && (users || acl || tls)) lines.push('user root');
    if (users) {
      const passwd = path.join(this.dir, 'passwd');
      for (const [i, [user, pass]] of Object.entries(users).entries())
        await run('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), passwd, user, pass]);
      lines.push('allow_anonymous false', `password_file ${passwd}`);
    } else lines.push('allow_anonymous true');
    if (acl !== undefined) {
      await fs.writeFile(path.join(this.dir, 'acl'), acl);
      lines.push(`acl_file ${path.join(this.dir, 'acl')}`);
    }
    lines.push(`listener ${this.port} 127.0.0.1`);
    if (tls) {
      this.pki ??= await makeTestPki(path.join(this.dir, 'pki'));
      const { ca, serverCert, serverKey } = this.pki;
      lines.push(`cafile ${ca}`, `certfile ${serverCert}`, `keyfile ${serverKey}`, 'require_certificate true');
    }
    return [...lines, ''];
  }

  async start(port?: number): Promise<void> {
    this.port = port ?? this.port ?? 0;
    if (!this.port) this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const conf = path.join(this.dir, 'mosquitto.conf');
    await fs.writeFile(conf, (await this.configLines()).join('\n'));
    this.proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.proc.stderr!.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<never>((_, reject) =>
      this.proc!.once('exit', (code) => reject(new Error(`mosquitto exited ${code}: ${stderr}`))),
    );
    await Promise.race([
      exited,
      waitFor(
        'mosquitto to listen',
        () =>
          new Promise<boolean>((resolve) => {
            const s = net.connect(this.port, '127.0.0.1', () => {
              s.end();
              resolve(true);
            });
            s.on('error', () => resolve(false));
          }),
        10_000,
      ),
    ]);
    exited.catch(() => {});
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}

export interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** A connected MQTT client and every message it received so far. */
export interface Subscriber {
  client: MqttClient;
  messages: Received[];
  close: () => Promise<void>;
}

/** A subscriber that records every message, for assertions; `options`: e.g. a user and password, TLS certificates. */
export async function recordTopics(url: string, filter: string, options: IClientOptions = {}): Promise<Subscriber> {
  const client = mqtt.connect(url, { reconnectPeriod: 200, ...options });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages, close: () => client.endAsync() };
}
