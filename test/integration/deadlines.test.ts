/**
 * The deadline alarms of the local rules (rules.*) and the upload window, on a station run in-process with a clock the
 * test moves (no sleeping through hours): a real mosquitto carries every alarm raised and cleared, a real @tus/server
 * receives what goes up, and the station page shows the alarms (a Chromium screenshot under test-artifacts/browser).
 * The recordings were captured on 2026-11-28, days before they dock: late from the start.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { loadConfig, PACKAGE_ROOT } from '../../daemon/config.ts';
import { defaultHost } from '../../daemon/host.ts';
import { annotateRecording } from '../../daemon/ingest/annotate.ts';
import { localMinutes } from '../../daemon/upload/uploadWindows.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { MovedClock, useInProcessStation } from '../helpers/inProcessStation.ts';
import { type Device, type LinkWorld, TIME_ZONE } from '../helpers/linkWorld.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';
import { addUser } from '../http/stationUsers.ts';

const HOUR_MS = 3_600_000;
const A: Device = { serial: 'BCT0001', officerId: '012345', officerName: '张三' };
const B: Device = { serial: 'BCT0002', officerId: '054321', officerName: '李四' };
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'browser');

/** `HH:MM` of a station-time minute of the day. */
const hhmm = (min: number) => {
  const m = ((min % 1440) + 1440) % 1440;
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
};

/** A plain recorder volume docked under the mount root: GA/T 947 names of this device, sidecars where given. */
async function dock(
  w: LinkWorld,
  name: string,
  files: { device: Device; source: string; seq: number; important?: boolean; sidecar: boolean }[],
): Promise<void> {
  await dockVolume(w.mountRoot, name, async (v) => {
    await fs.mkdir(path.join(v, 'DCIM'));
    for (const f of files) {
      const file = recordingName({
        officerId: f.device.officerId,
        serial: f.device.serial,
        at: `2026112809${String(f.seq).padStart(2, '0')}00`,
        seq: f.seq,
        important: f.important,
      });
      await fs.copyFile(f.source, path.join(v, 'DCIM', file));
      if (f.sidecar)
        await fs.writeFile(
          path.join(v, 'DCIM', file.replace(/\.mp4$/, '.meta.json')),
          JSON.stringify({ caseNo: `C-${f.seq}`, purpose: '现场检查', place: '幸福路12号' }),
        );
    }
  });
}

describe('deadline alarms on a moved clock, and the upload window', () => {
  const station = useInProcessStation();

  it('LATE_OFFLOAD, UPLOAD_OVERDUE, ANNOTATION_OVERDUE and RECORDER_NOT_DOCKED are raised and clear by themselves; an important recording goes outside the window, ordinary ones wait for it', async () => {
    const w = await station.world({ devices: [A, B] });
    const clock = new MovedClock();
    const loaded = loadConfig(w.configFile);
    // A window of one hour starting two hours from now (station time): ordinary recordings wait.
    const nowMin = localMinutes(clock.now(), TIME_ZONE);
    const window = `${hhmm(nowMin + 120)}-${hhmm(nowMin + 180)}`;
    loaded.config.hq.tus.windows = [window];
    loaded.config.rules.offloadWithinHours = 24; // the default (the world's config turns lateness off for other tests)
    const c = await station.start(loaded, { ...defaultHost(), clock });
    const alarmEvents = (code: string, active: boolean) =>
      w.events('alarm').filter((e) => e.code === code && e.active === active) as { key: string; message: string }[];
    const raised = (code: string, key: string) =>
      waitFor(`${code} ${key} raised on MQTT`, () => alarmEvents(code, true).find((e) => e.key === key), 60_000);
    const cleared = (code: string, key: string) =>
      waitFor(`${code} ${key} cleared on MQTT`, () => alarmEvents(code, false).find((e) => e.key === key), 60_000);
    const deadlineAlarms = () =>
      [...c.board.alarms.values()]
        .filter((a) => ['LATE_OFFLOAD', 'ANNOTATION_OVERDUE', 'UPLOAD_OVERDUE', 'RECORDER_NOT_DOCKED'].includes(a.code))
        .map((a) => a.key)
        .sort();

    // Officer A docks two ordinary recordings captured days ago; one has no sidecar (no case number).
    const [clipA1, clipA2, clipB] = await Promise.all([1, 2, 3].map((v) => sampleMedia('video', 1, 9100 + v)));
    await dock(w, 'A-1', [
      { device: A, source: clipA1, seq: 1, sidecar: true },
      { device: A, source: clipA2, seq: 2, sidecar: false },
    ]);
    await waitFor(
      'A ingested',
      () => c.catalog.list('ready').length === 1 && c.catalog.list('needs-annotation').length === 1,
      60_000,
    );
    const late = await raised('LATE_OFFLOAD', 'late:012345');
    expect(late.message).toMatch(
      /^officer 012345 张三: 2 recordings captured more than 24 h before docking, not yet at HQ · 2 个录像/,
    );
    expect(c.catalog.list().map((f) => f.late)).toEqual([1, 1]);
    // Outside the window: the ready recording waits, and the state says why.
    expect(c.mqtt.snapshot().queue.waitingFor).toBe(
      `waiting for upload window ${window.replace('-', '–')} 等待上传时段 ${window.replace('-', '–')}`,
    );
    expect(deadlineAlarms()).toEqual(['late:012345']);
    await waitFor(
      'dockctl status to say why uploads wait',
      async () => ((await w.status()).queue as unknown as { waitingFor: string | null }).waitingFor?.includes('等待上传时段'),
      30_000,
    );

    // A day and an hour later: not at HQ 24 h after docking.
    clock.advance(25 * HOUR_MS);
    c.deadlines.check();
    const overdue = await raised('UPLOAD_OVERDUE', 'upload-overdue:012345');
    expect(overdue.message).toMatch(/^officer 012345 张三: 2 recordings not at HQ 24 h after docking/);
    expect(deadlineAlarms()).toEqual(['late:012345', 'upload-overdue:012345']);

    // 73 h after docking: the held recording still lacks its case number, and neither recorder has docked since.
    clock.advance(48 * HOUR_MS);
    c.deadlines.check();
    const annotation = await raised('ANNOTATION_OVERDUE', 'annotation:012345');
    expect(annotation.message).toMatch(/^officer 012345 张三: 1 recording still without a case number 72 h after it was stored/);
    const notDockedB = await raised('RECORDER_NOT_DOCKED', 'not-docked:BCT0002');
    expect(notDockedB.message).toMatch(/^recorder BCT0002 \(officer 054321 李四\) not docked for more than 72 h \(never seen\)/);
    const notDockedA = await raised('RECORDER_NOT_DOCKED', 'not-docked:BCT0001');
    expect(notDockedA.message).toMatch(/^recorder BCT0001 \(officer 012345 张三\) not docked for more than 72 h \(last seen /);

    // The station page lists them, with their titles in Chinese (screenshot for review).
    const browser = await chromium.launchPersistentContext(path.join(w.dir, 'chromium-profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1024, height: 1400 },
      locale: 'zh-CN',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await addUser(w.configFile, 'chief', 'admin', 'chief-pass-2026');
      await page.goto(`http://${c.http!.address}/`);
      await page.waitForSelector('#login-dialog[open]', { timeout: 60_000 });
      await page.fill('#login-name', 'chief');
      await page.fill('#password', 'chief-pass-2026');
      await page.click('#login-form button[type="submit"]');
      await page.waitForSelector('#live[data-state="live"]', { timeout: 60_000 });
      for (const code of ['LATE_OFFLOAD', 'UPLOAD_OVERDUE', 'ANNOTATION_OVERDUE', 'RECORDER_NOT_DOCKED'])
        await page.waitForSelector(`.alarm[data-code="${code}"]`, { timeout: 60_000 });
      await expect.poll(() => page.textContent('#alarms')).toContain('记录仪逾期未接入');
      await expect.poll(() => page.textContent('#queue-facts')).toContain('等待上传时段');
      await page.locator('#alarms-panel').scrollIntoViewIfNeeded();
      await fs.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'deadline-alarms.png'), fullPage: true });
    } finally {
      await browser.close();
    }

    // The case number is entered: ANNOTATION_OVERDUE clears.
    const held = c.catalog.list('needs-annotation')[0];
    const done = annotateRecording(
      c.catalog,
      String(held.id),
      { caseNo: 'C-2', purpose: '现场检查', place: '幸福路12号' },
      'test',
    );
    expect(done.ok).toBe(true);
    await cleared('ANNOTATION_OVERDUE', 'annotation:012345');

    // B docks an important recording: it goes to HQ at once, outside the window; its recorder is seen again.
    await dock(w, 'B-1', [{ device: B, source: clipB, seq: 3, important: true, sidecar: true }]);
    await w.uploaded([{ relPath: '', name: '', sha256: await sha256OfFile(clipB), size: 0, localTime: null }], 60_000);
    await cleared('RECORDER_NOT_DOCKED', 'not-docked:BCT0002');
    // Officer A's ordinary recordings still wait for the window.
    expect(c.catalog.list('ready').length).toBe(2);
    expect(w.tus.finished.length).toBe(1);

    // A docks again (the same recordings, already stored): seen.
    await dock(w, 'A-2', [{ device: A, source: clipA1, seq: 1, sidecar: true }]);
    await cleared('RECORDER_NOT_DOCKED', 'not-docked:BCT0001');

    // Into the window: A's recordings go up, and the alarms about them clear.
    clock.advance(90 * 60_000); // 73 h 90 min after the start: 2 h 30 min later in the day, inside the window
    await w.uploaded(
      await Promise.all(
        [clipA1, clipA2].map(async (s) => ({ relPath: '', name: '', sha256: await sha256OfFile(s), size: 0, localTime: null })),
      ),
      60_000,
    );
    await cleared('UPLOAD_OVERDUE', 'upload-overdue:012345');
    await cleared('LATE_OFFLOAD', 'late:012345');
    c.deadlines.check();
    expect(deadlineAlarms()).toEqual([]);
    expect(c.mqtt.snapshot().queue.waitingFor).toBe(null);
  }, 300_000);
});
