import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import type { Catalog } from '../store/catalog.ts';
import type { UserStore } from '../store/users.ts';
import { actorFields, actorName, viewState, type Viewer } from './access.ts';
import { cookieValue, SESSION_COOKIE, sourceAddress } from './auth.ts';
import { isLoopbackHost } from '../security/loopback.ts';
import type { LiveStream } from './liveStream.ts';
import type { StationMetrics } from './metrics.ts';
import { fail } from './requestAuth.ts';
import type { StationState } from './stationState.ts';

export interface StationContext {
  catalog: Catalog;
  board: StatusBoard;
  log: Logger;
  users: UserStore;
  state: () => StationState;
  live: LiveStream;
  metrics: StationMetrics;
  /** http.metricsToken: /metrics needs it as a bearer token; without one, /metrics answers loopback clients only. */
  metricsToken?: string;
  securityHeaders: Record<string, string>;
}

const NO_BODY = { type: 'object', additionalProperties: false, properties: {} };
const digest = (s: string) => createHash('sha256').update(s).digest();

/** The live picture (state, live stream, alarms), acknowledging alarms, and /metrics. */
export function registerStationRoutes(app: FastifyInstance, ctx: StationContext): void {
  const { catalog, board, log, users } = ctx;
  const view = (v: Viewer) => viewState(ctx.state(), v, catalog);

  app.get('/api/state', { config: { access: 'tiles' } }, async (req) => view(req.viewer!));

  app.get('/api/events', { config: { access: 'tiles' } }, (req, reply) => {
    const v = req.viewer!;
    const token = cookieValue(req.headers.cookie, SESSION_COOKIE);
    // A stream of a logged-in user lasts as long as the session it was opened with (Basic credentials: as the user).
    let stillValid = () => true;
    if (v.kind === 'user') {
      const bySession = users.sessionUser(token)?.id === v.user.id;
      stillValid = bySession
        ? () => users.sessionUser(token)?.id === v.user.id
        : () => users.get(v.user.name)?.disabled === false;
    }
    reply.hijack();
    const refused = ctx.live.attach(reply.raw, v, v.kind === 'user' ? `user:${v.user.id}` : `kiosk:${v.from}`, stillValid);
    if (refused) {
      reply.raw.writeHead(503, {
        ...ctx.securityHeaders,
        'content-type': 'application/json; charset=utf-8',
        'retry-after': '10',
      });
      reply.raw.end(JSON.stringify({ error: refused.code, message: refused.message }));
    }
  });

  app.get('/api/alarms', { config: { access: 'tiles' } }, async (req) => view(req.viewer!).alarms);

  app.post<{ Params: { key: string } }>(
    '/api/alarms/:key/ack',
    {
      config: { access: 'admin' },
      schema: {
        params: {
          type: 'object',
          required: ['key'],
          additionalProperties: false,
          properties: { key: { type: 'string', minLength: 1, maxLength: 300 } },
        },
        body: NO_BODY,
      },
    },
    async (req, reply) => {
      const existing = board.alarms.get(req.params.key);
      if (!existing) return fail(reply, 404, 'NOT_FOUND', `no active alarm ${req.params.key} (it may have cleared)`);
      const already = Boolean(existing.acknowledged);
      const v = req.viewer!;
      const by = actorName(v);
      const a = board.acknowledge(req.params.key, by)!;
      if (!already) {
        catalog.audit('alarm.acknowledged', a.key, {
          code: a.code,
          message: a.message,
          since: a.since,
          at: a.acknowledgedAt,
          ...actorFields(v),
        });
        log.info({ key: a.key, code: a.code, by }, 'alarm acknowledged');
      }
      return { ok: true, alreadyAcknowledged: already, alarm: { ...a, acknowledged: true } };
    },
  );

  app.get('/metrics', async (req, reply) => {
    if (ctx.metricsToken) {
      const m = (req.headers.authorization ?? '').match(/^Bearer\s+(\S{1,512})\s*$/i);
      if (!m || !timingSafeEqual(digest(m[1]), digest(ctx.metricsToken))) {
        reply.header('www-authenticate', 'Bearer realm="dockd metrics"');
        return fail(reply, 401, 'AUTH_REQUIRED', '/metrics needs the bearer token of http.metricsToken');
      }
    } else if (!isLoopbackHost(sourceAddress(req.ip))) {
      return fail(
        reply,
        403,
        'LOOPBACK_ONLY',
        '/metrics answers loopback clients only; set http.metricsToken to scrape it from elsewhere',
      );
    }
    return reply.type(ctx.metrics.contentType).send(await ctx.metrics.render());
  });
}
