import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import { Server, type Upload } from '@tus/server';
import { freePort } from './ports.ts';

/** A FileStore that counts the body bytes it receives (to prove a resume did not start over). */
class CountingFileStore extends FileStore {
  received = 0;
  override write(readable: Readable, id: string, offset: number): Promise<number> {
    const counter = new Transform({
      transform: (chunk, _enc, cb) => {
        this.received += chunk.length;
        cb(null, chunk);
      },
    });
    readable.on('error', (e) => counter.destroy(e));
    return super.write(readable.pipe(counter), id, offset);
  }
}

export interface ServerUpload {
  id: string;
  sha256: string;
  size: number;
  metadata: Record<string, string | null>;
}

/** A real @tus/server (tus 1.0) on a free loopback port; re-hashes each finished upload and refuses a mismatch. */
export class TusTestServer {
  readonly finished: ServerUpload[] = [];
  readonly refused: string[] = [];
  store!: CountingFileStore;
  port = 0;
  private http: http.Server | null = null;
  /** When set, every request waits this long before being handled (a slow HQ). */
  delayMs = 0;
  /** The Authorization header of every request, in order. */
  readonly authorizations: (string | undefined)[] = [];
  /**
   * When set, a request without exactly this Authorization header is refused (401); `echoRefused`: the refusal repeats
   * the credential it got (as some servers do in their error text).
   */
  auth: { expect: string; echoRefused?: boolean } | null = null;

  constructor(private readonly dir: string) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/files/`;
  }
  get bytesReceived(): number {
    return this.store.received;
  }

  async start(port?: number): Promise<void> {
    if (port) this.port = port;
    if (!this.port) this.port = await freePort();
    await fs.mkdir(this.dir, { recursive: true });
    if (!this.store) this.store = new CountingFileStore({ directory: this.dir });
    const tus = new Server({
      path: '/files',
      datastore: this.store,
      onUploadFinish: async (_req, upload: Upload) => {
        const h = createHash('sha256');
        for await (const c of createReadStream(path.join(this.dir, upload.id))) h.update(c as Buffer);
        const sha256 = h.digest('hex');
        if (sha256 !== upload.metadata?.sha256) {
          this.refused.push(upload.id);
          throw { status_code: 460, body: 'sha256 mismatch\n' };
        }
        this.finished.push({ id: upload.id, sha256, size: upload.size ?? 0, metadata: upload.metadata ?? {} });
        return {};
      },
    });
    this.http = http.createServer((req, res) => {
      this.authorizations.push(req.headers.authorization);
      if (this.auth && req.headers.authorization !== this.auth.expect) {
        res.writeHead(401, { 'Tus-Resumable': '1.0.0' });
        res.end(this.auth.echoRefused ? `invalid credentials: ${req.headers.authorization}` : 'unauthorized\n');
        return;
      }
      if (this.delayMs) setTimeout(() => void tus.handle(req, res), this.delayMs);
      else void tus.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', reject);
      this.http!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.http;
    this.http = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/** Every upload the tus server's FileStore was asked to create (finished or not), from its `<id>.json` records. */
export async function uploadsCreated(hqDir: string): Promise<{ id: string; metadata: Record<string, string | null> }[]> {
  const out: { id: string; metadata: Record<string, string | null> }[] = [];
  for (const name of await fs.readdir(hqDir)) {
    if (!name.endsWith('.json')) continue;
    const info = JSON.parse(await fs.readFile(path.join(hqDir, name), 'utf8')) as {
      id: string;
      metadata?: Record<string, string | null>;
    };
    out.push({ id: info.id, metadata: info.metadata ?? {} });
  }
  return out;
}
