/**
 * A tus server as a process of its own, so that a test can kill it with SIGKILL in the middle of an upload, as a real
 * HQ machine dies. `node --import tsx tusServerProcess.ts IMPL PORT DIR`, IMPL one of:
 *   tus2  @tus/server 2 with @tus/file-store 2 (what dockd's other tests use)
 *   tus1  @tus/server 1.x with @tus/file-store 1.x (npm aliases tus-server-1, tus-file-store-1)
 *   tus09 tus-node-server 0.9 (npm alias tus-node-server-09), whose FileStore keeps upload records in a "configstore"
 *         (here a JSON file in DIR, so a restarted server still knows its uploads)
 * Every implementation stores uploads as files in DIR and re-hashes a finished one against its `sha256` metadata,
 * as HQ should. It reports on stdout, one JSON object a line: {listening}, {received} (bytes written into uploads
 * by this process, at most every 50 ms), {finished: {id, sha256, size, metadata}} and {refused: id}.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';

export type TusImpl = 'tus2' | 'tus1' | 'tus09';

const [impl, portArg, dir] = process.argv.slice(2) as [TusImpl, string, string];
const require = createRequire(import.meta.url);

function say(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

let received = 0;
// biome-ignore lint/correctness/noUnusedVariables: read by ??= below
let reportTimer: NodeJS.Timeout | null = null;
function counted(readable: Readable): Readable {
  const counter = new Transform({
    transform: (chunk: Buffer, _enc, cb) => {
      received += chunk.length;
      reportTimer ??= setTimeout(() => {
        reportTimer = null;
        say({ received });
      }, 50);
      cb(null, chunk);
    },
  });
  readable.on('error', (e) => counter.destroy(e));
  return readable.pipe(counter);
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Re-hash a finished upload; true when it matches its sha256 metadata (reported as finished), else refused. */
async function rehash(id: string, size: number, metadata: Record<string, string | null>): Promise<boolean> {
  const sha256 = await sha256Of(path.join(dir, id));
  if (sha256 !== metadata.sha256) {
    say({ refused: id });
    return false;
  }
  say({ finished: { id, sha256, size, metadata } });
  return true;
}

/** tus 1.0 Upload-Metadata header: comma-separated `key base64(value)` pairs, the value UTF-8. */
function decodeMetadata(header: string | undefined): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const pair of (header ?? '').split(',')) {
    const [k, v] = pair.trim().split(' ');
    if (k) out[k] = v === undefined ? null : Buffer.from(v, 'base64').toString('utf8');
  }
  return out;
}

/** tus-node-server 0.9's configstore interface, kept in one JSON file written atomically. */
class JsonConfigstore {
  private readonly file = path.join(dir, 'uploads.json');
  private all(): Record<string, unknown> {
    return existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, unknown>) : {};
  }
  private save(all: Record<string, unknown>): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(all));
    renameSync(`${this.file}.tmp`, this.file);
  }
  get(key: string): unknown {
    return this.all()[key];
  }
  set(key: string, value: unknown): void {
    const a = this.all();
    a[key] = JSON.parse(JSON.stringify(value));
    this.save(a);
  }
  delete(key: string): void {
    const a = this.all();
    delete a[key];
    this.save(a);
  }
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function makeHandler(): Promise<Handler> {
  if (impl === 'tus2') {
    const { Server } = await import('@tus/server');
    const { FileStore } = await import('@tus/file-store');
    class Counting extends FileStore {
      override write(r: Readable, id: string, offset: number) {
        return super.write(counted(r), id, offset);
      }
    }
    const server = new Server({
      path: '/files',
      datastore: new Counting({ directory: dir }),
      onUploadFinish: async (_req, upload) => {
        if (!(await rehash(upload.id, upload.size ?? 0, upload.metadata ?? {})))
          throw { status_code: 460, body: 'sha256 mismatch\n' };
        return {};
      },
    });
    return (req, res) => {
      void server.handle(req, res);
    };
  }
  if (impl === 'tus1') {
    const { Server } = require('tus-server-1') as typeof import('tus-server-1');
    const { FileStore } = require('tus-file-store-1') as typeof import('tus-file-store-1');
    class Counting extends FileStore {
      override write(r: Readable, id: string, offset: number) {
        return super.write(counted(r) as never, id, offset);
      }
    }
    const server = new Server({
      path: '/files',
      datastore: new Counting({ directory: dir }),
      onUploadFinish: async (_req, res, upload) => {
        if (!(await rehash(upload.id, upload.size ?? 0, upload.metadata ?? {})))
          throw { status_code: 460, body: 'sha256 mismatch\n' };
        return res;
      },
    });
    return (req, res) => {
      void server.handle(req, res);
    };
  }
  if (impl === 'tus09') {
    // Its index also loads the S3 and GCS stores (aws-sdk); only the server and the file store are needed.
    const Server = require('tus-node-server-09/lib/Server');
    const FileStore = require('tus-node-server-09/lib/stores/FileStore') as new (
      o: Record<string, unknown>,
    ) => { write(r: Readable, id: string, offset: number): Promise<number> };
    const { EVENTS } = require('tus-node-server-09/lib/constants');
    class Counting extends FileStore {
      write(r: Readable, id: string, offset: number) {
        return super.write(counted(r), id, offset);
      }
    }
    const server = new Server({ path: '/files' });
    server.datastore = new Counting({ path: '/files', directory: dir, configstore: new JsonConfigstore() });
    // 0.9 has no hook that can refuse a finished upload: the 204 is already decided. It is re-hashed all the same.
    server.on(
      EVENTS.EVENT_UPLOAD_COMPLETE,
      (event: { file: { id: string; upload_length: string; upload_metadata?: string } }) => {
        void rehash(event.file.id, Number(event.file.upload_length), decodeMetadata(event.file.upload_metadata));
      },
    );
    return (req, res) => {
      server.handle(req, res);
    };
  }
  throw new Error(`unknown tus implementation ${impl}`);
}

const handler = await makeHandler();
const httpServer = http.createServer(handler);
httpServer.listen(Number(portArg), '127.0.0.1', () => say({ listening: (httpServer.address() as { port: number }).port }));
process.on('SIGTERM', () => {
  httpServer.closeAllConnections();
  httpServer.close(() => process.exit(0));
});
