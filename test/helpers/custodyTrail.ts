/**
 * Helpers for the chain-of-custody tests (receipts, audit trail, export, wipe gate). They act as HQ does (a receipt
 * published with QoS 1 on the real broker) and read only what the daemon wrote (dockctl output, MQTT messages, files).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { runDockctl } from './daemon.ts';
import { signedReceipt } from './hqKeys.ts';
import type { Received } from './mosquitto.ts';
import { waitFor } from './ports.ts';

/**
 * Publishes one receipt to `P/S/receipt` with QoS 1, as HQ does. An object `{sha256, ok, ...}` is signed by the test HQ
 * (its stationId and at filled in unless given) unless `sign` is false or it carries a sig already; any other object is
 * sent as JSON, a string or Buffer as is.
 */
export async function sendReceipt(
  brokerUrl: string,
  stationId: string,
  body: Record<string, unknown> | string | Buffer,
  prefix = 'dockd',
  sign = true,
): Promise<void> {
  const client = await mqtt.connectAsync(brokerUrl, { reconnectPeriod: 0, connectTimeout: 10_000 });
  try {
    let payload: string | Buffer;
    if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
    else if (sign && typeof body.sha256 === 'string' && typeof body.ok === 'boolean' && body.sig === undefined) {
      const stId = typeof body.stationId === 'string' ? body.stationId : stationId;
      payload = JSON.stringify({
        ...body,
        ...signedReceipt(stId, body.sha256, body.ok, { at: typeof body.at === 'string' ? body.at : undefined }),
      });
    } else payload = JSON.stringify(body);
    await client.publishAsync(`${prefix}/${stationId}/receipt`, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

/** An audit entry as `dockctl audit --json` prints it. */
export interface AuditJson {
  seq: number;
  at: string;
  type: string;
  subject: string | null;
  data: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export async function dockctlAudit(configFile: string, since?: string): Promise<AuditJson[]> {
  const r = await runDockctl(configFile, ['audit', '--json', ...(since ? ['--since', since] : [])]);
  if (r.code !== 0) throw new Error(`dockctl audit exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as AuditJson[];
}

/** Waits until the audit trail holds at least `n` entries of `type` (optionally about `subject`); returns them. */
export async function waitForAudit(
  configFile: string,
  type: string,
  opts: { subject?: string; n?: number; timeoutMs?: number } = {},
): Promise<AuditJson[]> {
  const n = opts.n ?? 1;
  return waitFor(
    `${n} audit entr${n === 1 ? 'y' : 'ies'} ${type}${opts.subject ? ` about ${opts.subject.slice(0, 12)}` : ''}`,
    async () => {
      const rows = (await dockctlAudit(configFile)).filter(
        (e) => e.type === type && (!opts.subject || e.subject === opts.subject),
      );
      return rows.length >= n ? rows : null;
    },
    opts.timeoutMs ?? 60_000,
  );
}

/** Retained-or-live `P/S/audit` heads seen so far, in arrival order. */
export function auditHeads(messages: Received[]): { seq: number; hash: string; at: string; retain: boolean }[] {
  return messages
    .filter((m) => m.topic.endsWith('/audit'))
    .map((m) => ({ ...(JSON.parse(m.payload) as { seq: number; hash: string; at: string }), retain: m.retain }));
}

export function sha256Of(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A file that is not a valid recording (random bytes): ffprobe fails on it, so it is rejected. */
export async function writeCorrupt(target: string, size = 4096): Promise<Buffer> {
  const data = randomBytes(size);
  await fs.writeFile(target, data);
  return data;
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

/** Contents of every regular file under `root` (relative path → bytes), to prove files were left byte-identical. */
export async function fileContents(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  async function walk(rel: string): Promise<void> {
    for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.set(r, await fs.readFile(path.join(root, r)));
    }
  }
  await walk('');
  return out;
}

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}
