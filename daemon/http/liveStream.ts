import type { ServerResponse } from 'node:http';
import type { EventBus } from '../events.ts';
import type { Logger } from '../log.ts';
import { viewKey, type Viewer } from './access.ts';

const MIN_INTERVAL_MS = 250; // as the MQTT state: at most four snapshots a second
const REFRESH_MS = 10_000;
const HEARTBEAT_MS = 15_000;

/** Live connections allowed: per user (or, for the kiosk, per address), of all users, and of the kiosk. */
export const LIVE_LIMITS = { perOwner: 4, users: 64, kiosk: 8 } as const;

interface Client {
  res: ServerResponse;
  viewer: Viewer;
  key: string;
  /** `user:<id>`, or `kiosk:<address>`: whose connection it is, for the per-user cap. */
  owner: string;
  /** False once the session behind it has ended (logout, expiry, a disabled user): the stream is then closed. */
  stillValid: () => boolean;
}

export type AttachRefusal = { code: 'TOO_MANY_CONNECTIONS'; message: string };

/**
 * Server-sent events: every client gets the station state at once, as its viewer may see it, then on every state
 * change (throttled like the retained MQTT state, at most four times a second, trailing edge so the last change is
 * always sent) and every 10 s. Connections are capped per user, so nobody can take the station screen's place; a
 * stream whose session ends is closed.
 */
export class LiveStream {
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastAt = 0;
  private off: (() => void) | null = null;

  constructor(
    private readonly deps: {
      bus: EventBus;
      log: Logger;
      headers: Record<string, string>;
      /** Milliseconds now (the station's clock), for the throttle. */
      ms: () => number;
      /** The state as one viewer may see it (computed once per kind of viewer and frame). */
      view: (viewer: Viewer) => unknown;
    },
  ) {}

  get size(): number {
    return this.clients.size;
  }

  start(): void {
    this.off = this.deps.bus.on('state.changed', () => this.schedule());
    this.refresh = setInterval(() => {
      this.dropEnded();
      this.schedule();
    }, REFRESH_MS);
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) c.res.write(': ping\n\n');
    }, HEARTBEAT_MS);
  }

  stop(): void {
    this.off?.();
    for (const t of [this.timer, this.refresh, this.heartbeat]) if (t) clearTimeout(t);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  /** Takes over a response, or says why not (the caller answers 503). */
  attach(res: ServerResponse, viewer: Viewer, owner: string, stillValid: () => boolean): AttachRefusal | null {
    const kiosk = viewer.kind === 'kiosk';
    let mine = 0;
    let sameKind = 0;
    for (const c of this.clients) {
      if (c.owner === owner) mine++;
      if ((c.viewer.kind === 'kiosk') === kiosk) sameKind++;
    }
    if (mine >= LIVE_LIMITS.perOwner)
      return {
        code: 'TOO_MANY_CONNECTIONS',
        message: `at most ${LIVE_LIMITS.perOwner} live connections per ${kiosk ? 'address' : 'user'}; close another page first`,
      };
    if (sameKind >= (kiosk ? LIVE_LIMITS.kiosk : LIVE_LIMITS.users))
      return { code: 'TOO_MANY_CONNECTIONS', message: 'too many live connections; try again later' };
    res.writeHead(200, {
      ...this.deps.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const client: Client = { res, viewer, key: viewKey(viewer), owner, stillValid };
    this.clients.add(client);
    const drop = () => this.clients.delete(client);
    res.on('close', drop);
    res.on('error', drop);
    this.send(client, this.frame(viewer));
    return null;
  }

  /** Ends the streams whose session is over (the page then asks for a login again). */
  dropEnded(): void {
    for (const c of this.clients) {
      let valid = false;
      try {
        valid = c.stillValid();
      } catch {
        /* the catalog is closing: end it */
      }
      if (valid) continue;
      this.clients.delete(c);
      if (!c.res.writableEnded) c.res.end('event: session-ended\ndata: {}\n\n');
    }
  }

  private schedule(): void {
    if (this.timer || !this.clients.size) return;
    const wait = Math.max(0, MIN_INTERVAL_MS - (this.deps.ms() - this.lastAt));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lastAt = this.deps.ms();
      const frames = new Map<string, string>();
      for (const c of this.clients) {
        let f = frames.get(c.key);
        if (f === undefined) {
          f = this.frame(c.viewer);
          frames.set(c.key, f);
        }
        this.send(c, f);
      }
    }, wait);
  }

  private frame(viewer: Viewer): string {
    try {
      return `event: state\ndata: ${JSON.stringify(this.deps.view(viewer))}\n\n`;
    } catch (e) {
      this.deps.log.warn({ err: e }, 'cannot build the live state');
      return '';
    }
  }

  private send(c: Client, frame: string): void {
    if (frame && !c.res.writableEnded) c.res.write(frame);
  }
}
