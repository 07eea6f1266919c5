import fs from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EventBus } from '../events.ts';
import { annotateRecording, MAX_ANNOTATION_FIELD, type AnnotateErrorCode } from '../ingest/annotate.ts';
import { parseCapturedAt } from '../media/capturedAt.ts';
import type { Logger } from '../log.ts';
import { FILE_STATES, type Catalog, type FileRow, type FileState } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import { publicFile } from '../store/publicFile.ts';
import { actorFields, actorName, mayRead } from './access.ts';
import { fail } from './requestAuth.ts';
import type { Thumbnails } from './thumbnails.ts';
import type { MediaTools } from '../media/ffprobe.ts';
import { reprobe } from '../ingest/reprobe.ts';

export { fail } from './requestAuth.ts';

/** The recordings API: the catalog, one recording, its thumbnail, its export, its annotation. */
export interface ApiContext {
  catalog: Catalog;
  objects: ObjectStore;
  bus: EventBus;
  log: Logger;
  thumbnails: Thumbnails;
  media: MediaTools;
  stationId: string;
  /** The station's time zone, for a capture time given as wall time. */
  timeZone: string;
  /** The station's time. */
  now: () => Date;
}

interface FilesQuery {
  state?: FileState;
  limit: number;
  order: 'asc' | 'desc';
  after?: number;
  officer?: string;
  caseNo?: string;
  from?: string;
  to?: string;
}

const text = (max = MAX_ANNOTATION_FIELD) => ({ type: 'string', maxLength: max });
const ID_PARAM = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^([0-9]{1,12}|[0-9a-fA-F]{6,64})$' } },
};

const ANNOTATE_STATUS: Record<AnnotateErrorCode, number> = { INVALID: 400, NOT_FOUND: 404, NOT_ANNOTATABLE: 409, CONFLICT: 409 };

/**
 * Every read of case data here is behind a login and on the record (调阅留痕): listing the catalog, viewing a
 * recording or its thumbnail, exporting it; each audit entry names the user, the role and the source address. An
 * officer reaches only recordings that carry their own officer id; another officer's answer exactly as an unknown
 * id does (404), and the attempt is audited.
 */
export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  const { catalog, bus, log } = ctx;

  /** The recording this viewer may read, or null once the reply (404) is sent. */
  function readable(req: FastifyRequest, reply: FastifyReply, id: string, action: string): FileRow | null {
    const v = req.viewer!;
    const { file, error } = catalog.resolve(id);
    if (!file) {
      void fail(reply, 404, 'NOT_FOUND', error!);
      return null;
    }
    if (!mayRead(v, file)) {
      catalog.audit('http.denied', file.sha256, { id: file.id, action, ...actorFields(v) });
      log.warn({ file: file.id, action, by: actorName(v) }, 'refused a recording of another officer');
      void fail(reply, 404, 'NOT_FOUND', `no recording with id ${id}`);
      return null;
    }
    return file;
  }

  app.get<{ Querystring: FilesQuery }>(
    '/api/files',
    {
      config: { access: 'user' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: FILE_STATES },
            limit: { type: 'integer', minimum: 1, maximum: 100_000, default: 10_000 },
            order: { type: 'string', enum: ['asc', 'desc'], default: 'asc' },
            after: { type: 'integer', minimum: 0 },
            officer: { type: 'string', minLength: 1, maxLength: 64 },
            caseNo: { type: 'string', minLength: 1, maxLength: MAX_ANNOTATION_FIELD },
            from: {
              type: 'string',
              pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})?)?$',
            },
            to: {
              type: 'string',
              pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})?)?$',
            },
          },
        },
      },
    },
    async (req, reply) => {
      const v = req.viewer!;
      const q = req.query;
      // An officer sees only their own recordings, whatever officer they ask for.
      const own = v.kind === 'user' && v.user.role === 'admin' ? null : v.kind === 'user' ? (v.user.officerId ?? '') : '';
      const rows = catalog.page(
        {
          state: q.state,
          officerId: own ?? q.officer ?? null,
          caseNo: q.caseNo,
          capturedFrom: q.from,
          capturedBefore: q.to,
        },
        { order: q.order === 'desc' ? 'desc' : 'asc', after: q.after, limit: q.limit },
      );
      // The cursor of the next page, when there may be one: GET /api/files?…&after=<it>.
      if (rows.length === q.limit) void reply.header('x-next-after', String(rows[rows.length - 1].id));
      catalog.audit('http.files-listed', null, {
        state: q.state ?? null,
        order: q.order,
        count: rows.length,
        ...(q.after != null ? { after: q.after } : {}),
        ...(q.officer ? { officer: q.officer } : {}),
        ...(q.caseNo ? { caseNo: q.caseNo } : {}),
        ...(q.from ? { from: q.from } : {}),
        ...(q.to ? { to: q.to } : {}),
        ...actorFields(v),
      });
      return rows.map(publicFile);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/files/:id',
    { config: { access: 'user' }, schema: { params: ID_PARAM } },
    async (req, reply) => {
      const file = readable(req, reply, req.params.id, 'view');
      if (!file) return reply;
      catalog.audit('file.viewed', file.sha256, { id: file.id, what: 'details', ...actorFields(req.viewer!) });
      return publicFile(file);
    },
  );

  app.post<{
    Params: { id: string };
    Body: { caseNo: string; purpose: string; place?: string; collector?: string; capturedAt?: string };
  }>(
    '/api/files/:id/annotate',
    {
      config: { access: 'user' },
      schema: {
        params: ID_PARAM,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['caseNo', 'purpose'],
          properties: {
            caseNo: { ...text(), minLength: 1, pattern: '\\S' },
            purpose: { ...text(), minLength: 1, pattern: '\\S' },
            place: text(),
            collector: text(),
            // Only for a recording with no capture time; parseCapturedAt checks it is a real date and time (ISO 8601 with an offset).
            capturedAt: text(40),
          },
        },
      },
    },
    async (req, reply) => {
      const v = req.viewer!;
      const by = actorName(v);
      if (!readable(req, reply, req.params.id, 'annotate')) return reply;
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
    },
  );

  // Verify a stored recording again (a damaged one, or one whose probe could not run): admins; audited with who asked.
  app.post<{ Params: { id: string } }>(
    '/api/files/:id/reprobe',
    { config: { access: 'admin' }, schema: { params: ID_PARAM } },
    async (req, reply) => {
      const file = readable(req, reply, req.params.id, 'reprobe');
      if (!file) return reply;
      const by = actorName(req.viewer!);
      const r = await reprobe(
        { catalog, objects: ctx.objects, media: ctx.media, timeZone: ctx.timeZone, stationId: ctx.stationId, log, now: ctx.now },
        file,
        by,
        actorFields(req.viewer!),
      );
      log.info({ file: file.id, by, ok: r.ok, message: r.message }, 'recording probed again from the station page');
      if (!r.ok) return fail(reply, 409, 'NO_VERDICT', r.message);
      bus.emit('state.changed');
      if (r.file?.state === 'ready') bus.emit('upload.wanted');
      return { ok: true, message: r.message, file: publicFile(r.file!) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/files/:id/thumbnail',
    { config: { access: 'user' }, schema: { params: ID_PARAM } },
    async (req, reply) => {
      const file = readable(req, reply, req.params.id, 'thumbnail');
      if (!file) return reply;
      const t = await ctx.thumbnails.get(file);
      if (!t.ok) return fail(reply, t.code === 'FAILED' ? 422 : 404, t.code, t.message);
      catalog.audit('file.viewed', file.sha256, { id: file.id, what: 'thumbnail', ...actorFields(req.viewer!) });
      // Evidence frames are not left in a shared browser's cache after logout.
      return reply
        .type('image/jpeg')
        .header('cache-control', 'no-store')
        .send(await fs.readFile(t.file));
    },
  );

  // The stored object itself, as a download (admins only); the export is audited before the first byte leaves.
  app.get<{ Params: { id: string } }>(
    '/api/files/:id/export',
    { config: { access: 'admin' }, schema: { params: ID_PARAM } },
    async (req, reply) => {
      const file = readable(req, reply, req.params.id, 'export');
      if (!file) return reply;
      if (!file.sha256) return fail(reply, 409, 'NOT_STORED', `recording #${file.id} is not stored yet`);
      if (file.local_deleted_at)
        return fail(
          reply,
          410,
          'FREED',
          `recording #${file.id} was freed at the station after HQ archived it (${file.local_deleted_at}); retrieve it from HQ`,
        );
      const source = ctx.objects.pathOf(file.sha256);
      const handle = await fs.open(source, 'r').catch(() => null);
      if (!handle)
        return fail(reply, 410, 'NO_OBJECT', `the stored copy of recording #${file.id} is missing (run dockctl verify)`);
      const entry = catalog.audit('file.exported', file.sha256, { id: file.id, via: 'http', ...actorFields(req.viewer!) });
      log.info({ file: file.id, by: actorName(req.viewer!) }, 'recording exported from the station page');
      const name = `${file.id}-${file.filename}`;
      return reply
        .type('application/octet-stream')
        .header('content-length', String(file.size))
        .header(
          'content-disposition',
          `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
        )
        .header('repr-digest', `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`)
        .header('x-dockd-sha256', file.sha256)
        .header('x-dockd-audit-seq', String(entry.seq))
        .header('cache-control', 'no-store')
        .send(handle.createReadStream());
    },
  );
}
