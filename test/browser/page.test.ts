import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { bigClip } from '../helpers/bigMedia.ts';
import { DaemonProcess, makeWorld, tempDir } from '../helpers/daemon.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockVolume } from '../helpers/volume.ts';
import { openEvents, request } from '../http/client.ts';
import { addUser, auditAfter, catalogFiles } from '../http/stationUsers.ts';

const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'browser');
const CHROMIUM = '/usr/bin/chromium';
const WAIT = 120_000;

/** Debian's Chromium, headless, in a fresh profile (no network beyond the page, no first-run work). */
async function launch(profile: string): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await chromium.launchPersistentContext(profile, {
    acceptDownloads: true,
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1024, height: 600 },
    locale: 'zh-CN',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Uncaught|ReferenceError|TypeError/.test(m.text()))
      problems.push(`console: ${m.text()}`);
  });
  // Every state a recorder tile shows, in order (tiles are redrawn on each live update).
  await page.addInitScript(() => {
    const w = window as unknown as { tileStates: string[] };
    w.tileStates = [];
    new MutationObserver(() => {
      for (const t of document.querySelectorAll<HTMLElement>('.tile')) {
        const s = `${t.dataset.volume?.split('/').pop()}:${t.dataset.state}`;
        if (!w.tileStates.includes(s)) w.tileStates.push(s);
      }
    }).observe(document, { subtree: true, childList: true });
  });
  return { context, page, problems };
}

async function shot(page: Page, name: string): Promise<void> {
  await fs.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

describe('the station page in Chromium: live tiles, annotation and alarms', () => {
  let dir: string;
  let broker: Mosquitto;
  let tus: TusTestServer;
  let daemon: DaemonProcess | null = null;
  let context: BrowserContext | null = null;
  let port: number;

  beforeEach(async () => {
    dir = await tempDir('dockd-page-');
    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    port = await freePort();
  });

  afterEach(async () => {
    await context?.close().catch(() => {});
    context = null;
    await daemon?.kill9();
    daemon = null;
    await tus.stop();
    await broker.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('kiosk: the station screen shows bay tiles without a login and without case data; an admin logs in and sees a recorder copying then safe to undock, releases a held recording from its form, and acknowledges an alarm when HQ goes away', async () => {
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { http: { listen: `127.0.0.1:${port}`, kiosk: true } },
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    await addUser(world.configFile, 'chief', 'admin', 'chief-pass-2026');
    const browser = await launch(path.join(dir, 'chromium-profile'));
    context = browser.context;
    const { page } = browser;
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    await expect.poll(() => page.textContent('h1')).toContain('执法记录仪采集站');
    await expect.poll(() => page.isVisible('#no-recorders')).toBe(true);

    // Dock: big recordings (so copying lasts long enough to be seen) with sidecars, and one held recording.
    const big = await Promise.all([1, 2, 3, 4].map((v) => bigClip(v)));
    const heldClip = await sampleMedia('video', 3, 61);
    const heldSha = await sha256OfFile(heldClip);
    const heldName = recordingName({ at: '20261128110000', seq: 9 });
    await dockVolume(world.mountRoot, 'REC-1234567', async (v) => {
      await fs.mkdir(path.join(v, 'DCIM'));
      for (const [i, clip] of big.entries()) {
        const name = recordingName({ at: `2026112808${String(i).padStart(2, '0')}00`, seq: i + 1 });
        await fs.copyFile(clip, path.join(v, 'DCIM', name));
        await fs.writeFile(
          path.join(v, 'DCIM', name.replace('.mp4', '.meta.json')),
          JSON.stringify({ caseNo: `C-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
        );
      }
      await fs.copyFile(heldClip, path.join(v, 'DCIM', heldName));
    });

    const tile = page.locator('.tile[data-volume$="REC-1234567"]');
    await page.waitForSelector('.tile[data-volume$="REC-1234567"][data-state="copying"]', { timeout: WAIT });
    // The kiosk: the tile and its progress, but no officer, no recorder serial, no held recordings, no alarms to acknowledge.
    expect(await page.getAttribute('body', 'data-role')).toBe('kiosk');
    expect(await page.textContent('#who')).toBe('公共屏幕（仅显示坞位）');
    expect(await tile.locator('.officer-name').textContent()).toBe('警员 —');
    expect(await tile.locator('.serial').textContent()).toBe('—');
    expect(await page.isVisible('#held-panel')).toBe(false);
    expect(await page.isVisible('#recordings-panel')).toBe(false);
    await shot(page, '00-kiosk');
    await page.click('#login');
    await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
    await page.fill('#login-name', 'chief');
    await page.fill('#password', 'chief-pass-2026');
    await page.click('#login-form button[type="submit"]');
    await expect.poll(() => page.textContent('#who'), { timeout: WAIT }).toBe('chief · 管理员');
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    await shot(page, '01-copying');
    await expect.poll(() => tile.locator('.serial').textContent(), { timeout: WAIT }).toBe('1234567');
    expect(await tile.locator('.officer-name').textContent()).toBe('张三');
    expect(await tile.locator('.officer-id').textContent()).toContain('012345');
    expect(await tile.locator('.battery').textContent()).toBe('—');
    expect(await tile.locator('.drift').textContent()).toBe('—');
    expect(await tile.locator('.state').textContent()).toMatch(/识别中|采集中/);
    expect(await tile.locator('.safe').count()).toBe(0);

    await page.waitForSelector('.tile[data-volume$="REC-1234567"][data-state="done"][data-safe="yes"]', { timeout: WAIT });
    expect(await tile.locator('.safe').textContent()).toContain('可安全拔出');
    expect(await tile.locator('.files').textContent()).toContain('5/5');
    expect(await tile.locator('.pct').textContent()).toBe('100%');
    const seen = await page.evaluate(() => (window as unknown as { tileStates: string[] }).tileStates);
    expect(seen.indexOf('REC-1234567:copying')).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf('REC-1234567:copying')).toBeLessThan(seen.indexOf('REC-1234567:done'));
    await shot(page, '02-safe-to-undock');

    // The held recording: listed with a thumbnail; its form releases it, and the page follows it to HQ.
    const item = page.locator('#held .held-item').filter({ hasText: heldName });
    await item.waitFor({ timeout: WAIT });
    await expect
      .poll(() => item.locator('img.thumb').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), {
        timeout: WAIT,
      })
      .toBe(320);
    expect(await item.locator('.reason').textContent()).toMatch(/缺少：.*案件编号/);
    expect(await page.textContent('#queue-states li[data-state="needs-annotation"] b')).toBe('1');
    await shot(page, '03-held');
    await item.locator('input[name="caseNo"]').fill('A2026-1128-009');
    await item.locator('input[name="purpose"]').fill('现场检查');
    await item.locator('input[name="place"]').fill('人民路8号');
    await item.locator('button[type="submit"]').click();
    await item.waitFor({ state: 'detached', timeout: WAIT });
    await page.waitForSelector('#no-held', { state: 'visible', timeout: WAIT });
    const recent = page.locator(`#recent li[data-state="uploaded"]`).filter({ hasText: heldName });
    await recent.waitFor({ timeout: WAIT });
    expect(await recent.textContent()).toContain('已上传');
    expect(tus.finished.find((u) => u.sha256 === heldSha)?.metadata).toMatchObject({
      caseNo: 'A2026-1128-009',
      purpose: '现场检查',
      place: '人民路8号',
      collector: '张三',
    });
    await waitFor('every recording at HQ', () => tus.finished.length === 5, WAIT);
    await expect
      .poll(() => page.getAttribute('#queue-states li[data-state="uploaded"]', 'data-count'), { timeout: WAIT })
      .toBe('5');
    await shot(page, '04-annotated-uploaded');

    // HQ goes away: the next upload fails, an alarm appears (newest first), and an admin acknowledges it.
    await tus.stop();
    const clip = await sampleMedia('video', 2, 62);
    await dockVolume(world.mountRoot, 'REC-2', async (v) => {
      const name = recordingName({ at: '20261128120000', seq: 1 });
      await fs.copyFile(clip, path.join(v, name));
      await fs.writeFile(
        path.join(v, name.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'C-7', purpose: '取证', place: '建设路3号' }),
      );
    });
    const alarm = page.locator('#alarms .alarm[data-code="HQ_UNREACHABLE"]');
    await alarm.waitFor({ timeout: WAIT });
    expect(await alarm.locator('strong').textContent()).toBe('总部服务器无法连接');
    await expect.poll(() => page.getAttribute('#link-tus', 'data-state'), { timeout: WAIT }).toBe('bad');
    await shot(page, '05-alarm');
    await alarm.locator('button.ack').click();
    await page.waitForSelector('#alarms .alarm[data-code="HQ_UNREACHABLE"][data-acknowledged="yes"]', { timeout: WAIT });
    expect(await page.locator('#alarms .alarm[data-code="HQ_UNREACHABLE"] .acked').textContent()).toContain('已确认');

    // English on request, and it stays live.
    await page.click('#lang');
    await expect.poll(() => page.textContent('h1')).toContain('Evidence docking station');
    expect(await page.locator('#alarms .alarm[data-code="HQ_UNREACHABLE"] strong').textContent()).toBe('HQ unreachable');
    expect(await tile.locator('.safe').textContent()).toContain('Safe to undock');
    await shot(page, '06-english');
    await page.setViewportSize({ width: 1440, height: 900 });
    await shot(page, '07-desktop-english');
    expect(browser.problems).toEqual([]);
    expect(await daemon.stop()).toBe(0);
  }, 600_000);

  it("named users: an officer logs in with 警号 + PIN, annotates their own recording, cannot open another officer's, and the page reconnects after a 503 and a restart (the session survives it); logout; an admin exports; a cross-origin POST from another page changes nothing", async () => {
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { http: { listen: `127.0.0.1:${port}` } },
      devices: [
        { serial: '1234567', officerId: '012345', officerName: '张三' },
        { serial: '7654321', officerId: '054321', officerName: '李四' },
      ],
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await addUser(world.configFile, '张三', 'officer', '246810', '012345');
    await addUser(world.configFile, '李四', 'officer', '135791', '054321');
    await addUser(world.configFile, 'chief', 'admin', 'chief-pass-2026');
    const [mineClip, theirsClip] = await Promise.all([sampleMedia('video', 2, 63), sampleMedia('video', 2, 64)]);
    const mineName = recordingName({ officerId: '012345', serial: '1234567', at: '20261128130000', seq: 3 });
    const theirsName = recordingName({ officerId: '054321', serial: '7654321', at: '20261128131000', seq: 4 });
    await dockVolume(world.mountRoot, 'REC-A', async (v) => {
      await fs.copyFile(mineClip, path.join(v, mineName));
    });
    await dockVolume(world.mountRoot, 'REC-B', async (v) => {
      await fs.copyFile(theirsClip, path.join(v, theirsName));
    });
    const files = await waitFor(
      'both recordings held',
      () => {
        const f = catalogFiles(world.storeDir).filter((r) => r.state === 'needs-annotation');
        return f.length === 2 ? f : null;
      },
      WAIT,
    );
    const mine = files.find((f) => f.officer_id === '012345')!;
    const theirs = files.find((f) => f.officer_id === '054321')!;
    const base = `http://127.0.0.1:${port}`;

    const browser = await launch(path.join(dir, 'chromium-profile'));
    context = browser.context;
    const { page } = browser;
    await page.goto(`${base}/`);
    // Nothing without a login: the login dialog asks for 警号 / 用户名 and PIN / 密码.
    await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
    expect(await page.isVisible('main')).toBe(false);
    await page.fill('#login-name', '012345');
    await page.fill('#password', '000000');
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('#login-error:not([hidden])', { timeout: WAIT });
    expect(await page.textContent('#login-error')).toContain('密码错误');
    await shot(page, '08-login-wrong-pin');
    await page.fill('#password', '246810');
    await page.click('#login-form button[type="submit"]');
    await expect.poll(() => page.textContent('#who'), { timeout: WAIT }).toBe('张三 · 警员 012345');
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });

    // Their own recording only: in the held list (with its thumbnail) and in the recordings list.
    const item = page.locator('#held .held-item').filter({ hasText: mineName });
    await item.waitFor({ timeout: WAIT });
    await expect.poll(() => page.locator('#held .held-item').count(), { timeout: WAIT }).toBe(1);
    await expect
      .poll(() => item.locator('img.thumb').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), {
        timeout: WAIT,
      })
      .toBe(320);
    await expect.poll(() => page.locator('#recordings .recording').count(), { timeout: WAIT }).toBe(1);
    expect(await page.textContent('#recordings')).not.toContain(theirsName);
    expect(await page.locator('#recordings .export').count()).toBe(0);
    // The other officer's tile shows no case data; their own shows their name.
    expect(await page.locator('.tile[data-volume$="REC-A"] .officer-name').textContent()).toBe('张三');
    expect(await page.locator('.tile[data-volume$="REC-B"] .officer-name').textContent()).toBe('警员 —');
    await shot(page, '09-officer');
    await item.locator('input[name="caseNo"]').fill('B-1');
    await item.locator('input[name="purpose"]').fill('调查取证');
    await item.locator('input[name="place"]').fill('胜利路9号');
    await item.locator('button[type="submit"]').click();
    await item.waitFor({ state: 'detached', timeout: WAIT });
    await waitFor('the annotated recording at HQ', () => tus.finished.some((u) => u.metadata.caseNo === 'B-1'), WAIT);
    const annotated = auditAfter(world.storeDir).find((a) => a.type === 'file.annotated' && a.subject === mine.sha256)!;
    expect(annotated.data.by).toBe('张三 (officer 012345) @127.0.0.1');

    // Another officer's recording: 404 for its details and its thumbnail, as if it did not exist.
    const other = await page.goto(`${base}/api/files/${theirs.id}`);
    expect(other!.status()).toBe(404);
    expect(await page.textContent('body')).not.toContain(theirsName);
    expect((await page.goto(`${base}/api/files/${theirs.id}/thumbnail`))!.status()).toBe(404);
    expect(
      auditAfter(world.storeDir)
        .filter((a) => a.type === 'http.denied' && a.subject === theirs.sha256)
        .map((a) => a.data.action),
    ).toEqual(['view', 'thumbnail']);
    await page.goto(`${base}/`);
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });

    // Four live streams of the same officer elsewhere: the page's is refused (503) and it says so; once one closes, it reconnects.
    const cookie = (await context.cookies())
      .filter((c) => c.name === 'dockd_session')
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    await page.goto('about:blank');
    const streams = await waitFor(
      "four streams of the officer open elsewhere (the page's own has closed)",
      async () => {
        const opened = await Promise.all(
          Array.from({ length: 4 }, () => openEvents(`${base}/api/events`, { headers: { cookie } })),
        );
        if (opened.every((e) => e.status === 200)) return opened;
        for (const e of opened) e.close();
        return null;
      },
      WAIT,
      500,
    );
    await page.goto(`${base}/`);
    await page.waitForSelector('#live[data-state="offline"]', { timeout: WAIT });
    expect(await page.textContent('#who')).toBe('张三 · 警员 012345');
    streams[0].close();
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    for (const e of streams) e.close();

    // A restart: the page goes live again by itself, and after a reload the officer is still logged in.
    expect(await daemon.stop()).toBe(0);
    await page.waitForSelector('#live[data-state="offline"]', { timeout: WAIT });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    await page.reload();
    await expect.poll(() => page.textContent('#who'), { timeout: WAIT }).toBe('张三 · 警员 012345');
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });

    // Logout: the session ends at the station, the page forgets what it showed and asks for a login.
    await page.click('#login');
    await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
    expect(await page.getAttribute('body', 'data-role')).toBe('none');
    expect(await page.locator('#held .held-item').count()).toBe(0);
    expect(await page.locator('#recordings .recording').count()).toBe(0);
    expect((await request(base, 'GET', '/api/state', { headers: { cookie } })).status).toBe(401);
    await shot(page, '10-logged-out');

    // The admin: every recording, details on opening one (audited), and an export that downloads the stored copy.
    await page.fill('#login-name', 'chief');
    await page.fill('#password', 'chief-pass-2026');
    await page.click('#login-form button[type="submit"]');
    await expect.poll(() => page.textContent('#who'), { timeout: WAIT }).toBe('chief · 管理员');
    await expect.poll(() => page.locator('#recordings .recording').count(), { timeout: WAIT }).toBe(2);
    const row = page.locator(`#recordings .recording[data-id="${mine.id}"]`);
    await row.locator('summary').click();
    await expect.poll(() => row.locator('dd[data-field="caseNo"]').textContent(), { timeout: WAIT }).toBe('B-1');
    const downloading = page.waitForEvent('download');
    await row.locator('a.export').click();
    const download = await downloading;
    expect(download.suggestedFilename()).toBe(`${mine.id}-${mineName}`);
    const saved = path.join(dir, 'exported.mp4');
    await download.saveAs(saved);
    expect(
      createHash('sha256')
        .update(await fs.readFile(saved))
        .digest('hex'),
    ).toBe(mine.sha256);
    const trail = auditAfter(world.storeDir);
    expect(trail.find((a) => a.type === 'file.exported' && a.subject === mine.sha256)?.data).toMatchObject({
      user: 'chief',
      role: 'admin',
      from: '127.0.0.1',
      via: 'http',
    });
    expect(
      trail.some(
        (a) => a.type === 'file.viewed' && a.subject === mine.sha256 && a.data.user === 'chief' && a.data.what === 'details',
      ),
    ).toBe(true);
    await shot(page, '11-admin-export');

    // Cross-site request forgery: a page of another origin posts to the station with the admin's cookie; refused, nothing changes.
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>another site</title>');
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()));
    try {
      const evilPage = await context.newPage();
      await evilPage.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`);
      const before = auditAfter(world.storeDir).length;
      const answers = await evilPage.evaluate(
        async ({ target }) => {
          const body = JSON.stringify({ caseNo: 'FORGED', purpose: 'forged', place: 'nowhere' });
          const a = await fetch(`${target}/annotate`, {
            method: 'POST',
            credentials: 'include',
            headers: { 'content-type': 'application/json' },
            body,
          }).then(
            (r) => r.status,
            (e) => String(e),
          );
          const b = await fetch(`${target}/annotate`, {
            method: 'POST',
            credentials: 'include',
            mode: 'no-cors',
            headers: { 'content-type': 'text/plain' },
            body,
          }).then(
            (r) => r.type,
            (e) => String(e),
          );
          return [a, b];
        },
        { target: `${base}/api/files/${theirs.id}` },
      );
      // The JSON one is stopped by CORS before it is sent; the simple one is sent and refused by dockd (Origin).
      expect(answers[0]).toMatch(/TypeError|Failed to fetch/);
      expect(answers[1]).toBe('opaque');
      await evilPage.close();
      expect(catalogFiles(world.storeDir).find((f) => f.id === theirs.id)).toMatchObject({
        state: 'needs-annotation',
        case_no: null,
      });
      expect(
        auditAfter(world.storeDir)
          .slice(before)
          .filter((a) => a.type === 'file.annotated' || a.type === 'http.denied'),
      ).toEqual([]);
      expect(daemon.logs.some((l) => l.msg === 'recording annotated from the station page' && l.file === theirs.id)).toBe(false);
      await daemon.waitForLog(
        (l) => l.msg === 'cross-origin change refused' && l.url === `/api/files/${theirs.id}/annotate`,
        'dockd to refuse the forged change',
      );
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
    expect(browser.problems).toEqual([]);
    expect(await daemon.stop()).toBe(0);
  }, 600_000);
});
