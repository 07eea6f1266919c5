import Database from 'better-sqlite3';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Catalog } from '../../daemon/store/catalog.ts';
import { MIGRATIONS, SCHEMA_VERSION } from '../../daemon/store/schema.ts';
import { STATS_GROUPINGS, type StatsQuery } from '../../daemon/store/statistics.ts';
import { writeStatsRows } from '../helpers/statsCatalog.ts';

// Periods whose bounds fall on the capture days' midnights (per-day totals only) and periods that cut a day (that
// day counted from files), in the station's offset and in another.
const PERIODS: Pick<StatsQuery, 'from' | 'to'>[] = [
  {},
  { from: '2026-11-02T00:00:00+08:00', to: '2026-11-04T00:00:00+08:00' },
  { from: '2026-11-02T02:00:00Z' },
  { to: '2026-11-02T10:00:00+08:00' },
  { from: '2026-11-01T12:00:00+08:00', to: '2026-11-02T09:30:00+08:00' },
  { from: '2026-11-03T00:00:00Z', to: '2026-11-04T12:00:00Z' },
];

const QUERIES: StatsQuery[] = STATS_GROUPINGS.flatMap((by) =>
  PERIODS.flatMap((period) =>
    [null, '000001'].flatMap((officerId) =>
      [24, 11].map((offloadWithinHours) => ({ by, ...period, officerId, offloadWithinHours })),
    ),
  ),
);

describe('statistics from per-day totals (catalog schema 12)', () => {
  const dirs: string[] = [];
  const open: { close(): void }[] = [];
  const tempDir = async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-stats-summary-'));
    dirs.push(dir);
    return dir;
  };

  afterEach(async () => {
    for (const o of open.splice(0)) o.close();
    for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
  });

  /**
   * Every query's figures equal those of counting files: the same catalog copied and marked schema 11, which dockctl
   * reads as a catalog dockd has not migrated yet (one pass over files, each recording at HQ joined to its docking).
   */
  async function expectAsCounted(dir: string, catalog: Catalog): Promise<void> {
    const copyDir = await tempDir();
    const db = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
    db.exec(`VACUUM INTO '${path.join(copyDir, 'catalog.sqlite')}'`);
    db.close();
    const copy = new Database(path.join(copyDir, 'catalog.sqlite'));
    copy.pragma('user_version = 11');
    copy.close();
    const counted = Catalog.open(copyDir, { readonly: true });
    try {
      for (const q of QUERIES) expect(catalog.statistics(q), JSON.stringify(q)).toEqual(counted.statistics(q));
    } finally {
      counted.close();
    }
  }

  it('gives the figures counting gives, through uploads, moves, flags, deletions and finished copies', async () => {
    const dir = await tempDir();
    Catalog.open(dir).close();
    const raw = new Database(path.join(dir, 'catalog.sqlite'));
    open.push(raw);
    writeStatsRows(raw);
    const catalog = Catalog.open(dir);
    open.push(catalog);
    await expectAsCounted(dir, catalog);
    const id = (file: string) => (raw.prepare(`SELECT id FROM files WHERE filename = ?`).get(file) as { id: number }).id;

    // The late one of officer 000001 reaches HQ 2.5 h after its docking (2026-11-02T10:00Z): 60, 600, 1200, 9000 s.
    raw.prepare(`UPDATE files SET state = 'uploading' WHERE id = ?`).run(id('f2.mp4'));
    expect(catalog.markUploaded(id('f2.mp4'), '2026-11-02T12:30:00.000Z')).toBe(true);
    expect(raw.prepare(`SELECT dock_to_hq_seconds s FROM files WHERE id = ?`).get(id('f2.mp4'))).toEqual({ s: 9000 });
    const officer1 = catalog.statistics({ by: 'officer', offloadWithinHours: 24 }).groups[0];
    expect(officer1).toMatchObject({ key: '000001', atHq: 4, medianDockToHqSeconds: 900 });
    await expectAsCounted(dir, catalog);

    const changes: [string, unknown[]][] = [
      // another officer and capture day (a recording re-attributed)
      [`UPDATE files SET officer_id = '000003', captured_at = '2026-11-03T23:59:59+08:00' WHERE id = ?`, [id('f4.mp4')]],
      // the deadline check flags the one stored since its last run
      [`UPDATE files SET late = 1 WHERE id = ?`, [id('f3.mp4')]],
      // a duplicate copy dropped
      [`DELETE FROM files WHERE id = ?`, [id('f1.mp4')]],
      // a signed receipt: uploaded → archived, still at HQ
      [`UPDATE files SET state = 'archived' WHERE id = ?`, [id('f5.mp4')]],
      // the copy in progress finishes: now a recording
      [`UPDATE files SET sha256 = ?, state = 'stored' WHERE state = 'copying'`, ['c'.repeat(64)]],
      // a duration probed to the microsecond
      [`UPDATE files SET duration = 12.345678 WHERE id = ?`, [id('f0.mp4')]],
      // a capture time julianday() cannot read: counted without a period, never in one
      [`UPDATE files SET captured_at = '2026-11-02 about noon' WHERE id = ?`, [id('f6.mp4')]],
    ];
    for (const [sql, params] of changes) {
      raw.prepare(sql).run(...params);
      await expectAsCounted(dir, catalog);
    }
    expect(catalog.statistics({ by: 'officer', offloadWithinHours: 24 }).totals).toMatchObject({ recordings: 8, late: 3 });

    // A small recording catalogued by its batch (no copying row before it): a recording at once, counted as any other.
    const begun = { size: 77, kind: 'video', filename: 'g.mp4', source_path: 'DCIM/g.mp4', officer_id: '000001' };
    catalog.finishCopies([
      {
        fileId: null,
        begun: { ...begun, device_serial: '1000001', captured_at: '2026-11-02T09:00:00+08:00', at: '2026-11-02T01:10:00.000Z' },
        sha256: 'd'.repeat(64),
        sighting: { sessionId: null, deviceSerial: '1000001', sourcePath: 'DCIM/g.mp4', size: 77, mtimeMs: 1 },
        digests: {},
      },
    ]);
    await expectAsCounted(dir, catalog);
    expect(catalog.statistics({ by: 'officer', offloadWithinHours: 24 }).totals).toMatchObject({ recordings: 9, late: 3 });
  });

  it('fills the per-day totals and the seconds when a catalog of schema 11 is migrated', async () => {
    const dir = await tempDir();
    const db = new Database(path.join(dir, 'catalog.sqlite'));
    for (let v = 1; v <= 11; v++) db.exec(MIGRATIONS[v]);
    db.pragma('user_version = 11');
    writeStatsRows(db);
    db.close();
    const catalog = Catalog.open(dir);
    open.push(catalog);
    const check = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
    open.push(check);
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(check.prepare(`SELECT dock_to_hq_seconds s FROM files WHERE dock_to_hq_seconds IS NOT NULL ORDER BY 1`).all()).toEqual(
      [{ s: 60 }, { s: 600 }, { s: 1200 }, { s: 3000 }],
    );
    expect(catalog.statistics({ by: 'officer', offloadWithinHours: 24 }).totals).toEqual({
      recordings: 8,
      bytes: 2850,
      durationSeconds: 315,
      important: 2,
      late: 2,
      awaitingAnnotation: 2,
      atHq: 4,
      medianDockToHqSeconds: 900,
    });
    await expectAsCounted(dir, catalog);
  });
});
