/** Upload windows (hq.tus.windows), the shared upload cap's bucket, and what a SIGHUP applies or defers. */
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../daemon/config.ts';
import { configChanges } from '../../daemon/configReload.ts';
import { UploadRateLimit } from '../../daemon/upload/rateLimit.ts';
import { inUploadWindow, parseWindows, waitingForWindow } from '../../daemon/upload/uploadWindows.ts';

const SHANGHAI = 'Asia/Shanghai';
/** A moment at this wall time in Shanghai (UTC+8, no DST). */
const shanghai = (hhmm: string) => new Date(`2026-12-01T${hhmm}:00+08:00`);

function config(tus: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return validateConfig(
    {
      station: { id: 'dock-07' },
      storage: { dir: 'store' },
      dock: { mountRoots: ['dock'] },
      hq: { tus: { endpoint: 'https://hq.example.org/files/', ...tus }, mqtt: { url: 'mqtts://hq.example.org:8883' } },
      ...more,
    },
    '/srv',
  );
}

describe('upload windows', () => {
  it('a window that wraps midnight holds the night and not the day, in the station time zone', () => {
    const w = parseWindows(['22:00-06:00']);
    expect(inUploadWindow(w, shanghai('23:30'), SHANGHAI)).toBe(true);
    expect(inUploadWindow(w, shanghai('05:59'), SHANGHAI)).toBe(true);
    expect(inUploadWindow(w, shanghai('06:00'), SHANGHAI)).toBe(false);
    expect(inUploadWindow(w, shanghai('21:59'), SHANGHAI)).toBe(false);
    // The same instant is 15:30 UTC: outside a 22:00-06:00 window read in UTC.
    expect(inUploadWindow(w, shanghai('23:30'), 'UTC')).toBe(false);
    expect(waitingForWindow(w)).toBe('waiting for upload window 22:00–06:00 等待上传时段 22:00–06:00');
  });

  it('no window is always open; several windows are any of them; a window from a time to itself is the whole day', () => {
    expect(inUploadWindow([], shanghai('12:00'), SHANGHAI)).toBe(true);
    const two = parseWindows(['01:00-02:00', '12:00-13:30']);
    expect(inUploadWindow(two, shanghai('13:00'), SHANGHAI)).toBe(true);
    expect(inUploadWindow(two, shanghai('03:00'), SHANGHAI)).toBe(false);
    expect(inUploadWindow(parseWindows(['00:00-00:00']), shanghai('17:00'), SHANGHAI)).toBe(true);
  });

  it('the config names a malformed window in one line', () => {
    let err: unknown;
    try {
      config({ windows: ['22-6'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^config: hq\.tus\.windows\.0: has an invalid value .*22:00-06:00/);
  });
});

describe('the upload bucket', () => {
  it('lets bytes go as its clock allows, never more than one bucket at once; rate 0 lets everything go', async () => {
    let now = 0;
    const limit = new UploadRateLimit(10_000, () => now);
    const granted: number[] = [];
    const all = [1, 2, 3, 4, 5].map((i) => limit.take(2_000).then(() => granted.push(i)));
    // The bucket starts empty: nothing goes until the clock moves.
    await new Promise((r) => setTimeout(r, 30));
    expect(granted).toEqual([]);
    now += 400; // 4,000 bytes' worth, but the bucket holds 2,000 (a fifth of a second): one piece, and no more.
    await all[0];
    await new Promise((r) => setTimeout(r, 30));
    expect(granted).toEqual([1]);
    limit.setRate(0); // no cap: the rest goes at once
    await Promise.all(all);
    expect(granted).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('SIGHUP', () => {
  it('applies the window and the cap, and names other changed keys as needing a restart (names only)', () => {
    const running = config();
    const next = config(
      { maxBytesPerSecond: 1_000_000, windows: ['22:00-06:00'], headers: { Authorization: 'Bearer s3cret' } },
      { rules: { uploadWithinHours: 12 } },
    );
    const changes = configChanges(running, next);
    expect(changes.applied).toEqual([
      { key: 'hq.tus.maxBytesPerSecond', from: 0, to: 1_000_000 },
      { key: 'hq.tus.windows', from: [], to: ['22:00-06:00'] },
    ]);
    expect(changes.needRestart).toEqual(['hq.tus.headers.Authorization', 'rules.uploadWithinHours']);
    expect(JSON.stringify(changes)).not.toContain('s3cret');
  });
});
