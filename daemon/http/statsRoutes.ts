import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { DeviceEntry } from '../config.ts';
import { parsePeriod } from '../stats/period.ts';
import { nameGroups, statsCsv } from '../stats/statsTable.ts';
import type { Catalog } from '../store/catalog.ts';
import { STATS_GROUPINGS, type StatsGrouping } from '../store/statistics.ts';
import { actorFields } from './access.ts';
import { fail } from './requestAuth.ts';

export interface StatsContext {
  catalog: Catalog;
  stationId: string;
  /** The station's time zone: a DATE of the period is a day there. */
  timeZone: string;
  /** rules.offloadWithinHours */
  offloadWithinHours: number;
  devices: DeviceEntry[];
}

// Chart.js's self-contained browser build, served by the station itself (no CDN: a station may have no internet).
const CHART_JS = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');

/**
 * Statistics (统计分析) for the station page and scripts: case data, so a logged-in user only (as /api/files); an
 * officer counts their own recordings, an admin all. Each look is on the record (调阅留痕).
 */
export function registerStatsRoutes(app: FastifyInstance, ctx: StatsContext): void {
  let chartJs: Buffer | null = null;
  app.get('/vendor/chart.umd.min.js', { config: { access: 'public' } }, async (_req, reply) => {
    chartJs ??= readFileSync(CHART_JS);
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=86400').send(chartJs);
  });

  app.get<{ Querystring: { from?: string; to?: string; by: StatsGrouping; format: 'json' | 'csv' } }>(
    '/api/stats',
    {
      config: { access: 'user' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { type: 'string', maxLength: 40 },
            to: { type: 'string', maxLength: 40 },
            by: { type: 'string', enum: [...STATS_GROUPINGS], default: 'officer' },
            format: { type: 'string', enum: ['json', 'csv'], default: 'json' },
          },
        },
      },
    },
    async (req, reply) => {
      const v = req.viewer!;
      const period = parsePeriod(req.query.from, req.query.to, ctx.timeZone);
      if (!period.ok) return fail(reply, 400, 'INVALID', period.message.replace(/^--(from|to) /, '$1 '));
      const admin = v.kind === 'user' && v.user.role === 'admin';
      const officerId = admin ? null : v.kind === 'user' ? (v.user.officerId ?? '') : '';
      const stats = nameGroups(
        ctx.catalog.statistics({
          by: req.query.by,
          from: period.from,
          to: period.to,
          offloadWithinHours: ctx.offloadWithinHours,
          officerId,
        }),
        ctx.devices,
      );
      ctx.catalog.audit('http.stats-viewed', null, {
        grouping: stats.by,
        periodFrom: stats.from,
        periodTo: stats.to,
        format: req.query.format,
        groups: stats.groups.length,
        ...actorFields(v),
      });
      if (req.query.format === 'json') return reply.header('cache-control', 'no-store').send(stats);
      const name = `dockd-stats-${ctx.stationId}-${stats.by}${stats.from ? `-from-${stats.from.slice(0, 10)}` : ''}${stats.to ? `-to-${stats.to.slice(0, 10)}` : ''}.csv`;
      // A byte order mark, so that a spreadsheet opens the names as UTF-8 (dockctl stats --csv writes none).
      return reply
        .type('text/csv; charset=utf-8; header=present')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('cache-control', 'no-store')
        .send(`\ufeff${statsCsv(stats)}`);
    },
  );
}
