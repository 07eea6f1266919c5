import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Aedes } from 'aedes';
import { FileStore } from '@tus/file-store';
import { EVENTS, Server, type Upload } from '@tus/server';
import { openKeyPair, type KeyPair } from '../custody/keys.ts';
import { signReceipt } from '../custody/signatures.ts';
import type { Logger } from '../log.ts';
import type { Clock } from '../clock.ts';

export interface EmbeddedHqOptions {
  /** tus endpoint URL to serve (host, port and path are taken from it). */
  tusEndpoint: string;
  /** MQTT broker URL to serve (port taken from it). */
  mqttUrl: string;
  dir: string;
  /** P in P/S/receipt; receipts go to the station named in each upload's metadata. */
  topicPrefix: string;
  log: Logger;
  /** Stamps the receipts it signs. */
  clock: Clock;
}

export interface FinishedUpload {
  id: string;
  sha256: string;
  size: number;
  metadata: Record<string, string | null>;
  path: string;
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

function listen(server: net.Server, port: number, host: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) =>
      reject(new Error(`embedded HQ: cannot listen for ${what} on ${host}:${port}: ${e.code ?? e.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * A loopback HQ for the out-of-the-box setup and for tests: a real tus 1.0 server that re-hashes every finished upload
 * and refuses (and discards) one whose SHA-256 differs from its metadata, and an MQTT broker. Its receipts are signed
 * with its own Ed25519 key pair (kept in its dir), which the station trusts when no hq.receiptKey is configured.
 */
export class EmbeddedHq {
  readonly finished: FinishedUpload[] = [];
  private tusHttp: http.Server | null = null;
  private mqttServer: net.Server | null = null;
  private broker: Aedes | null = null;
  private keys: KeyPair | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: EmbeddedHqOptions) {
    this.log = opts.log.child({ component: 'embedded-hq' });
  }

  /** The public key its receipts are signed with (PEM); known once started. */
  get receiptPublicKeyPem(): string {
    if (!this.keys) throw new Error('embedded HQ not started');
    return this.keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  async start(): Promise<void> {
    this.keys = openKeyPair(path.join(this.opts.dir, 'receipt-key.pem'), path.join(this.opts.dir, 'receipt-key.pub.pem'));
    const tusUrl = new URL(this.opts.tusEndpoint);
    const filesDir = path.join(this.opts.dir, 'uploads');
    await fs.mkdir(filesDir, { recursive: true });
    const datastore = new FileStore({ directory: filesDir });
    const tus = new Server({
      path: tusUrl.pathname.replace(/\/$/, ''),
      datastore,
      respectForwardedHeaders: false,
      onUploadFinish: async (_req, upload: Upload) => this.verifyFinished(datastore, filesDir, upload),
    });
    // The receipt goes out after the client has its response, as a real HQ would send it after archiving.
    tus.on(EVENTS.POST_FINISH, (_req, _res, upload) => {
      const done = this.finished.find((f) => f.id === upload.id);
      if (done) setTimeout(() => this.sendReceipt(done), 50);
    });
    this.tusHttp = http.createServer((req, res) => {
      void tus.handle(req, res);
    });
    await listen(this.tusHttp, Number(tusUrl.port || 80), tusUrl.hostname, 'tus');

    const mqttUrl = new URL(this.opts.mqttUrl);
    this.broker = await Aedes.createBroker();
    this.mqttServer = net.createServer(this.broker.handle as unknown as (s: net.Socket) => void);
    await listen(this.mqttServer, Number(mqttUrl.port || 1883), mqttUrl.hostname, 'MQTT');
    this.log.info(
      { tus: this.opts.tusEndpoint, mqtt: this.opts.mqttUrl, dir: this.opts.dir },
      'embedded HQ listening (loopback)',
    );
  }

  private async verifyFinished(datastore: FileStore, filesDir: string, upload: Upload): Promise<Record<string, never>> {
    const file = path.join(filesDir, upload.id);
    const expected = upload.metadata?.sha256 ?? '';
    const actual = await sha256File(file);
    if (actual !== expected) {
      this.log.error({ id: upload.id, expected, actual }, 'upload refused: SHA-256 differs from its metadata');
      await datastore.remove(upload.id).catch(() => {});
      throw { status_code: 460, body: `sha256 mismatch: expected ${expected}, received ${actual}\n` };
    }
    this.finished.push({ id: upload.id, sha256: actual, size: upload.size ?? 0, metadata: upload.metadata ?? {}, path: file });
    this.log.info({ id: upload.id, sha256: actual, size: upload.size }, 'upload verified');
    return {};
  }

  private sendReceipt(f: FinishedUpload): void {
    const station = f.metadata.stationId;
    if (!this.broker || !station || !this.keys) return;
    const topic = `${this.opts.topicPrefix}/${station}/receipt`;
    const receipt = signReceipt(this.keys.privateKey, {
      stationId: station,
      sha256: f.sha256,
      ok: true,
      at: this.opts.clock.now().toISOString(),
    });
    this.broker.publish(
      { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(receipt)), qos: 1, retain: false, dup: false },
      (err) => {
        if (err) this.log.error({ err, topic }, 'cannot publish receipt');
        else this.log.info({ topic, sha256: f.sha256 }, 'receipt sent');
      },
    );
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      if (!this.tusHttp) return r();
      this.tusHttp.closeAllConnections();
      this.tusHttp.close(() => r());
    });
    await new Promise<void>((r) => (this.broker ? this.broker.close(() => r()) : r()));
    await new Promise<void>((r) => (this.mqttServer ? this.mqttServer.close(() => r()) : r()));
  }
}
