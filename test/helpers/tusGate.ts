import http from 'node:http';
import { freePort } from './ports.ts';

/**
 * An HTTP front for a real tus server that holds the requests of chosen methods (a creation POST or a PATCH that has
 * not reached HQ yet) until released, and forwards every other request at once: an upload that is certainly
 * unfinished at HQ while HQ still answers HEAD, whatever the machine's speed.
 */
export class TusGate {
  port = 0;
  private server: http.Server | null = null;
  private held = new Set<string>();
  private waiting: { method: string; go: () => void }[] = [];

  constructor(private readonly targetPort: number) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/files/`;
  }

  /** Requests held so far and not yet released. */
  get holding(): string[] {
    return this.waiting.map((w) => w.method);
  }

  hold(methods: string[]): void {
    for (const m of methods) this.held.add(m);
  }

  /** Stops holding `methods` and forwards the requests of those methods that wait. */
  release(methods: string[]): void {
    for (const m of methods) this.held.delete(m);
    const go = this.waiting.filter((w) => !this.held.has(w.method));
    this.waiting = this.waiting.filter((w) => this.held.has(w.method));
    for (const w of go) w.go();
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = http.createServer((req, res) => {
      const go = () => this.forward(req, res);
      if (this.held.has(req.method ?? '')) this.waiting.push({ method: req.method ?? '', go });
      else go();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.waiting = [];
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
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
  }
}
