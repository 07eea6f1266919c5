import type { ServerResponse } from 'node:http';
import type { EventBus } from '../events.ts';
import type { Logger } from '../log.ts';

const MIN_INTERVAL_MS = 250; // as the MQTT state: at most four snapshots a second
const REFRESH_MS = 10_000;
const HEARTBEAT_MS = 15_000;
const MAX_CLIENTS = 32;

/**
 * Server-sent events: every client gets the station state at once, then on every state change (throttled like the
 * retained MQTT state, at most four times a second, trailing edge so the last change is always sent) and every 10 s.
 */
export class LiveStream {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastAt = 0;
  private off: (() => void) | null = null;

  constructor(private readonly deps: { bus: EventBus; state: () => unknown; log: Logger; headers: Record<string, string> }) {}

  get size(): number { return this.clients.size; }

  start(): void {
    this.off = this.deps.bus.on('state.changed', () => this.schedule());
    this.refresh = setInterval(() => this.schedule(), REFRESH_MS);
    this.heartbeat = setInterval(() => { for (const c of this.clients) c.write(': ping\n\n'); }, HEARTBEAT_MS);
  }

  stop(): void {
    this.off?.();
    for (const t of [this.timer, this.refresh, this.heartbeat]) if (t) clearTimeout(t);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  /** Takes over a response: false when too many clients are connected already. */
  attach(res: ServerResponse): boolean {
    if (this.clients.size >= MAX_CLIENTS) return false;
    res.writeHead(200, {
      ...this.deps.headers,
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    res.on('close', drop);
    res.on('error', drop);
    this.send(res, this.frame());
    return true;
  }

  private schedule(): void {
    if (this.timer || !this.clients.size) return;
    const wait = Math.max(0, MIN_INTERVAL_MS - (Date.now() - this.lastAt));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lastAt = Date.now();
      if (!this.clients.size) return;
      const frame = this.frame();
      for (const c of this.clients) this.send(c, frame);
    }, wait);
  }

  private frame(): string {
    try { return `event: state\ndata: ${JSON.stringify(this.deps.state())}\n\n`; }
    catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, 'cannot build the live state');
      return '';
    }
  }

  private send(c: ServerResponse, frame: string): void {
    if (frame && !c.writableEnded) c.write(frame);
  }
}
