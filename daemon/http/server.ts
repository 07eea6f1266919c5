import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../packageRoot.ts';
import fastifyStatic from '@fastify/static';
import { Ajv } from 'ajv';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import type { PoolRecorders } from '../pool/poolRecorders.ts';
import { restrictCatalogFiles } from '../users/catalogFiles.ts';
import { viewState } from './access.ts';
import { Authenticator, type AuthNotice } from './auth.ts';
import { isLoopbackHost } from '../security/loopback.ts';
import { splitListen } from '../httpConfig.ts';
import { LiveStream } from './liveStream.ts';
import { LoginGuard } from './loginGuard.ts';
import { StationMetrics } from './metrics.ts';
import { installAccessControl } from './requestAuth.ts';
import { fail, registerApi } from './routes.ts';
import { registerPoolRoutes } from './poolRoutes.ts';
import { registerSessionRoutes } from './sessionRoutes.ts';
import { type ConfigFileAccess, registerSettingsRoutes } from './settingsRoutes.ts';
import { registerStationRoutes } from './stationRoutes.ts';
import { registerStatsRoutes } from './statsRoutes.ts';
import { RateMeter, stationState, type StationState } from './stationState.ts';
import { Thumbnails } from './thumbnails.ts';

export { splitListen } from '../httpConfig.ts';

export const PUBLIC_DIR = path.join(PACKAGE_ROOT, 'daemon', 'http', 'public');

/** Sent with every response: the page loads only its own assets and cannot be framed. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** The longest lockout of an account or an address (each lockout doubles the one before, from http.lockoutSeconds). */
const MAX_LOCKOUT_MS = 24 * 3600_000;

/** What the station page needs beyond the station's context. */
export interface HttpExtras {
  /** The status snapshot (the same JSON as the retained MQTT state). */
  snapshot: () => StateSnapshot;
  /** Upload bytes sent so far by this process (for the speed and /metrics). */
  bytesSent: () => number;
  /** Pool recorders (assign / return with an officer's PIN); the routes are absent without it. */
  pool?: PoolRecorders;
  /** The config file and its reload (the upload cap and windows on the page); the routes are absent without it. */
  configFile?: ConfigFileAccess;
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

/**
 * The station page, its JSON API, the live stream (server-sent events) and /metrics, on http.listen (fastify).
 * A failure to listen (say the port is taken) is logged and contained: dockd goes on without its page.
 */
export class HttpServer implements Service {
  readonly name = 'http';
  private app: FastifyInstance | null = null;
  private live: LiveStream | null = null;
  private rate: RateMeter | null = null;
  private thumbnails: Thumbnails | null = null;
  private readonly log: Logger;
  /** The address actually listened on (after start), e.g. for tests with port 0. */
  address: string | null = null;
  /** The page's URL (https when http.tls is set). */
  url: string | null = null;

  private readonly deps: StationContext & HttpExtras;

  constructor(ctx: StationContext, extra: HttpExtras) {
    this.deps = { ...ctx, ...extra };
    this.log = ctx.log.child({ component: 'http' });
  }

  async start(): Promise<void> {
    const { config, catalog, board, bus } = this.deps;
    const { host, port } = splitListen(config.http.listen);
    const loopback = isLoopbackHost(host);
    const https = config.http.tls ? this.readTls(config.http.tls) : undefined;
    if (config.http.tls && !https) return;
    if (!loopback && !https)
      this.log.warn(
        { listen: config.http.listen },
        'the station page is served as plain HTTP beyond loopback (http.allowPlainHttp): passwords and case data cross the network in clear',
      );

    restrictCatalogFiles(config.storage.dir, this.log);
    const users = catalog.users;
    if (config.http.adminPasswordHash) {
      const r = users.ensureConfigAdmin(config.http.adminPasswordHash);
      if (r === 'created')
        catalog.audit('user.added', 'admin', { user: 'admin', role: 'admin', by: 'config (http.adminPassword)' });
      if (r === 'managed-by-dockctl')
        this.log.warn('http.adminPassword is ignored: the user admin is managed with dockctl (remove the key)');
      else
        this.log.warn(
          'http.adminPassword is deprecated: it makes the user admin; manage users with dockctl user add|passwd|disable instead',
        );
    }
    users.pruneSessions(30 * 24 * 3600_000);
    const accounts = users.list().filter((u) => !u.disabled);
    if (!accounts.some((u) => u.role === 'admin'))
      this.log.warn('no admin can log in to the station page yet: add one with dockctl user add NAME --role admin');

    const guard = new LoginGuard({
      maxAccountFailures: config.http.maxFailures,
      maxSourceFailures: config.http.maxSourceFailures,
      baseLockMs: config.http.lockoutSeconds * 1000,
      maxLockMs: Math.max(MAX_LOCKOUT_MS, config.http.lockoutSeconds * 1000),
      now: () => this.deps.clock.ms(),
    });
    const authenticator = new Authenticator({ users, guard, notify: (n) => this.onAuthNotice(n) });

    this.rate = new RateMeter(this.deps.bytesSent, () => this.deps.clock.ms());
    const state = (): StationState => stationState(this.deps.snapshot(), catalog, this.rate!.perSecond());
    const headers = https ? { ...SECURITY_HEADERS, 'strict-transport-security': 'max-age=31536000' } : SECURITY_HEADERS;
    this.live = new LiveStream({
      bus,
      log: this.log,
      headers,
      ms: () => this.deps.clock.ms(),
      view: (v) => viewState(state(), v, catalog),
    });
    this.thumbnails = new Thumbnails({ storageDir: config.storage.dir, objects: this.deps.objects, catalog, log: this.log });
    const metrics = new StationMetrics({ catalog, state, bytesSent: this.deps.bytesSent });

    const timeoutMs = config.http.requestTimeoutSeconds * 1000;
    // Slow requests are cut off: the headers and the whole request must arrive in time (checked every second).
    const serverOptions = { headersTimeout: timeoutMs, requestTimeout: timeoutMs, connectionsCheckingInterval: 1000 };
    const app = Fastify({
      // fastify's own lines only from warn up (no per-request lines, no duplicate 'listening').
      loggerInstance: this.log.child(
        {},
        { level: this.log.levelVal > 40 ? this.log.level : 'warn' },
      ) as unknown as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: 64 * 1024,
      routerOptions: { maxParamLength: 400 },
      forceCloseConnections: true,
      return503OnClosing: true,
      requestTimeout: timeoutMs,
      ...(https ? { https: { ...https, ...serverOptions } } : { http: serverOptions }),
    } as FastifyServerOptions);
    app.setValidatorCompiler(requestValidator);
    // JSON only: a form or text body is refused with 415 (a cross-site form cannot post here).
    app.removeContentTypeParser(['text/plain']);
    app.addHook('onRequest', async (req, reply) => {
      // A loopback-only page answers only to loopback names (no DNS rebinding onto it).
      const hostHeader = req.headers.host ?? '';
      if (loopback && !isLoopbackHost(hostHeader.replace(/:\d+$/, '')))
        return fail(reply, 403, 'FORBIDDEN_HOST', `this page answers only to loopback names, not ${hostHeader}`);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        const refused = crossOrigin(req.headers, https ? 'https:' : 'http:');
        if (refused) {
          this.log.warn(
            { method: req.method, url: req.url.split('?')[0], origin: refused, from: req.ip },
            'cross-origin change refused',
          );
          return fail(reply, 403, 'FORBIDDEN_ORIGIN', `cross-origin change refused (${refused})`);
        }
      }
    });
    installAccessControl(app, { users, authenticator, kiosk: config.http.kiosk });
    app.addHook('onSend', async (_req, reply) => {
      for (const [k, v] of Object.entries(headers)) reply.header(k, v);
    });
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
      if (err.validation) return fail(reply, 400, 'INVALID_REQUEST', err.message);
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) return fail(reply, status, err.code ?? 'BAD_REQUEST', err.message);
      this.log.error({ err, method: req.method, url: req.url }, 'request failed');
      return fail(reply, 500, 'INTERNAL', 'internal error (see the dockd log)');
    });
    app.setNotFoundHandler((req, reply) =>
      fail(reply, 404, 'NOT_FOUND', `no such resource: ${req.method} ${req.url.split('?')[0]}`),
    );
    await app.register(fastifyStatic, {
      root: PUBLIC_DIR,
      prefix: '/',
      index: 'index.html',
      cacheControl: true,
      maxAge: 0,
      dotfiles: 'deny',
    });
    registerSessionRoutes(app, {
      catalog,
      users,
      authenticator,
      log: this.log,
      sessionMs: config.http.sessionHours * 3600_000,
      secureCookies: Boolean(https),
      kiosk: config.http.kiosk,
    });
    registerStationRoutes(app, {
      catalog,
      board,
      log: this.log,
      users,
      state,
      live: this.live,
      metrics,
      metricsToken: config.http.metricsToken,
      securityHeaders: headers,
    });
    if (this.deps.pool) registerPoolRoutes(app, { pool: this.deps.pool, authenticator });
    if (this.deps.configFile) registerSettingsRoutes(app, { ...this.deps.configFile, config, catalog });
    registerApi(app, {
      catalog,
      objects: this.deps.objects,
      bus,
      log: this.log,
      thumbnails: this.thumbnails,
      timeZone: this.deps.timeZone,
      media: this.deps.host.media,
      stationId: config.station.id,
      now: () => this.deps.clock.now(),
    });
    registerStatsRoutes(app, {
      catalog,
      stationId: config.station.id,
      timeZone: this.deps.timeZone,
      offloadWithinHours: config.rules.offloadWithinHours,
      devices: config.devices,
    });

    try {
      await app.listen({ host, port });
    } catch (e) {
      this.log.error({ listen: config.http.listen, err: e }, 'station page not served: cannot listen (dockd goes on without it)');
      await app.close().catch(() => {});
      return;
    }
    this.app = app;
    this.rate.start();
    this.live.start();
    const addr = app.server.address();
    this.address =
      addr && typeof addr === 'object'
        ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
        : config.http.listen;
    this.url = `${https ? 'https' : 'http'}://${this.address}/`;
    this.log.info(
      {
        url: this.url,
        tls: Boolean(https),
        kiosk: config.http.kiosk,
        users: accounts.length,
        metrics: config.http.metricsToken ? 'bearer token' : 'loopback only',
      },
      'station page listening',
    );
  }

  private readTls(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } | undefined {
    try {
      return { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
    } catch (e) {
      this.log.error(
        { cert: tls.cert, key: tls.key, err: e },
        'station page not served: cannot read http.tls (dockd goes on without it)',
      );
      return undefined;
    }
  }

  private onAuthNotice(n: AuthNotice): void {
    const { catalog } = this.deps;
    if (n.type === 'lockout') {
      this.log.warn(
        { scope: n.scope, key: n.key, until: n.until, lockouts: n.lockouts },
        `login locked for this ${n.scope} after repeated wrong passwords`,
      );
      catalog.audit('http.lockout', n.scope === 'account' ? n.key : null, {
        scope: n.scope,
        [n.scope === 'account' ? 'user' : 'from']: n.key,
        until: n.until,
        lockouts: n.lockouts,
      });
    } else {
      this.log.warn({ user: n.login, from: n.from, reason: n.reason }, 'failed login on the station page');
      catalog.audit('http.login-failed', null, {
        user: n.login.slice(0, 64),
        from: n.from,
        reason: n.reason,
        ...(n.accountFailures !== undefined ? { accountFailures: n.accountFailures } : {}),
      });
    }
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

/**
 * Why a change (any method but GET/HEAD) is refused as cross-origin, or null: a browser's Origin must be this page's
 * own (scheme and host), `Origin: null` (a sandboxed frame, a file) is refused, and so is a request the browser marks
 * as coming from another site. A client that sends neither header (curl, a script) is not a browser page.
 */
export function crossOrigin(h: Record<string, string | string[] | undefined>, scheme: 'http:' | 'https:'): string | null {
  const origin = typeof h.origin === 'string' ? h.origin : undefined;
  const site = typeof h['sec-fetch-site'] === 'string' ? h['sec-fetch-site'] : undefined;
  if (site && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  if (origin === undefined) return null;
  let u: URL | null = null;
  try {
    u = new URL(origin);
  } catch {
    /* refused below */
  }
  if (!u || u.protocol !== scheme || u.host !== h.host) return origin;
  return null;
}
