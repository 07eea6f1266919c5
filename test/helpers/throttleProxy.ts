import net from 'node:net';
import { freePort } from './ports.ts';

const TICK_MS = 20;
const HIGH_WATER = 256 * 1024;

/** One direction of one proxied connection: bytes read from `src`, waiting to be written to `dst`. */
interface Pipe {
  src: net.Socket;
  dst: net.Socket;
  queue: Buffer[];
  queued: number;
  ended: boolean;
  /** Client → server: counts against the rate limit. */
  limited: boolean;
}

interface Conn {
  client: net.Socket;
  upstream: net.Socket;
  pipes: [Pipe, Pipe];
}

/**
 * A TCP proxy on loopback in front of a real server, for tests that need a slow or broken link: it limits the bytes
 * per second from client to server (a shared token bucket), can pause all traffic (connections stay open, nothing
 * moves: a stall), resume, and drop every connection at once (a network cut). Nothing protocol-specific.
 */
export class ThrottleProxy {
  port = 0;
  /** Bytes forwarded from clients to the server so far. */
  bytesUp = 0;
  private server: net.Server | null = null;
  private readonly conns = new Set<Conn>();
  private timer: NodeJS.Timeout | null = null;
  private tokens = 0;
  private lastTick = Date.now();
  private paused = false;
  private refusing = false;

  /** `bytesPerSecond`: the client → server rate (Infinity: unlimited). Server → client is never limited. */
  constructor(
    private readonly target: { host?: string; port: number },
    private bytesPerSecond = Infinity,
  ) {}

  /** Open proxied connections. */
  get connections(): number {
    return this.conns.size;
  }

  async start(port?: number): Promise<void> {
    if (port) this.port = port;
    if (!this.port) this.port = await freePort();
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.dropAll();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  setRate(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
  }

  /** Nothing moves in either direction (new connections are accepted but held too) until resume(). */
  pause(): void {
    this.paused = true;
    for (const c of this.conns) for (const p of c.pipes) p.src.pause();
  }

  resume(): void {
    this.paused = false;
    this.lastTick = Date.now();
    for (const c of this.conns) for (const p of c.pipes) this.flush(p);
  }

  /** New connections are closed at once (the server looks down), existing ones are untouched. */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** Destroys every open connection, both sides, dropping whatever was queued (a cut cable). */
  dropAll(): void {
    for (const c of [...this.conns]) {
      c.client.destroy();
      c.upstream.destroy();
    }
    this.conns.clear();
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host ?? '127.0.0.1');
    const up: Pipe = { src: client, dst: upstream, queue: [], queued: 0, ended: false, limited: true };
    const down: Pipe = { src: upstream, dst: client, queue: [], queued: 0, ended: false, limited: false };
    const conn: Conn = { client, upstream, pipes: [up, down] };
    this.conns.add(conn);
    // An abrupt end of either side (reset, error) is passed on as one; a clean half-close is passed on in order.
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    const forget = () => {
      if (client.destroyed && upstream.destroyed) this.conns.delete(conn);
    };
    for (const p of conn.pipes) {
      p.src.on('data', (chunk: Buffer) => {
        p.queue.push(chunk);
        p.queued += chunk.length;
        if (p.queued > HIGH_WATER || this.paused) p.src.pause();
        this.flush(p);
      });
      // A half-close is passed on once everything queued before it has been written.
      p.src.on('end', () => {
        p.ended = true;
        this.flush(p);
      });
      p.src.on('error', close);
      p.src.on('close', () => {
        if (!p.ended) close();
        forget();
      });
      p.dst.on('drain', () => this.flush(p));
    }
    if (this.paused) {
      client.pause();
      upstream.pause();
    }
  }

  private tick(): void {
    const now = Date.now();
    const dt = (now - this.lastTick) / 1000;
    this.lastTick = now;
    if (this.paused) return;
    if (Number.isFinite(this.bytesPerSecond)) {
      // At most a tenth of a second of burst.
      this.tokens = Math.min(this.tokens + this.bytesPerSecond * dt, Math.max(this.bytesPerSecond / 10, 1));
    }
    for (const c of this.conns) for (const p of c.pipes) this.flush(p);
  }

  private flush(p: Pipe): void {
    if (this.paused) return;
    const unlimited = !p.limited || !Number.isFinite(this.bytesPerSecond);
    // Backpressure: bytes wait here (and the source is paused) while the destination has not taken the last ones.
    while (p.queued > 0 && p.dst.writableLength < HIGH_WATER) {
      const budget = unlimited ? p.queued : Math.floor(this.tokens);
      if (budget <= 0) break;
      const head = p.queue[0];
      const n = Math.min(head.length, budget);
      const piece = n === head.length ? p.queue.shift()! : head.subarray(0, n);
      if (n < head.length) p.queue[0] = head.subarray(n);
      p.queued -= n;
      if (!unlimited) this.tokens -= n;
      if (p.limited) this.bytesUp += n;
      if (!p.dst.destroyed) p.dst.write(piece);
    }
    if (p.queued <= HIGH_WATER / 2 && p.dst.writableLength < HIGH_WATER && !p.ended && !p.src.destroyed) p.src.resume();
    if (p.ended && p.queued === 0 && !p.dst.destroyed && !p.dst.writableEnded) p.dst.end();
  }
}
