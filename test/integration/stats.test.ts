import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { recordingName, sampleMedia } from '../../scripts/media.ts';
import { csvOf } from '../helpers/csv.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitForSettledCatalog } from '../helpers/dockctlJson.ts';
import { freePort } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { login, request } from '../http/client.ts';
import { addUser } from '../http/stationUsers.ts';

const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'browser');
const WAIT = 60_000;
const HOUR = 3600_000;
const sidecar = (caseNo: string) => JSON.stringify({ caseNo, purpose: '现场执法', place: '幸福路12号' });

/** A GA/T 947 name time (YYYYMMDDhhmmss) `hoursAgo` before now, in the station's zone (Asia/Shanghai, +08:00 all year). */
function nameTime(hoursAgo: number): string {
  return new Date(Date.now() - hoursAgo * HOUR + 8 * HOUR).toISOString().slice(0, 19).replace(/[-T:]/g, '');
}
const dayOf = (stamp: string) => `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}`;

const ZHANG = { serial: '1234567', officerId: '012345', officerName: '张三' };
const LI = { serial: '7654321', officerId: '054321', officerName: '李四' };

describe('statistics end to end', () => {
  const station = useStation();

  it('two officers dock (one recording 30 h late, one without a sidecar): dockctl stats, GET /api/stats, the CSV and the statistics view agree', async () => {
    const port = await freePort();
    const world = await station.world({
      devices: [ZHANG, LI],
      // The statistics count late offloads by the default rule (24 h); the shared test world sets it far out.
      extra: { http: { listen: `127.0.0.1:${port}` }, rules: { offloadWithinHours: 24 } },
    });
    const daemon = await station.startDaemon(world.configFile);
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');

    const t = { zhangLate: nameTime(30), zhang: nameTime(2), li: nameTime(1), liHeld: nameTime(1.5) };
    await dockVolume(world.mountRoot, 'REC-ZHANG', async (v) => {
      const late = recordingName({ ...ZHANG, at: t.zhangLate, seq: 1, important: true });
      await fs.copyFile(await sampleMedia('video', 2, 1101), path.join(v, late));
      await fs.writeFile(path.join(v, late.replace('.mp4', '.meta.json')), sidecar('C-LATE'));
      const inTime = recordingName({ ...ZHANG, at: t.zhang, seq: 2 });
      await fs.copyFile(await sampleMedia('video', 2, 1102), path.join(v, inTime));
      await fs.writeFile(path.join(v, inTime.replace('.mp4', '.meta.json')), sidecar('C-1'));
    });
    await dockVolume(world.mountRoot, 'REC-LI', async (v) => {
      const li = recordingName({ ...LI, at: t.li, seq: 1 });
      await fs.copyFile(await sampleMedia('video', 2, 1103), path.join(v, li));
      await fs.writeFile(path.join(v, li.replace('.mp4', '.meta.json')), sidecar('C-2'));
      await fs.copyFile(await sampleMedia('video', 2, 1104), path.join(v, recordingName({ ...LI, at: t.liHeld, seq: 2 }))); // no sidecar
    });
    const rows = await waitForSettledCatalog(world.configFile, 4);
    expect(rows.map((f) => f.state).sort()).toEqual(['needs-annotation', 'uploaded', 'uploaded', 'uploaded']);

    // dockctl stats --json, per officer
    const json = await runDockctl(world.configFile, ['stats', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const stats = JSON.parse(json.stdout);
    expect(stats).toMatchObject({ by: 'officer', from: null, to: null, offloadWithinHours: 24 });
    expect(stats.groups).toEqual([
      {
        key: '012345',
        name: '张三',
        recordings: 2,
        bytes: expect.any(Number),
        durationSeconds: expect.any(Number),
        important: 1,
        late: 1,
        awaitingAnnotation: 0,
        atHq: 2,
        medianDockToHqSeconds: expect.any(Number),
      },
      {
        key: '054321',
        name: '李四',
        recordings: 2,
        bytes: expect.any(Number),
        durationSeconds: expect.any(Number),
        important: 0,
        late: 0,
        awaitingAnnotation: 1,
        atHq: 1,
        medianDockToHqSeconds: expect.any(Number),
      },
    ]);
    const sizeOf = (officer: string) => rows.filter((f) => f.officerId === officer).reduce((n, f) => n + f.size, 0);
    expect(stats.groups.map((g: { bytes: number }) => g.bytes)).toEqual([sizeOf('012345'), sizeOf('054321')]);
    for (const g of stats.groups) {
      expect(g.durationSeconds).toBeGreaterThan(3);
      expect(g.durationSeconds).toBeLessThan(5);
      expect(g.medianDockToHqSeconds).toBeGreaterThanOrEqual(0);
    }
    expect(stats.totals).toMatchObject({ recordings: 4, important: 1, late: 1, awaitingAnnotation: 1, atHq: 3 });

    // per recorder and per capture day; a period that leaves the late recording out
    const byDevice = JSON.parse((await runDockctl(world.configFile, ['stats', '--by', 'device', '--json'])).stdout);
    expect(byDevice.groups.map((g: { key: string; late: number }) => [g.key, g.late])).toEqual([
      ['1234567', 1],
      ['7654321', 0],
    ]);
    const byDay = JSON.parse((await runDockctl(world.configFile, ['stats', '--by', 'day', '--json'])).stdout);
    const days = new Map<string, number>();
    for (const s of Object.values(t)) days.set(dayOf(s), (days.get(dayOf(s)) ?? 0) + 1);
    expect(byDay.groups.map((g: { key: string; recordings: number }) => [g.key, g.recordings])).toEqual(
      [...days].sort(([a], [b]) => a.localeCompare(b)),
    );
    const since = new Date(Date.now() - 10 * HOUR).toISOString();
    const recent = JSON.parse((await runDockctl(world.configFile, ['stats', '--from', since, '--json'])).stdout);
    expect(recent.totals).toMatchObject({ recordings: 3, late: 0 });

    // --csv parses, and says the same
    const csv = await runDockctl(world.configFile, ['stats', '--csv']);
    expect(csv.code, csv.stderr).toBe(0);
    const table = csvOf(csv.stdout);
    expect(table.map((r) => [r.key, r.name, r.recordings, r.late, r.awaitingAnnotation, r.atHq])).toEqual([
      ['012345', '张三', '2', '1', '0', '2'],
      ['054321', '李四', '2', '0', '1', '1'],
    ]);

    // A bad DATE is refused in one clear line.
    const bad = await runDockctl(world.configFile, ['stats', '--from', '2026-13-01']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--from "2026-13-01": there is no month 13/);

    // The API: a login is needed; an admin sees everyone, an officer their own; the CSV download parses.
    const base = `http://127.0.0.1:${port}`;
    expect((await request(base, 'GET', '/api/stats')).status).toBe(401);
    await addUser(world.configFile, 'chief', 'admin', 'chief-pass-2026');
    await addUser(world.configFile, 'li', 'officer', '205431', LI.officerId);
    const chief = { headers: { cookie: await login(base, 'chief', 'chief-pass-2026') } };
    const api = await request(base, 'GET', '/api/stats?by=officer', chief);
    expect(api.status).toBe(200);
    expect(api.json.groups).toEqual(stats.groups);
    const officer = { headers: { cookie: await login(base, LI.officerId, '205431') } };
    expect((await request(base, 'GET', '/api/stats', officer)).json.groups.map((g: { key: string }) => g.key)).toEqual([
      LI.officerId,
    ]);
    const download = await request(base, 'GET', '/api/stats?by=device&format=csv', chief);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toMatch(/^text\/csv; charset=utf-8/);
    expect(download.headers.get('content-disposition')).toMatch(/attachment; filename="dockd-stats-test-st-device\.csv"/);
    expect(csvOf(download.text.replace(/^\ufeff/, '')).map((r) => [r.key, r.recordings, r.late])).toEqual([
      ['1234567', '2', '1'],
      ['7654321', '2', '0'],
    ]);
    const refused = await request(base, 'GET', '/api/stats?from=yesterday', chief);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: 'INVALID', message: expect.stringMatching(/^from "yesterday"/) });

    // The statistics view in Chromium, with its charts drawn by the station's own Chart.js.
    let context: BrowserContext | null = null;
    try {
      context = await chromium.launchPersistentContext(path.join(station.dir, 'chromium-profile'), {
        executablePath: '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1024, height: 1400 },
        locale: 'zh-CN',
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      await page.goto(`${base}/`);
      // Without a login the page asks for one by itself.
      await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
      await page.fill('#login-name', 'chief');
      await page.fill('#password', 'chief-pass-2026');
      await page.click('#login-form button[type="submit"]');
      // The last 30 days (the default period) hold all four recordings.
      const total = page.locator('#stats-table tfoot td[data-field="statsRecordings"]');
      await expect
        .poll(async () => ((await total.count()) ? total.textContent() : `not shown (${problems.join('; ')})`), { timeout: WAIT })
        .toBe('4');
      expect(await page.textContent('#stats-panel h2')).toBe('统计');
      expect(await page.locator('#stats-table tbody tr').allTextContents()).toEqual([
        expect.stringMatching(/^张三 012345\s*2/),
        expect.stringMatching(/^李四 054321\s*2/),
      ]);
      expect(await page.textContent('#stats-table tfoot td[data-field="statsLate"]')).toBe('1');
      expect(await page.textContent('#stats-table tfoot td[data-field="statsAwaiting"]')).toBe('1');
      expect(await page.getAttribute('#stats-csv', 'href')).toMatch(
        /^\/api\/stats\?by=officer&from=\d{4}-\d{2}-\d{2}&format=csv$/,
      );
      expect(await page.evaluate(() => typeof (window as unknown as { Chart?: unknown }).Chart)).toBe('function');
      const drawn = await page.evaluate(() =>
        [...document.querySelectorAll('#stats-charts canvas')].map((c) => (c as HTMLCanvasElement).width > 0),
      );
      expect(drawn).toEqual([true, true]);
      await fs.mkdir(ARTIFACTS, { recursive: true });
      await page.locator('#stats-panel').screenshot({ path: path.join(ARTIFACTS, 'statistics.png') });
      await page.click('#lang');
      await expect.poll(() => page.textContent('#stats-panel h2')).toBe('Statistics');
      await page.locator('#stats-panel').screenshot({ path: path.join(ARTIFACTS, 'statistics-en.png') });
      expect(problems).toEqual([]);
    } finally {
      await context?.close();
    }
  }, 300_000);
});
