import Database from 'better-sqlite3';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePeriod } from '../../daemon/stats/period.ts';
import { nameGroups, statsCsv } from '../../daemon/stats/statsTable.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import type { StatsQuery } from '../../daemon/store/statistics.ts';
import { parseCsv } from '../helpers/csv.ts';
import { writeStatsRows } from '../helpers/statsCatalog.ts';

const TZ = 'Asia/Shanghai';

describe('statistics over a generated catalog', () => {
  let dir: string;
  let catalog: Catalog;
  const q = (over: Partial<StatsQuery> = {}) => catalog.statistics({ by: 'officer', offloadWithinHours: 24, ...over });

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-stats-'));
    Catalog.open(dir).close();
    const db = new Database(path.join(dir, 'catalog.sqlite'));
    writeStatsRows(db);
    db.close();
    catalog = Catalog.open(dir);
  });

  afterAll(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('counts per officer, with totals and the median time from docking to HQ', () => {
    const s = q();
    expect(s.groups).toEqual([
      {
        key: '000001',
        recordings: 4,
        bytes: 1200,
        durationSeconds: 220,
        important: 1,
        late: 1,
        awaitingAnnotation: 0,
        atHq: 3,
        medianDockToHqSeconds: 600,
      },
      {
        key: '000002',
        recordings: 3,
        bytes: 1600,
        durationSeconds: 90,
        important: 1,
        late: 1,
        awaitingAnnotation: 1,
        atHq: 1,
        medianDockToHqSeconds: 3000,
      },
      {
        key: null,
        recordings: 1,
        bytes: 50,
        durationSeconds: 5,
        important: 0,
        late: 0,
        awaitingAnnotation: 1,
        atHq: 0,
        medianDockToHqSeconds: null,
      },
    ]);
    // The overall median is the mean of the two middle ones of 60, 600, 1200, 3000 s.
    expect(s.totals).toEqual({
      recordings: 8,
      bytes: 2850,
      durationSeconds: 315,
      important: 2,
      late: 2,
      awaitingAnnotation: 2,
      atHq: 4,
      medianDockToHqSeconds: 900,
    });
  });

  it('groups per recorder and per capture day', () => {
    expect(q({ by: 'device' }).groups.map((g) => [g.key, g.recordings, g.late])).toEqual([
      ['D000001', 4, 1],
      ['D000002', 3, 1],
      [null, 1, 0],
    ]);
    expect(q({ by: 'day' }).groups.map((g) => [g.key, g.recordings, g.bytes])).toEqual([
      ['2026-11-01', 1, 300],
      ['2026-11-02', 4, 1500],
      ['2026-11-03', 1, 400],
      ['2026-11-04', 1, 600],
      [null, 1, 50],
    ]);
  });

  it('late counts the flag stored at docking, as the LATE_OFFLOAD alarm does, not the rule of today', () => {
    // A later rule changes nothing for a flagged recording: the 25 h one stays late under a 26 h rule, the 30 h one under 31 h.
    expect(q({ offloadWithinHours: 26 }).groups.map((g) => [g.key, g.late])).toEqual([
      ['000001', 1],
      ['000002', 1],
      [null, 0],
    ]);
    expect(q({ offloadWithinHours: 31 }).totals.late).toBe(2);
    // A recording stored since the last check (late still NULL) counts as the check will flag it: by the rule given.
    expect(q({ offloadWithinHours: 11 }).groups.map((g) => [g.key, g.late])).toEqual([
      ['000001', 2],
      ['000002', 1],
      [null, 0],
    ]);
  });

  it('filters a period on capture time (days in station time, the last day included) and one officer', () => {
    const period = parsePeriod('2026-11-02', '2026-11-03', TZ);
    expect(period).toEqual({ ok: true, from: '2026-11-02T00:00:00+08:00', to: '2026-11-04T00:00:00+08:00' });
    if (!period.ok) return;
    const s = q({ by: 'day', from: period.from, to: period.to });
    expect(s.groups.map((g) => [g.key, g.recordings])).toEqual([
      ['2026-11-02', 4],
      ['2026-11-03', 1],
    ]);
    // An instant in another offset compares as an instant: 2026-11-02T02:00Z is 10:00 in station time.
    expect(q({ from: '2026-11-02T02:00:00Z', to: '2026-11-02T10:00:00+08:00' }).totals.recordings).toBe(0);
    expect(q({ from: '2026-11-02T01:59:59Z', to: '2026-11-02T10:00:01+08:00' }).totals.recordings).toBe(1);
    expect(q({ officerId: '000002' }).groups.map((g) => g.key)).toEqual(['000002']);
    expect(q({ officerId: 'nobody' }).groups).toEqual([]);
  });

  it('refuses a bad DATE with a clear message', () => {
    expect(parsePeriod('2026-02-30', null, TZ)).toEqual({
      ok: false,
      message: expect.stringMatching(/^--from "2026-02-30": February 2026 has no day 30/),
    });
    expect(parsePeriod(null, 'yesterday', TZ)).toMatchObject({ ok: false, message: expect.stringMatching(/^--to "yesterday"/) });
    expect(parsePeriod('2026-11-03', '2026-11-02', TZ)).toMatchObject({ ok: false, message: expect.stringMatching(/empty/) });
    expect(parsePeriod('2026-11-02T08:00', '2026-11-02T09:00:00Z', TZ)).toEqual({
      ok: true,
      from: '2026-11-02T08:00:00+08:00',
      to: '2026-11-02T09:00:00Z',
    });
  });

  it('writes CSV that parses back (RFC 4180 quoting of names)', () => {
    const named = nameGroups(q(), [
      { serial: 'D000001', officerId: '000001', officerName: 'Zhang, "Z" 张三' },
      { serial: 'D000002', officerId: '000002', officerName: '李四' },
    ]);
    const rows = parseCsv(statsCsv(named));
    expect(rows[0]).toEqual([
      'key',
      'name',
      'recordings',
      'bytes',
      'durationSeconds',
      'important',
      'late',
      'awaitingAnnotation',
      'atHq',
      'medianDockToHqSeconds',
    ]);
    expect(rows.slice(1)).toEqual([
      ['000001', 'Zhang, "Z" 张三', '4', '1200', '220', '1', '1', '0', '3', '600'],
      ['000002', '李四', '3', '1600', '90', '1', '1', '1', '1', '3000'],
      ['', '', '1', '50', '5', '0', '0', '1', '0', ''],
    ]);
  });

  it('has the capture-time index a period uses', () => {
    const db = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
    try {
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN SELECT COUNT(*) FROM files WHERE julianday(captured_at) >= julianday(?)`)
        .all('2026-11-02T00:00:00Z') as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toMatch(/files_captured_jd/);
    } finally {
      db.close();
    }
  });
});
