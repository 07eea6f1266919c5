import fs from 'node:fs/promises';
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

const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'browser');
const CHROMIUM = '/usr/bin/chromium';
const WAIT = 120_000;

/** Debian's Chromium, headless, in a fresh profile (no network beyond the page, no first-run work). */
async function launch(profile: string): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1024, height: 600 }, locale: 'zh-CN',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy|Uncaught/.test(m.text())) problems.push(`console: ${m.text()}`); });
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

  it('shows a docked recorder copying then safe to undock, releases a held recording from its form, and shows an alarm when HQ goes away', async () => {
    const world = await makeWorld(dir, { tusEndpoint: tus.endpoint, mqttUrl: broker.url, extra: { http: { listen: `127.0.0.1:${port}` } } });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
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
        await fs.writeFile(path.join(v, 'DCIM', name.replace('.mp4', '.meta.json')), JSON.stringify({ caseNo: `C-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }));
      }
      await fs.copyFile(heldClip, path.join(v, 'DCIM', heldName));
    });

    const tile = page.locator('.tile[data-volume$="REC-1234567"]');
    await page.waitForSelector('.tile[data-volume$="REC-1234567"][data-state="copying"]', { timeout: WAIT });
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
    await expect.poll(() => item.locator('img.thumb').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), { timeout: WAIT }).toBe(320);
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
    expect(tus.finished.find((u) => u.sha256 === heldSha)?.metadata).toMatchObject({ caseNo: 'A2026-1128-009', purpose: '现场检查', place: '人民路8号', collector: '张三' });
    await waitFor('every recording at HQ', () => tus.finished.length === 5, WAIT);
    await expect.poll(() => page.getAttribute('#queue-states li[data-state="uploaded"]', 'data-count'), { timeout: WAIT }).toBe('5');
    await shot(page, '04-annotated-uploaded');

    // HQ goes away: the next upload fails, an alarm appears (newest first), and an admin acknowledges it.
    await tus.stop();
    const clip = await sampleMedia('video', 2, 62);
    await dockVolume(world.mountRoot, 'REC-2', async (v) => {
      const name = recordingName({ at: '20261128120000', seq: 1 });
      await fs.copyFile(clip, path.join(v, name));
      await fs.writeFile(path.join(v, name.replace('.mp4', '.meta.json')), JSON.stringify({ caseNo: 'C-7', purpose: '取证', place: '建设路3号' }));
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

  it('asks for the admin password before a change when the page is reachable beyond loopback', async () => {
    const password = 'dock-admin-2468';
    const world = await makeWorld(dir, { tusEndpoint: tus.endpoint, mqttUrl: broker.url, extra: { http: { listen: `0.0.0.0:${port}`, adminPassword: password } } });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    const clip = await sampleMedia('video', 2, 63);
    const name = recordingName({ at: '20261128130000', seq: 3 });
    await dockVolume(world.mountRoot, 'REC-3', async (v) => { await fs.copyFile(clip, path.join(v, name)); });

    const browser = await launch(path.join(dir, 'chromium-profile'));
    context = browser.context;
    const { page } = browser;
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => page.textContent('#login'), { timeout: WAIT }).toBe('管理员登录');
    const item = page.locator('#held .held-item').filter({ hasText: name });
    await item.waitFor({ timeout: WAIT });
    await item.locator('input[name="caseNo"]').fill('B-1');
    await item.locator('input[name="purpose"]').fill('调查取证');
    await item.locator('input[name="place"]').fill('胜利路9号');
    await item.locator('button[type="submit"]').click();

    await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
    await page.fill('#password', 'not-the-password');
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('#login-error:not([hidden])', { timeout: WAIT });
    expect(await page.textContent('#login-error')).toContain('密码错误');
    await shot(page, '08-login-wrong-password');
    await page.fill('#password', password);
    await page.click('#login-form button[type="submit"]');
    await item.waitFor({ state: 'detached', timeout: WAIT });
    expect(await page.isVisible('#login-dialog[open]')).toBe(false);
    await expect.poll(() => page.textContent('#login'), { timeout: WAIT }).toBe('退出登录');
    await waitFor('the annotated recording at HQ', () => tus.finished.some((u) => u.metadata.caseNo === 'B-1'), WAIT);
    expect(browser.problems).toEqual([]);
    expect(await daemon.stop()).toBe(0);
  }, 400_000);
});
