import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import type { Catalog } from '../store/catalog.ts';
import type { UserStore } from '../store/users.ts';
import { cookieValue, SESSION_COOKIE, sessionCookie, sourceAddress, type Authenticator } from './auth.ts';
import { isLoopbackHost } from '../security/loopback.ts';
import { MAX_PASSWORD_LENGTH } from '../security/password.ts';
import { failAuth } from './requestAuth.ts';

export interface SessionContext {
  catalog: Catalog;
  users: UserStore;
  authenticator: Authenticator;
  log: Logger;
  sessionMs: number;
  secureCookies: boolean;
  kiosk: boolean;
}

const NO_BODY = { type: 'object', additionalProperties: false, properties: {} };

/** Login (officer id + PIN, or admin name + password), logout, and who the page is talking as. */
export function registerSessionRoutes(app: FastifyInstance, ctx: SessionContext): void {
  const { catalog, users, log } = ctx;

  app.get('/api/session', { config: { access: 'public' } }, async (req) => {
    const v = req.viewer;
    return {
      authenticated: v?.kind === 'user',
      user: v?.kind === 'user' ? { name: v.user.name, role: v.user.role, officerId: v.user.officerId } : null,
      // The bay tiles are shown without a login here (http.kiosk, on the station's own screen).
      kiosk: ctx.kiosk && isLoopbackHost(sourceAddress(req.ip)),
      tls: ctx.secureCookies,
    };
  });

  app.post<{ Body: { user: string; password: string } }>(
    '/api/login',
    {
      config: { access: 'public' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['user', 'password'],
          properties: {
            user: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
          },
        },
      },
    },
    async (req, reply) => {
      const from = sourceAddress(req.ip);
      const r = await ctx.authenticator.check(req.body.user, req.body.password, from);
      if (!r.ok) return failAuth(reply, r);
      // A login replaces the session this browser had.
      users.revokeSession(cookieValue(req.headers.cookie, SESSION_COOKIE));
      const { token, expiresAt } = users.openSession(r.user.id, from, ctx.sessionMs);
      catalog.audit('http.login', r.user.name, {
        user: r.user.name,
        role: r.user.role,
        officerId: r.user.officerId,
        from,
        expiresAt,
      });
      log.info({ user: r.user.name, role: r.user.role, from }, 'logged in on the station page');
      reply.header('set-cookie', sessionCookie(token, Math.floor(ctx.sessionMs / 1000), ctx.secureCookies));
      return { ok: true, user: { name: r.user.name, role: r.user.role, officerId: r.user.officerId }, expiresAt };
    },
  );

  app.post('/api/logout', { config: { access: 'public' }, schema: { body: NO_BODY } }, async (req, reply) => {
    const v = req.viewer;
    const ended = users.revokeSession(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (ended && v?.kind === 'user') {
      catalog.audit('http.logout', v.user.name, { user: v.user.name, role: v.user.role, from: v.from });
      log.info({ user: v.user.name, from: v.from }, 'logged out of the station page');
    }
    reply.header('set-cookie', sessionCookie('', 0, ctx.secureCookies));
    return { ok: true, ended };
  });
}
