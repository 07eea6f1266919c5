import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { Ajv } from 'ajv';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { EventBus } from '../events.ts';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import type { Catalog } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import { systemTimeZone } from '../ingest/fileName.ts';
import { AdminAuth, isLoopbackHost } from './auth.ts';
import { LiveStream } from './liveStream.ts';
import { StationMetrics } from './metrics.ts';
import { fail, registerApi } from './routes.ts';
import { RateMeter, stationState, type StationState } from './stationState.ts';
import { Thumbnails } from './thumbnails.ts';

export const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

/** Sent with every response: the page loads only its own assets and cannot be framed. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export interface HttpDeps {
  config: Config; catalog: Catalog; objects: ObjectStore; board: StatusBoard; bus: EventBus; log: Logger;
  /** The status snapshot (the same JSON as the retained MQTT state). */
  snapshot: () => StateSnapshot;
  /** Upload bytes sent so far by this process (for the speed and /metrics). */
  bytesSent: () => number;
}

// Unknown keys are refused (not silently dropped); query strings and path parameters are text, so they may be
// coerced to the schema's types, but a JSON body must already have the right types ("caseNo": 1 is refused).
const ajvParams = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: 'array', allErrors: false, strict: false });
const ajvBody = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: false, allErrors: false, strict: false });

function requestValidator({ schema, httpPart }: { schema: object; httpPart?: string }) {
  if (httpPart !== 'body') return ajvParams.compile(schema);
  const validate = ajvBody.compile(schema);
  // A body schema without required keys also accepts no body at all (e.g. POST …/ack).
  const optional = !(schema as { required?: string[] }).required?.length;
  const fn = (data: unknown): boolean => {
    if ((data === undefined || data === null) && optional) return true;
    const ok = validate(data);
    fn.errors = validate.errors;
    return ok;
  };
  fn.errors = null as typeof validate.errors;
  return fn;
}

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

/**
 * The station page, its JSON API, the live stream (server-sent events) and /metrics, on http.listen (fastify).
 * A failure to listen (say the port is taken) is logged and contained: dockd goes on without its page.
 */
export class HttpServer {
  private app: FastifyInstance | null = null;
  private live: LiveStream | null = null;
  private rate: RateMeter | null = null;
  private thumbnails: Thumbnails | null = null;
  private readonly log: Logger;
  /** The address actually listened on (after start), e.g. for tests with port 0. */
  address: string | null = null;

  constructor(private readonly deps: HttpDeps) {
    this.log = deps.log.child({ component: 'http' });
  }

  async start(): Promise<void> {
    const { config, catalog, board, bus } = this.deps;
    const { host, port } = splitListen(config.http.listen);
    const loopback = isLoopbackHost(host);
    const authRequired = !loopback;
    const auth = new AdminAuth({
      hash: config.http.adminPasswordHash, maxFailures: config.http.maxFailures, lockoutMs: config.http.lockoutSeconds * 1000, now: Date.now,
      onFailure: (failures, lockedUntil) => {
        if (lockedUntil) {
          const until = new Date(lockedUntil).toISOString();
          this.log.warn({ failures, until }, 'admin login locked after repeated wrong passwords');
          catalog.audit('http.lockout', null, { failures, until });
        } else {
          this.log.warn({ failures }, 'wrong admin password');
          catalog.audit('http.login-failed', null, { failures });
        }
      },
    });
    if (authRequired && !auth.configured) this.log.warn({ listen: config.http.listen }, 'the station page is reachable beyond loopback but http.adminPassword is not set: annotating and acknowledging are refused');

    this.rate = new RateMeter(this.deps.bytesSent);
    const state = (): StationState => stationState(this.deps.snapshot(), catalog, this.rate!.perSecond());
    this.live = new LiveStream({ bus, state, log: this.log, headers: SECURITY_HEADERS });
    this.thumbnails = new Thumbnails({ storageDir: config.storage.dir, objects: this.deps.objects, catalog, log: this.log });
    const metrics = new StationMetrics({ catalog, state, bytesSent: this.deps.bytesSent });

    const app = Fastify({
      // fastify's own lines only from warn up (no per-request lines, no duplicate 'listening').
      loggerInstance: this.log.child({}, { level: this.log.levelVal > 40 ? this.log.level : 'warn' }) as unknown as FastifyBaseLogger, disableRequestLogging: true, bodyLimit: 64 * 1024, maxParamLength: 400,
      forceCloseConnections: true, return503OnClosing: true,
    });
    app.setValidatorCompiler(requestValidator);
    app.addHook('onRequest', async (req, reply) => {
      // A loopback-only page answers only to loopback names (no DNS rebinding onto it).
      const hostHeader = req.headers.host ?? '';
      if (loopback && !isLoopbackHost(hostHeader.replace(/:\d+$/, ''))) return fail(reply, 403, 'FORBIDDEN_HOST', `this page answers only to loopback names, not ${hostHeader}`);
      // A change must come from this page (or a non-browser client), never from another site.
      const origin = req.headers.origin;
      if (req.method !== 'GET' && req.method !== 'HEAD' && origin && origin !== 'null') {
        let originHost = '';
        try { originHost = new URL(origin).host; } catch { /* refused below */ }
        if (originHost !== hostHeader) return fail(reply, 403, 'FORBIDDEN_ORIGIN', `cross-origin change refused (${origin})`);
      }
    });
    app.addHook('onSend', async (_req, reply) => { for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v); });
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
      if (err.validation) return fail(reply, 400, 'INVALID_REQUEST', err.message);
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) return fail(reply, status, err.code ?? 'BAD_REQUEST', err.message);
      this.log.error({ err: err.message, method: req.method, url: req.url }, 'request failed');
      return fail(reply, 500, 'INTERNAL', 'internal error (see the dockd log)');
    });
    app.setNotFoundHandler((req, reply) => fail(reply, 404, 'NOT_FOUND', `no such resource: ${req.method} ${req.url.split('?')[0]}`));
    await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/', index: 'index.html', cacheControl: true, maxAge: 0, dotfiles: 'deny' });
    registerApi(app, { catalog, board, bus, log: this.log, state, live: this.live, metrics, thumbnails: this.thumbnails, auth, authRequired,
      securityHeaders: SECURITY_HEADERS, timeZone: config.station.timeZone ?? systemTimeZone() });

    try {
      await app.listen({ host, port });
    } catch (e) {
      this.log.error({ listen: config.http.listen, err: (e as Error).message }, 'station page not served: cannot listen (dockd goes on without it)');
      await app.close().catch(() => {});
      return;
    }
    this.app = app;
    this.rate.start();
    this.live.start();
    const addr = app.server.address();
    this.address = addr && typeof addr === 'object' ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : config.http.listen;
    this.log.info({ url: `http://${this.address}/`, auth: authRequired ? (auth.configured ? 'admin password for changes' : 'changes refused: no admin password') : 'open (loopback only)' }, 'station page listening');
  }

  /** Stops taking requests and ends the live streams (so a stop does not wait for browsers). */
  async stop(): Promise<void> {
    this.live?.stop();
    this.rate?.stop();
    this.thumbnails?.stop();
    const app = this.app;
    this.app = null;
    if (app) await app.close();
  }
}
