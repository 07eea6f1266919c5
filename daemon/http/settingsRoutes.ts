import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { writeUploadSettings, type UploadSettings } from '../configEdit.ts';
import type { ConfigChanges } from '../configReload.ts';
import type { Catalog } from '../store/catalog.ts';
import { actorFields } from './access.ts';
import { fail } from './routes.ts';

/** How the page changes the config: the file to write, and the reload that follows (what SIGHUP does). */
export interface ConfigFileAccess {
  file: string;
  reload: () => ConfigChanges;
}

export interface SettingsRouteContext extends ConfigFileAccess {
  /** The running config (read for what is in force now). */
  config: Config;
  catalog: Catalog;
}

const WINDOW = '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$';

const BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['maxBytesPerSecond', 'windows'],
  properties: {
    maxBytesPerSecond: { type: 'integer', minimum: 0, maximum: 1e12 },
    windows: { type: 'array', maxItems: 24, items: { type: 'string', pattern: WINDOW } },
  },
};

/**
 * The upload cap and windows (hq.tus.maxBytesPerSecond, hq.tus.windows) on the station page, for admins. A change is
 * written into the config file (which stays the one source of truth), audited with the admin's name, then applied as
 * SIGHUP applies it (the reload logs and audits `config.reloaded` as usual).
 */
export function registerSettingsRoutes(app: FastifyInstance, ctx: SettingsRouteContext): void {
  const current = (): UploadSettings => ({
    maxBytesPerSecond: ctx.config.hq.tus.maxBytesPerSecond,
    windows: [...ctx.config.hq.tus.windows],
  });

  app.get('/api/settings/upload', { config: { access: 'admin' } }, async () => ({ ...current(), file: ctx.file }));

  app.post<{ Body: UploadSettings }>(
    '/api/settings/upload',
    { config: { access: 'admin' }, schema: { body: BODY } },
    async (req, reply) => {
      const before = current();
      try {
        writeUploadSettings(ctx.file, req.body);
      } catch (e) {
        return fail(reply, 409, 'CONFIG_NOT_CHANGED', (e as Error).message);
      }
      ctx.catalog.audit('config.edited', 'hq.tus', { file: ctx.file, ...actorFields(req.viewer!), old: before, new: req.body });
      const changes = ctx.reload();
      return { ok: true, ...current(), applied: changes.applied.map((c) => c.key), needRestart: changes.needRestart };
    },
  );
}
