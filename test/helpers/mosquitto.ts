import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, waitFor } from './ports.ts';

const MOSQUITTO = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';

/** A real mosquitto broker on a free loopback port, owned by one test. */
export class Mosquitto {
  private proc: ChildProcess | null = null;
  port = 0;

  constructor(private readonly dir: string) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(port?: number): Promise<void> {
    this.port = port ?? this.port ?? 0;
    if (!this.port) this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    const conf = path.join(this.dir, 'mosquitto.conf');
    await fs.writeFile(
      conf,
      `listener ${this.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n`,
    );
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

/** A subscriber that records every message, for assertions. */
export async function recordTopics(url: string, filter: string): Promise<Subscriber> {
  const client = mqtt.connect(url, { reconnectPeriod: 200 });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages, close: () => client.endAsync() };
}
