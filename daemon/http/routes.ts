import fs from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EventBus } from '../events.ts';
import { annotateRecording, MAX_ANNOTATION_FIELD, type AnnotateErrorCode } from '../ingest/annotate.ts';
import { parseCapturedAt } from '../ingest/capturedAt.ts';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import { FILE_STATES, type Catalog, type FileState } from '../store/catalog.ts';
import { publicFile } from '../store/publicFile.ts';
import { AdminAuth, SESSION_COOKIE, SESSION_MAX_AGE_S, basicPassword, cookieValue } from './auth.ts';
import type { LiveStream } from './liveStream.ts';
import type { StationMetrics } from './metrics.ts';
import type { StationState } from './stationState.ts';
import type { Thumbnails } from './thumbnails.ts';

export interface ApiContext {
  catalog: Catalog; board: StatusBoard; bus: EventBus; log: Logger;
  state: () => StationState; live: LiveStream; metrics: StationMetrics; thumbnails: Thumbnails;
  auth: AdminAuth;
  /** Changes need the admin password (the page listens beyond loopback). */
  authRequired: boolean;
  /** The station's time zone, for a capture time given as wall time. */
  timeZone: string;
  securityHeaders: Record<string, string>;
}

const text = (max = MAX_ANNOTATION_FIELD) => ({ type: 'string', maxLength: max });
const ID_PARAM = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: { type: 'string', pattern: '^([0-9]{1,12}|[0-9a-fA-F]{6,64})$' } } };
const NO_BODY = { type: 'object', additionalProperties: false, properties: {} };

/** A clear JSON error: `{error: CODE, message}`. */
export function fail(reply: FastifyReply, status: number, error: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(status).send({ error, message, ...extra });
}

const ANNOTATE_STATUS: Record<AnnotateErrorCode, number> = { INVALID: 400, NOT_FOUND: 404, NOT_ANNOTATABLE: 409, CONFLICT: 409 };

export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  const { catalog, board, bus, log, auth } = ctx;

  /** Who made a change, for the audit trail: the admin (authenticated) or the loopback page, and from where. */
  const actor = (req: FastifyRequest) => `${ctx.authRequired ? 'admin' : 'station page'}@${req.ip}`;

  /** preHandler of every change: open on a loopback-only page; otherwise a session cookie or the password (Basic). */
  async function requireAdmin(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!ctx.authRequired) return;
    if (auth.hasSession(cookieValue(req.headers.cookie, SESSION_COOKIE))) return;
    const password = basicPassword(req.headers.authorization);
    if (password === undefined) {
      reply.header('www-authenticate', 'DockdSession realm="dockd"');
      await fail(reply, 401, 'AUTH_REQUIRED', 'log in as admin (POST /api/login) or send the admin password (Authorization: Basic)');
      return;
    }
    const r = await auth.checkPassword(password);
    if (r.ok) return;
    if (r.code === 'LOCKED_OUT') reply.header('retry-after', String(r.retryAfterSeconds));
    await fail(reply, r.status, r.code, r.message, r.code === 'LOCKED_OUT' ? { retryAfterSeconds: r.retryAfterSeconds } : {});
  }

  app.get('/api/state', async () => ctx.state());

  app.get('/api/events', (req, reply) => {
    reply.hijack();
    if (!ctx.live.attach(reply.raw)) {
      reply.raw.writeHead(503, { ...ctx.securityHeaders, 'content-type': 'application/json; charset=utf-8', 'retry-after': '10' });
      reply.raw.end(JSON.stringify({ error: 'TOO_MANY_CLIENTS', message: 'too many live connections; try again later' }));
    }
  });

  app.get<{ Querystring: { state?: FileState; limit?: number } }>('/api/files', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { state: { type: 'string', enum: FILE_STATES }, limit: { type: 'integer', minimum: 1, maximum: 100_000, default: 10_000 } },
      },
    },
  }, async (req) => catalog.list(req.query.state).slice(0, req.query.limit).map(publicFile));

  app.get<{ Params: { id: string } }>('/api/files/:id', { schema: { params: ID_PARAM } }, async (req, reply) => {
    const { file, error } = catalog.resolve(req.params.id);
    return file ? publicFile(file) : fail(reply, 404, 'NOT_FOUND', error!);
  });

  app.post<{ Params: { id: string }; Body: { caseNo: string; purpose: string; place?: string; collector?: string; capturedAt?: string } }>('/api/files/:id/annotate', {
    preHandler: requireAdmin,
    schema: {
      params: ID_PARAM,
      body: {
        type: 'object', additionalProperties: false, required: ['caseNo', 'purpose'],
        properties: {
          caseNo: { ...text(), minLength: 1, pattern: '\\S' }, purpose: { ...text(), minLength: 1, pattern: '\\S' }, place: text(), collector: text(),
          // Only for a recording with no capture time; parseCapturedAt checks it is a real date and time (ISO 8601 with an offset).
          capturedAt: text(40),
        },
      },
    },
  }, async (req, reply) => {
    const by = actor(req);
    const input = { ...req.body };
    if (input.capturedAt?.trim()) {
      // A wall time without an offset (as a datetime-local field gives it) is station time; the same strict check as dockctl.
      const t = parseCapturedAt(input.capturedAt, { wallTimeZone: ctx.timeZone });
      if (!t.ok) return fail(reply, 400, 'INVALID', t.message);
      input.capturedAt = t.iso;
    }
    const r = annotateRecording(catalog, req.params.id, input, by);
    if (!r.ok) return fail(reply, ANNOTATE_STATUS[r.code], r.code, r.message);
    log.info({ file: r.file.id, state: r.state, by }, 'recording annotated from the station page');
    bus.emit('state.changed');
    if (r.state === 'ready') bus.emit('upload.wanted');
    return { ok: true, state: r.state, missing: r.missing, reason: r.reason, file: publicFile(r.file) };
  });

  app.get<{ Params: { id: string } }>('/api/files/:id/thumbnail', { schema: { params: ID_PARAM } }, async (req, reply) => {
    const { file, error } = catalog.resolve(req.params.id);
    if (!file) return fail(reply, 404, 'NOT_FOUND', error!);
    const t = await ctx.thumbnails.get(file);
    if (!t.ok) return fail(reply, t.code === 'FAILED' ? 422 : 404, t.code, t.message);
    return reply.type('image/jpeg').header('cache-control', 'private, max-age=86400, immutable').send(await fs.readFile(t.file));
  });

  app.get('/api/alarms', async () => ctx.state().alarms);

  app.post<{ Params: { key: string } }>('/api/alarms/:key/ack', {
    preHandler: requireAdmin,
    schema: {
      params: { type: 'object', required: ['key'], additionalProperties: false, properties: { key: { type: 'string', minLength: 1, maxLength: 300 } } },
      body: NO_BODY,
    },
  }, async (req, reply) => {
    const existing = board.alarms.get(req.params.key);
    if (!existing) return fail(reply, 404, 'NOT_FOUND', `no active alarm ${req.params.key} (it may have cleared)`);
    const already = Boolean(existing.acknowledged);
    const by = actor(req);
    const a = board.acknowledge(req.params.key, by)!;
    if (!already) {
      catalog.audit('alarm.acknowledged', a.key, { code: a.code, message: a.message, since: a.since, by, at: a.acknowledgedAt });
      log.info({ key: a.key, code: a.code, by }, 'alarm acknowledged');
    }
    return { ok: true, alreadyAcknowledged: already, alarm: { ...a, acknowledged: true } };
  });

  app.get('/api/session', async (req) => ({
    required: ctx.authRequired, configured: auth.configured,
    authenticated: !ctx.authRequired || auth.hasSession(cookieValue(req.headers.cookie, SESSION_COOKIE)),
    lockedForSeconds: Math.ceil(auth.lockedForMs() / 1000),
  }));

  app.post<{ Body: { password: string } }>('/api/login', {
    schema: { body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password: { type: 'string', minLength: 1, maxLength: 1024 } } } },
  }, async (req, reply) => {
    const r = await auth.checkPassword(req.body.password);
    if (!r.ok) {
      if (r.code === 'LOCKED_OUT') reply.header('retry-after', String(r.retryAfterSeconds));
      const { ok: _ok, status, code, message, ...extra } = r;
      return fail(reply, status, code, message, extra);
    }
    catalog.audit('http.login', null, { from: req.ip });
    log.info({ from: req.ip }, 'admin logged in on the station page');
    reply.header('set-cookie', `${SESSION_COOKIE}=${auth.openSession()}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}`);
    return { ok: true };
  });

  app.post('/api/logout', { schema: { body: NO_BODY } }, async (req, reply) => {
    auth.closeSession(cookieValue(req.headers.cookie, SESSION_COOKIE));
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return { ok: true };
  });

  app.get('/metrics', async (_req, reply) => reply.type(ctx.metrics.contentType).send(await ctx.metrics.render()));
}
