import type { FastifyInstance, FastifyReply } from 'fastify';
import type { PoolErrorCode, PoolOutcome, PoolRecorders } from '../pool/poolRecorders.ts';
import { actorName, isAdmin } from './access.ts';
import type { Authenticator } from './auth.ts';
import { MAX_PASSWORD_LENGTH } from '../security/password.ts';
import { failAuth } from './requestAuth.ts';
import { fail } from './routes.ts';

export interface PoolRouteContext {
  pool: PoolRecorders;
  authenticator: Authenticator;
}

const STATUS: Record<PoolErrorCode, number> = {
  UNKNOWN_RECORDER: 404,
  UNKNOWN_OFFICER: 404,
  NOT_CONNECTED: 409,
  HELD: 409,
  NOT_ASSIGNED: 409,
  RECORDER_FAILED: 502,
};

const BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['serial'],
  properties: {
    serial: { type: 'string', minLength: 1, maxLength: 64 },
    officerId: { type: 'string', minLength: 1, maxLength: 64 },
    pin: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
  },
};

function answer(reply: FastifyReply, o: PoolOutcome): unknown {
  return o.ok ? { ok: true, message: o.message, assignment: o.assignment } : fail(reply, STATUS[o.code], o.code, o.message);
}

/**
 * Pool recorders on the station page: an officer takes a docked recorder with their officer id and PIN (checked like
 * a login: same lockout, same audit of failures), on the station's own screen or any logged-in session; returning it
 * takes the holder's PIN, or an admin's session. The assignment is audited with the officer and the page it came from.
 */
export function registerPoolRoutes(app: FastifyInstance, ctx: PoolRouteContext): void {
  /** The officer named by the body, when their PIN is right; else the failure already sent. */
  async function officerByPin(
    body: { officerId?: string; pin?: string },
    from: string,
    reply: FastifyReply,
  ): Promise<{ name: string; officerId: string } | null> {
    if (!body.officerId || !body.pin) {
      fail(reply, 400, 'INVALID_REQUEST', 'officerId and pin are required');
      return null;
    }
    const r = await ctx.authenticator.check(body.officerId, body.pin, from);
    if (!r.ok) {
      failAuth(reply, r);
      return null;
    }
    if (r.user.role !== 'officer' || r.user.officerId !== body.officerId) {
      fail(reply, 403, 'NOT_AN_OFFICER', `${body.officerId} is not an officer's id`);
      return null;
    }
    return { name: r.user.name, officerId: body.officerId };
  }

  app.post<{ Body: { serial: string; officerId?: string; pin?: string } }>(
    '/api/pool/assign',
    { config: { access: 'tiles' }, schema: { body: BODY } },
    async (req, reply) => {
      const v = req.viewer!;
      const officer = await officerByPin(req.body, v.from, reply);
      if (!officer) return reply;
      const by = `${officer.name} (officer ${officer.officerId}, PIN) on ${actorName(v)}`;
      return answer(reply, await ctx.pool.assign(req.body.serial, officer.officerId, by));
    },
  );

  app.post<{ Body: { serial: string; officerId?: string; pin?: string } }>(
    '/api/pool/return',
    { config: { access: 'tiles' }, schema: { body: BODY } },
    async (req, reply) => {
      const v = req.viewer!;
      if (isAdmin(v)) return answer(reply, await ctx.pool.giveBack(req.body.serial, actorName(v)));
      const officer = await officerByPin(req.body, v.from, reply);
      if (!officer) return reply;
      const held = ctx.pool.assignments.held(req.body.serial);
      if (held && held.officerId !== officer.officerId)
        return fail(reply, 403, 'NOT_THE_HOLDER', `recorder ${req.body.serial} is held by another officer`);
      const by = `${officer.name} (officer ${officer.officerId}, PIN) on ${actorName(v)}`;
      return answer(reply, await ctx.pool.giveBack(req.body.serial, by));
    },
  );
}
