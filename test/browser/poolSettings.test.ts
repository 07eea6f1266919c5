/**
 * The station page in Chromium, for the supervision forms: an officer takes a docked pool recorder with their 警号 +
 * PIN (dockd writes the officer to the emulated recorder over its control channel, real socat ptys), an admin returns
 * it; an admin changes the upload cap and windows, which go into the config file and are applied as on SIGHUP (the
 * daemon logs the reload), while a bad window is refused and changes nothing. Screenshots under
 * test-artifacts/browser for review.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { sampleMedia } from '../../scripts/media.ts';
import type { Device } from '../helpers/linkWorld.ts';
import { useLinkWorld } from '../helpers/station.ts';
import { waitFor } from '../helpers/ports.ts';
import { addUser } from '../http/stationUsers.ts';

const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'browser');
const WAIT = 60_000;
const POOL: Device = { serial: 'PL00001', officerId: '012345', officerName: '张三' };

const worlds = useLinkWorld(60);
let context: BrowserContext | null = null;

afterEach(async () => {
  await context?.close().catch(() => {});
  context = null;
});

describe('the station page: pool recorders and upload settings', () => {
  it('an officer takes a pool recorder with 警号 + PIN and an admin returns it; an admin sets the upload cap and windows, written to the config file and applied', async () => {
    const world = await worlds.create({ devices: [POOL] });
    const w = world;
    const daemon = await w.startDaemon();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    await addUser(w.configFile, 'chief', 'admin', 'chief-pass-2026');
    await addUser(w.configFile, '王五', 'officer', '246810', '077777');
    const e = await w.recorder({ ...POOL, keepsControlChannel: true, media: [await sampleMedia('video', 1, 4501)] });
    await e.rec.plugIn();
    await waitFor('the recorder in mass storage', () => e.rec.state === 'storage', 30_000, 50);

    context = await chromium.launchPersistentContext(path.join(w.dir, 'chromium-profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1024, height: 1200 },
      locale: 'zh-CN',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    const listen = parse(await fs.readFile(w.configFile, 'utf8')).http.listen as string;
    await page.goto(`http://${listen}/`);
    await page.waitForSelector('#login-dialog[open]', { timeout: WAIT });
    await page.fill('#login-name', 'chief');
    await page.fill('#password', 'chief-pass-2026');
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT });
    await page.waitForSelector(`.tile[data-state="done"]`, { timeout: WAIT });

    // 领用: the officer's id and PIN on the admin's screen; dockd writes the officer to the recorder.
    expect(await page.textContent('#pool-panel h2')).toBe('公用执法记录仪 领用 / 归还');
    await expect.poll(() => page.locator('#pool-serials option').count(), { timeout: WAIT }).toBe(1);
    await page.fill('#pool-serial', POOL.serial);
    await page.fill('#pool-officer', '077777');
    await page.fill('#pool-pin', '000000');
    await page.click('#pool-assign');
    await expect.poll(() => page.textContent('#toast'), { timeout: WAIT }).toMatch(/PIN|密码|password/i);
    expect(e.rec.model.officerId).toBe('012345');
    await page.fill('#pool-pin', '246810');
    await page.click('#pool-assign');
    await expect
      .poll(() => page.textContent('#pool-result'), { timeout: WAIT })
      .toBe(`执法记录仪 ${POOL.serial} 已由警号 077777 领用`);
    expect(e.rec.model).toMatchObject({ officerId: '077777', officerName: '王五' });
    expect(await page.inputValue('#pool-pin')).toBe('');
    await page.locator('#pool-panel').scrollIntoViewIfNeeded();
    await fs.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'pool-assigned.png'), fullPage: true });

    // 归还 by the admin (no PIN needed): the recorder gets its registry officer back.
    await page.fill('#pool-officer', '');
    await page.click('#pool-return');
    await expect.poll(() => page.textContent('#pool-result'), { timeout: WAIT }).toBe(`执法记录仪 ${POOL.serial} 已归还`);
    expect(e.rec.model.officerId).toBe('012345');

    // 上传设置: what is in force, then a cap and a window written to the config file and applied as on SIGHUP.
    await expect.poll(() => page.textContent('#upload-settings-now'), { timeout: WAIT }).toBe('当前：不限速；全天上传');
    await page.fill('#upload-rate', '2.5');
    await page.fill('#upload-windows', '22:00-06:00，12:00-13:00');
    await page.click('#upload-settings-form button[type="submit"]');
    await expect
      .poll(() => page.textContent('#upload-settings-now'), { timeout: WAIT })
      .toBe('当前：限速 2.5 MB/s；普通录像仅在 22:00-06:00, 12:00-13:00 上传，重要文件随时上传');
    const tus = parse(await fs.readFile(w.configFile, 'utf8')).hq.tus;
    expect(tus).toMatchObject({ maxBytesPerSecond: 2_500_000, windows: ['22:00-06:00', '12:00-13:00'] });
    await daemon.waitForLog((l) => l.msg === 'config reloaded: hq.tus.maxBytesPerSecond applied', 'the cap applied');
    await daemon.waitForLog((l) => l.msg === 'config reloaded: hq.tus.windows applied', 'the windows applied');
    await page.locator('#upload-settings-panel').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-settings.png'), fullPage: true });

    // A window that is no time of day is refused; the file stays as it was.
    const before = await fs.readFile(w.configFile, 'utf8');
    await page.fill('#upload-windows', '25:00-01:00');
    await page.click('#upload-settings-form button[type="submit"]');
    await expect.poll(() => page.isVisible('#toast[data-kind="error"]'), { timeout: WAIT }).toBe(true);
    expect(await fs.readFile(w.configFile, 'utf8')).toBe(before);
    expect(problems).toEqual([]);
  }, 300_000);
});
