import http from 'node:http';
import { freePort } from './ports.ts';

/**
 * An HTTP front for a real tus server that, while `refusing`, answers every creation POST with a refusal of HQ's own
 * (403, as an HQ that has not enrolled the station yet), and forwards everything else, and everything once it stops.
 */
export class RefusingFront {
  port = 0;
  refusing = true;
  refusals = 0;
  private server: http.Server | null = null;

  constructor(private readonly targetPort: number) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/files/`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = http.createServer((req, res) => {
      if (this.refusing && req.method === 'POST') {
        this.refusals++;
        req.resume();
        res.writeHead(403, { 'Tus-Resumable': '1.0.0', 'Content-Type': 'text/plain' }).end('station not enrolled at HQ\n');
        return;
      }
      const up = http.request(
        { host: '127.0.0.1', port: this.targetPort, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.on('error', () => up.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
