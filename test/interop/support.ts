/**
 * What the interop tests share: a station world with its own id and MQTT settings, an HQ-side MQTT client that
 * subscribes to exact topics (RabbitMQ delivers retained messages to exact subscriptions only), dockctl's JSON.
 */
import fs from 'node:fs/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { parse, stringify } from 'yaml';
import { makeWorld, runDockctl, type WorldOptions } from '../helpers/daemon.ts';
import type { Received } from '../helpers/mosquitto.ts';

export type World = Awaited<ReturnType<typeof makeWorld>>;

/** makeWorld, then station.id and hq.mqtt keys set as given. */
export async function stationWorld(
  dir: string,
  o: WorldOptions & { stationId: string; mqtt?: Record<string, unknown> },
): Promise<World> {
  const w = await makeWorld(dir, o);
  const doc = parse(await fs.readFile(w.configFile, 'utf8'));
  doc.station.id = o.stationId;
  Object.assign(doc.hq.mqtt, o.mqtt ?? {});
  await fs.writeFile(w.configFile, stringify(doc));
  return { ...w, config: doc };
}

/** An MQTT 3.1.1 client of HQ's, subscribed with QoS 1 to each of `topics` (exact names), recording what arrives. */
export async function hqSubscriber(
  url: string,
  topics: string[],
): Promise<{ client: MqttClient; messages: Received[]; close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, {
    reconnectPeriod: 200,
    clientId: `hq-${Math.random().toString(16).slice(2, 10)}`,
  });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), retain: packet.retain }));
  for (const t of topics) await client.subscribeAsync(t, { qos: 1 });
  return { client, messages, close: () => client.endAsync() };
}

export interface StationEvent {
  type: string;
  at: string;
  sha256?: string;
  code?: string;
  key?: string;
  active?: boolean;
  [k: string]: unknown;
}

export function events(messages: Received[], topic: string): StationEvent[] {
  return messages.filter((m) => m.topic === topic).map((m) => JSON.parse(m.payload) as StationEvent);
}

export async function dockctlJson<T>(configFile: string, args: string[]): Promise<T> {
  const r = await runDockctl(configFile, [...args, '--json']);
  if (r.code !== 0) throw new Error(`dockctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export interface StatusJson {
  queue: Record<string, number>;
  alarms: { code: string; key: string; message: string }[];
  links: { mqtt: string } | null;
}
export interface FileJson {
  id: number;
  sha256: string;
  state: string;
}
