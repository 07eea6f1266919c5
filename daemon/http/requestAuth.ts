import type { FastifyInstance, FastifyReply } from 'fastify';
import type { UserStore } from '../store/users.ts';
import type { Viewer } from './access.ts';
import { basicCredentials, cookieValue, SESSION_COOKIE, sourceAddress, type AuthFailure, type Authenticator } from './auth.ts';
import { isLoopbackHost } from '../security/loopback.ts';
import { MAX_PASSWORD_LENGTH } from '../security/password.ts';

/**
 * Who may use a route: `public` (the page's assets, login, logout, session), `tiles` (a logged-in user, or the
 * kiosk screen on loopback, which sees bay tiles only), `user` (any logged-in user), `admin`.
 */
export type Access = 'public' | 'tiles' | 'user' | 'admin';

declare module 'fastify' {
  interface FastifyRequest {
    viewer: Viewer | null;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** A clear JSON error: `{error: CODE, message}`. */
export function fail(
  reply: FastifyReply,
  status: number,
  error: string,
  message: string,
  extra: Record<string, unknown> = {},
): FastifyReply {
  return reply.code(status).send({ error, message, ...extra });
}

export function failAuth(reply: FastifyReply, r: AuthFailure): FastifyReply {
  const { ok: _ok, status, code, message, ...extra } = r;
  if (code === 'LOCKED_OUT') reply.header('retry-after', String(r.retryAfterSeconds));
  return fail(reply, status, code, message, extra);
}

/**
 * Sets `req.viewer` on every request (a session cookie, else HTTP Basic credentials for scripts, else the kiosk
 * screen on loopback when http.kiosk is on) and refuses a route the viewer may not use: 401 without a user, 403
 * without the role. Runs before the body is read.
 */
export function installAccessControl(
  app: FastifyInstance,
  o: { users: UserStore; authenticator: Authenticator; kiosk: boolean },
): void {
  app.decorateRequest('viewer', null);
  app.addHook('onRequest', async (req, reply) => {
    // An API route that names no access (say one added later without thinking of it) is for admins only.
    const access: Access = req.routeOptions.config?.access ?? (req.routeOptions.url?.startsWith('/api/') ? 'admin' : 'public');
    const from = sourceAddress(req.ip);
    const user = o.users.sessionUser(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (user) req.viewer = { kind: 'user', user, from };
    else if (access !== 'public' && req.headers.authorization) {
      const basic = basicCredentials(req.headers.authorization);
      if (!basic?.login || basic.login.length > 64 || !basic.password || basic.password.length > MAX_PASSWORD_LENGTH) {
        return fail(
          reply,
          400,
          'INVALID_CREDENTIALS',
          'Authorization: Basic needs a login (officer id or admin name) and a password of 1-1024 characters',
        );
      }
      const r = await o.authenticator.check(basic.login, basic.password, from);
      if (!r.ok) return failAuth(reply, r);
      req.viewer = { kind: 'user', user: r.user, from };
    } else if (o.kiosk && isLoopbackHost(from)) req.viewer = { kind: 'kiosk', from };
    if (access === 'public') return;
    const v = req.viewer;
    if (!v || (access !== 'tiles' && v.kind !== 'user')) {
      reply.header('www-authenticate', 'DockdSession realm="dockd"');
      return fail(
        reply,
        401,
        'AUTH_REQUIRED',
        '请先登录 log in first (POST /api/login, or HTTP Basic with an officer id or admin name)',
      );
    }
    if (access === 'admin' && (v.kind !== 'user' || v.user.role !== 'admin')) {
      return fail(
        reply,
        403,
        'FORBIDDEN_ROLE',
        `需要管理员 this needs an admin (you are ${v.kind === 'user' ? `${v.user.name}, ${v.user.role}` : 'the kiosk'})`,
      );
    }
  });
}
