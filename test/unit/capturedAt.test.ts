import { describe, expect, it } from 'vitest';
import { parseCapturedAt } from '../../daemon/media/capturedAt.ts';

function refusal(text: string, opts?: { wallTimeZone?: string }): string {
  const r = parseCapturedAt(text, opts);
  if (r.ok) throw new Error(`${text} was accepted as ${r.iso}`);
  return r.message;
}

describe('parseCapturedAt (采集时间 typed by a person)', () => {
  it('accepts real dates and times with an offset, kept as written', () => {
    for (const t of [
      '2026-11-28T09:30:00+08:00',
      '2026-11-28T09:30+08:00',
      '2026-11-28T01:30:00Z',
      '2026-11-28T09:30:00.250+08:00',
      '2028-02-29T23:59:59-05:00',
      '2000-02-29T00:00:00+00:00',
      '2026-12-31T23:59:59+14:00',
      '2026-01-01T00:00:00-12:00',
      '2026-06-30T12:00:00+05:45',
    ]) {
      expect(parseCapturedAt(t)).toEqual({ ok: true, iso: t });
    }
    expect(parseCapturedAt('  2026-11-28T09:30:00+08:00\n')).toEqual({ ok: true, iso: '2026-11-28T09:30:00+08:00' });
  });

  it('refuses days a month does not have, with the reason in one line', () => {
    expect(refusal('2026-02-30T10:00:00+08:00')).toBe(
      'capture time (采集时间) "2026-02-30T10:00:00+08:00": February 2026 has no day 30 (it has 28 days)',
    );
    expect(refusal('2026-02-29T10:00:00+08:00')).toMatch(/February 2026 has no day 29/);
    expect(refusal('1900-02-29T10:00:00+08:00')).toMatch(/February 1900 has no day 29/);
    expect(refusal('2026-04-31T10:00:00+08:00')).toMatch(/April 2026 has no day 31 \(it has 30 days\)/);
    expect(refusal('2026-01-00T10:00:00+08:00')).toMatch(/January 2026 has no day 00/);
  });

  it('refuses months and times of day that do not exist', () => {
    expect(refusal('2026-13-01T10:00:00+08:00')).toMatch(/there is no month 13/);
    expect(refusal('2026-00-10T10:00:00+08:00')).toMatch(/there is no month 00/);
    expect(refusal('2026-11-28T24:61:00+08:00')).toMatch(/24:61:00 is not a time of day/);
    expect(refusal('2026-11-28T24:00:00+08:00')).toMatch(/is not a time of day/);
    expect(refusal('2026-11-28T09:60+08:00')).toMatch(/09:60 is not a time of day/);
    expect(refusal('2026-11-28T09:30:60+08:00')).toMatch(/is not a time of day/);
  });

  it('refuses a missing or impossible offset', () => {
    expect(refusal('2026-11-28T09:30:00')).toMatch(/has no zone offset; add Z or ±hh:mm/);
    expect(refusal('2026-11-28T09:30')).toMatch(/has no zone offset/);
    expect(refusal('2026-11-28T09:30:00+15:00')).toMatch(/\+15:00 is not a zone offset/);
    expect(refusal('2026-11-28T09:30:00+08:60')).toMatch(/is not a zone offset/);
    // The date is judged before the offset is asked for.
    expect(refusal('2026-02-30T10:00:00')).toMatch(/February 2026 has no day 30/);
  });

  it('refuses what is not ISO 8601 date-time at all', () => {
    for (const t of [
      'yesterday at nine',
      '2026-11-28',
      '2026-11-28 09:30:00+08:00',
      '28/11/2026 09:30',
      '2026-11-28T9:30:00+08:00',
      '2026-11-28T09:30:00+0800',
      '2026-11-28T09:30:00 +08:00',
      '2026-11-28T09:30:00z',
      '+2026-11-28T09:30:00Z',
      '',
    ]) {
      expect(refusal(t)).toMatch(/is not a date and time in ISO 8601 with a zone offset \(e\.g\. 2026-11-28T09:30:00\+08:00\)/);
    }
  });

  it('takes a wall time without an offset in the station zone only when asked to', () => {
    expect(parseCapturedAt('2026-11-28T09:30', { wallTimeZone: 'Asia/Shanghai' })).toEqual({
      ok: true,
      iso: '2026-11-28T09:30:00+08:00',
    });
    expect(parseCapturedAt('2026-07-01T09:30:15', { wallTimeZone: 'Europe/Berlin' })).toEqual({
      ok: true,
      iso: '2026-07-01T09:30:15+02:00',
    });
    expect(parseCapturedAt('2026-11-28T09:30:00+05:00', { wallTimeZone: 'Asia/Shanghai' })).toEqual({
      ok: true,
      iso: '2026-11-28T09:30:00+05:00',
    });
    expect(refusal('2026-02-30T10:00', { wallTimeZone: 'Asia/Shanghai' })).toMatch(/February 2026 has no day 30/);
    expect(refusal('2026-11-28T24:61', { wallTimeZone: 'Asia/Shanghai' })).toMatch(/24:61 is not a time of day/);
    // 02:30 on the morning the clocks go forward in New York never happened there.
    expect(refusal('2026-03-08T02:30', { wallTimeZone: 'America/New_York' })).toMatch(/does not exist in America\/New_York/);
    expect(parseCapturedAt('2026-03-08T03:30', { wallTimeZone: 'America/New_York' })).toEqual({
      ok: true,
      iso: '2026-03-08T03:30:00-04:00',
    });
  });
});
