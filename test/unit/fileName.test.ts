import { describe, expect, it } from 'vitest';
import { parseRecordingName } from '../../daemon/recorder/recordingName.ts';
import { mediaKind, mimeType } from '../../daemon/media/mediaTypes.ts';
import { instantInZone, zonedIso } from '../../daemon/media/zonedTime.ts';

/** The wall time of an instant in a zone, as YYYY-MM-DDThh:mm:ss (independent of the code under test). */
function wallTimeIn(ms: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(ms));
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return `${get('year')}-${get('month')}-${get('day')}T${get('hour')}:${get('minute')}:${get('second')}`;
}

function offsetOf(iso: string): string {
  return iso.slice(19);
}

describe('parseRecordingName', () => {
  it('parses the officer-first GA/T 947 name', () => {
    expect(parseRecordingName('012345_1234567_20261128093000_0001.mp4')).toEqual({
      officerId: '012345',
      serial: '1234567',
      localTime: '2026-11-28T09:30:00',
      seq: '0001',
      important: false,
      order: 'officer-first',
    });
  });

  it('parses the device-first order, telling the fields apart by length', () => {
    expect(parseRecordingName('1234567_012345_20261128093000_0042.jpg')).toEqual({
      officerId: '012345',
      serial: '1234567',
      localTime: '2026-11-28T09:30:00',
      seq: '0042',
      important: false,
      order: 'device-first',
    });
  });

  it('accepts letters in the 7-character serial in either order', () => {
    expect(parseRecordingName('012345_AB12CDE_20260101000000_1.wav')).toMatchObject({
      officerId: '012345',
      serial: 'AB12CDE',
      order: 'officer-first',
    });
    expect(parseRecordingName('AB12CDE_012345_20260101000000_1.wav')).toMatchObject({
      officerId: '012345',
      serial: 'AB12CDE',
      order: 'device-first',
    });
  });

  it.each([
    ['012345_1234567_20261128093000_0001IMP.mp4'],
    ['012345_1234567_20261128093000_0001_IMP.mp4'],
    ['012345_1234567_20261128093000_0001imp.mp4'],
    ['012345_1234567_20261128093000_0001_imp.MP4'],
    ['1234567_012345_20261128093000_0001_Imp.jpg'],
  ])('marks %s as important', (name) => {
    const p = parseRecordingName(name);
    expect(p).not.toBeNull();
    expect(p!.important).toBe(true);
    expect(p!.seq).toBe('0001');
  });

  it('keeps the sequence number exactly as written (1 to 8 digits)', () => {
    expect(parseRecordingName('012345_1234567_20261128093000_7.mp4')!.seq).toBe('7');
    expect(parseRecordingName('012345_1234567_20261128093000_00000123.mp4')!.seq).toBe('00000123');
    expect(parseRecordingName('012345_1234567_20261128093000_123456789.mp4')).toBeNull();
  });

  it('accepts the last second of a day and a leap day', () => {
    expect(parseRecordingName('012345_1234567_20261231235959_1.mp4')!.localTime).toBe('2026-12-31T23:59:59');
    expect(parseRecordingName('012345_1234567_20240229120000_1.mp4')!.localTime).toBe('2024-02-29T12:00:00');
    expect(parseRecordingName('012345_1234567_20000229120000_1.mp4')!.localTime).toBe('2000-02-29T12:00:00');
  });

  it.each([
    ['month 13', '20261328093000'],
    ['month 00', '20260028093000'],
    ['day 00', '20261100093000'],
    ['Feb 30', '20260230093000'],
    ['Feb 29 in a common year', '20260229093000'],
    ['Feb 29 in 1900 (not a leap year)', '19000229093000'],
    ['Apr 31', '20260431093000'],
    ['hour 24', '20261128243000'],
    ['minute 60', '20261128096000'],
    ['second 60', '20261128093060'],
  ])('rejects an impossible capture time: %s', (_what, stamp) => {
    expect(parseRecordingName(`012345_1234567_${stamp}_0001.mp4`)).toBeNull();
  });

  it.each([
    ['officer id of 5 digits', '01234_1234567_20261128093000_0001.mp4'],
    ['officer id of 7 digits beside a 7-char serial', '0123456_1234567_20261128093000_0001.mp4'],
    ['two 6-digit fields (ambiguous)', '012345_123456_20261128093000_0001.mp4'],
    ['serial of 8 characters', '012345_12345678_20261128093000_0001.mp4'],
    ['officer id with letters (officer first)', 'A12345_1234567_20261128093000_0001.mp4'],
    ['officer id with letters (device first)', '1234567_A12345_20261128093000_0001.mp4'],
    ['13-digit time stamp', '012345_1234567_2026112809300_0001.mp4'],
    ['15-digit time stamp', '012345_1234567_202611280930001_0001.mp4'],
    ['no sequence number', '012345_1234567_20261128093000.mp4'],
    ['empty sequence number', '012345_1234567_20261128093000_.mp4'],
    ['a doubled underscore', '012345__1234567_20261128093000_0001.mp4'],
    ['a trailing word after IMP', '012345_1234567_20261128093000_0001IMPX.mp4'],
    ['IMP followed by an underscore', '012345_1234567_20261128093000_0001IMP_.mp4'],
    ['a leading space', ' 012345_1234567_20261128093000_0001.mp4'],
    ['hyphens instead of underscores', '012345-1234567-20261128093000-0001.mp4'],
    ['a sidecar name', '012345_1234567_20261128093000_0001.meta.json'],
    ['an empty string', ''],
    ['only an extension', '.mp4'],
    ['an unrelated name', 'VID_20261128_093000.mp4'],
    ['a newline inside', '012345_1234567_20261128093000_0001\n.mp4'],
  ])('returns null for %s', (_what, name) => {
    expect(parseRecordingName(name)).toBeNull();
  });

  it.each([
    ['full-width digits in the officer id', '０１２３４５_1234567_20261128093000_0001.mp4'],
    ['Chinese characters in place of the officer id', '张三张三张三_1234567_20261128093000_0001.mp4'],
    ['Arabic-Indic digits in the time stamp', '012345_1234567_٢٠٢٦١١٢٨٠٩٣٠٠٠_0001.mp4'],
    ['the Kelvin sign (case-folds to k) in the serial', '012345_123456\u212A_20261128093000_0001.mp4'],
    ['the long s (case-folds to s) in the serial', '012345_123456\u017F_20261128093000_0001.mp4'],
    ['a combining accent on a serial character', '012345_123456e\u0301_20261128093000_0001.mp4'],
  ])('returns null for unicode look-alikes: %s', (_what, name) => {
    expect(parseRecordingName(name)).toBeNull();
  });

  it('parses the base name of a path inside the volume', () => {
    expect(parseRecordingName('DCIM/100MEDIA/012345_1234567_20261128093000_0003.mp4')).toMatchObject({
      officerId: '012345',
      seq: '0003',
    });
  });

  it('parses a name without an extension (the name pattern is about the base name; mediaKind decides what is a recording)', () => {
    expect(parseRecordingName('012345_1234567_20261128093000_0001')).toMatchObject({
      officerId: '012345',
      serial: '1234567',
      seq: '0001',
    });
    expect(mediaKind('012345_1234567_20261128093000_0001')).toBeNull();
  });

  it('does not take a second extension as part of the name', () => {
    expect(parseRecordingName('012345_1234567_20261128093000_0001.mp4.mp4')).toBeNull();
  });
});

describe('mediaKind and mimeType', () => {
  it.each([
    ['a.mp4', 'video', 'video/mp4'],
    ['a.mov', 'video', 'video/quicktime'],
    ['a.avi', 'video', 'video/x-msvideo'],
    ['a.ts', 'video', 'video/mp2t'],
    ['a.wav', 'audio', 'audio/wav'],
    ['a.mp3', 'audio', 'audio/mpeg'],
    ['a.aac', 'audio', 'audio/aac'],
    ['a.amr', 'audio', 'audio/amr'],
    ['a.m4a', 'audio', 'audio/mp4'],
    ['a.jpg', 'photo', 'image/jpeg'],
    ['a.jpeg', 'photo', 'image/jpeg'],
    ['A.MP4', 'video', 'video/mp4'],
    ['B.JpEg', 'photo', 'image/jpeg'],
    ['DCIM/100MEDIA/x.Wav', 'audio', 'audio/wav'],
  ])('%s is %s (%s)', (name, kind, mime) => {
    expect(mediaKind(name)).toBe(kind);
    expect(mimeType(name)).toBe(mime);
  });

  it.each([['notes.txt'], ['README'], ['clip.mp4.txt'], ['x.meta.json'], ['.mp4'], ['a.mp44'], ['a.mkv'], ['a.'], ['']])(
    '%s is not a recording',
    (name) => {
      expect(mediaKind(name)).toBeNull();
      expect(mimeType(name)).toBe('application/octet-stream');
    },
  );
});

describe('zonedIso', () => {
  it('gives Asia/Shanghai wall times +08:00', () => {
    expect(zonedIso('2026-11-28T09:30:00', 'Asia/Shanghai')).toBe('2026-11-28T09:30:00+08:00');
    expect(zonedIso('2026-07-01T00:00:00', 'Asia/Shanghai')).toBe('2026-07-01T00:00:00+08:00');
    expect(Date.parse(zonedIso('2026-11-28T09:30:00', 'Asia/Shanghai'))).toBe(Date.UTC(2026, 10, 28, 1, 30, 0));
  });

  it('uses the rules in force on the date (China observed summer time 1986-1991)', () => {
    expect(zonedIso('1990-07-01T12:00:00', 'Asia/Shanghai')).toBe('1990-07-01T12:00:00+09:00');
    expect(zonedIso('1990-01-01T12:00:00', 'Asia/Shanghai')).toBe('1990-01-01T12:00:00+08:00');
  });

  it('gives UTC wall times +00:00', () => {
    expect(zonedIso('2026-03-29T02:30:00', 'UTC')).toBe('2026-03-29T02:30:00+00:00');
  });

  it('formats negative and non-whole-hour offsets', () => {
    expect(zonedIso('2026-01-15T08:00:00', 'America/St_Johns')).toBe('2026-01-15T08:00:00-03:30');
    expect(zonedIso('2026-07-15T08:00:00', 'America/St_Johns')).toBe('2026-07-15T08:00:00-02:30');
    expect(zonedIso('2026-01-15T08:00:00', 'Asia/Kathmandu')).toBe('2026-01-15T08:00:00+05:45');
    expect(zonedIso('2026-01-15T08:00:00', 'America/New_York')).toBe('2026-01-15T08:00:00-05:00');
  });

  it('switches offset exactly at the Europe/Berlin spring-forward transition (2026-03-29 02:00 → 03:00)', () => {
    expect(zonedIso('2026-03-29T01:59:59', 'Europe/Berlin')).toBe('2026-03-29T01:59:59+01:00');
    expect(zonedIso('2026-03-29T03:00:00', 'Europe/Berlin')).toBe('2026-03-29T03:00:00+02:00');
    expect(zonedIso('2026-03-28T12:00:00', 'Europe/Berlin')).toBe('2026-03-28T12:00:00+01:00');
    expect(zonedIso('2026-03-30T12:00:00', 'Europe/Berlin')).toBe('2026-03-30T12:00:00+02:00');
  });

  it('switches offset exactly at the Europe/Berlin fall-back transition (2026-10-25 03:00 → 02:00)', () => {
    expect(zonedIso('2026-10-25T01:59:59', 'Europe/Berlin')).toBe('2026-10-25T01:59:59+02:00');
    expect(zonedIso('2026-10-25T03:00:00', 'Europe/Berlin')).toBe('2026-10-25T03:00:00+01:00');
  });

  it('gives a wall time in the spring-forward gap (which never happened) a self-consistent CET or CEST reading', () => {
    const iso = zonedIso('2026-03-29T02:30:00', 'Europe/Berlin');
    expect(iso.slice(0, 19)).toBe('2026-03-29T02:30:00');
    expect(['+01:00', '+02:00']).toContain(offsetOf(iso));
    expect(Number.isNaN(Date.parse(iso))).toBe(false);
  });

  it('gives a wall time in the fall-back overlap (which happened twice) one of its two real instants', () => {
    const iso = zonedIso('2026-10-25T02:30:00', 'Europe/Berlin');
    expect(['2026-10-25T02:30:00+02:00', '2026-10-25T02:30:00+01:00']).toContain(iso);
    expect(wallTimeIn(Date.parse(iso), 'Europe/Berlin')).toBe('2026-10-25T02:30:00');
  });

  it('round-trips every quarter hour around both Berlin transitions back to the same wall time', () => {
    for (const day of ['2026-03-29', '2026-10-25']) {
      for (let m = 0; m < 24 * 60; m += 15) {
        const wall = `${day}T${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}:00`;
        if (day === '2026-03-29' && wall >= '2026-03-29T02:00:00' && wall < '2026-03-29T03:00:00') continue; // the gap
        const iso = zonedIso(wall, 'Europe/Berlin');
        expect(iso.slice(0, 19)).toBe(wall);
        expect(wallTimeIn(Date.parse(iso), 'Europe/Berlin'), wall).toBe(wall);
      }
    }
  });
});

describe('instantInZone', () => {
  it('renders a UTC instant (container creation_time) in Asia/Shanghai', () => {
    expect(instantInZone(new Date('2026-11-28T01:30:00Z'), 'Asia/Shanghai')).toBe('2026-11-28T09:30:00+08:00');
    expect(instantInZone(new Date('2026-12-31T16:00:00Z'), 'Asia/Shanghai')).toBe('2027-01-01T00:00:00+08:00');
  });

  it('renders in UTC with +00:00 and drops milliseconds', () => {
    expect(instantInZone(new Date('2026-11-28T01:30:00.987Z'), 'UTC')).toBe('2026-11-28T01:30:00+00:00');
  });

  it('follows the Europe/Berlin transitions instant by instant', () => {
    expect(instantInZone(new Date('2026-03-29T00:59:59Z'), 'Europe/Berlin')).toBe('2026-03-29T01:59:59+01:00');
    expect(instantInZone(new Date('2026-03-29T01:00:00Z'), 'Europe/Berlin')).toBe('2026-03-29T03:00:00+02:00');
    // The repeated hour on 25 October: the same wall time, once in CEST and once in CET.
    expect(instantInZone(new Date('2026-10-25T00:30:00Z'), 'Europe/Berlin')).toBe('2026-10-25T02:30:00+02:00');
    expect(instantInZone(new Date('2026-10-25T01:30:00Z'), 'Europe/Berlin')).toBe('2026-10-25T02:30:00+01:00');
  });

  it('always denotes the same instant it was given (every 10 minutes across both Berlin transitions)', () => {
    for (const start of [Date.UTC(2026, 2, 28, 22), Date.UTC(2026, 9, 24, 22)]) {
      for (let ms = start; ms < start + 6 * 3600_000; ms += 600_000) {
        const iso = instantInZone(new Date(ms), 'Europe/Berlin');
        expect(Date.parse(iso)).toBe(ms);
        expect(iso.slice(0, 19)).toBe(wallTimeIn(ms, 'Europe/Berlin'));
      }
    }
  });

  it('agrees with zonedIso for unambiguous wall times', () => {
    const ms = Date.UTC(2026, 5, 1, 10, 15, 30);
    const iso = instantInZone(new Date(ms), 'Europe/Berlin');
    expect(zonedIso(iso.slice(0, 19), 'Europe/Berlin')).toBe(iso);
  });
});
