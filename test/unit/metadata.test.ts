import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { DeviceEntry } from '../../daemon/config.ts';
import { parseRecordingName, type ParsedName } from '../../daemon/recorder/recordingName.ts';
import {
  buildMetadata,
  describeMissing,
  FIELD_LABELS,
  missingFields,
  parseSidecar,
  REQUIRED_FIELDS,
  type MetadataInputs,
} from '../../daemon/ingest/metadata.ts';
import { createFfmpegTools } from '../../daemon/media/ffprobe.ts';
import { sampleMedia } from '../../scripts/media.ts';

const DEVICES: DeviceEntry[] = [
  { serial: '1234567', officerId: '012345', officerName: '张三' },
  { serial: '7654321', officerId: '054321' }, // registered without a name
  { serial: 'SPARE01', officerId: '099999', officerName: '王五' },
];

function name(n: string): ParsedName {
  const p = parseRecordingName(n);
  if (!p) throw new Error(`test name ${n} does not parse`);
  return p;
}

function inputs(over: Partial<MetadataInputs> = {}): MetadataInputs {
  return { name: null, sidecar: {}, devices: DEVICES, sessionSerial: null, timeZone: 'Asia/Shanghai', ...over };
}

describe('parseSidecar', () => {
  it('takes the four known fields, trimmed', () => {
    const r = parseSidecar(
      JSON.stringify({ caseNo: ' C-2026-001 ', purpose: '现场检查', place: '幸福路12号\n', collector: '李四' }),
    );
    expect(r.error).toBeUndefined();
    expect(r.sidecar).toEqual({ caseNo: 'C-2026-001', purpose: '现场检查', place: '幸福路12号', collector: '李四' });
  });

  it('ignores unknown keys, null values and blank strings', () => {
    const r = parseSidecar(
      JSON.stringify({ caseNo: 'C-1', purpose: '   ', place: null, collector: '', note: 42, capturedAt: 'x' }),
    );
    expect(r.error).toBeUndefined();
    expect(r.sidecar).toEqual({ caseNo: 'C-1' });
  });

  it('accepts an empty object', () => {
    expect(parseSidecar('{}')).toEqual({ sidecar: {} });
  });

  it.each([
    ['truncated JSON', '{"caseNo": "C-1"'],
    ['empty text', ''],
    ['trailing comma', '{"caseNo": "C-1",}'],
    ['single quotes', "{'caseNo': 'C-1'}"],
  ])('reports invalid JSON (%s) and yields no fields', (_what, text) => {
    const r = parseSidecar(text);
    expect(r.error).toMatch(/^sidecar is not valid JSON: /);
    expect(r.sidecar).toEqual({});
  });

  it.each([
    ['an array', '[{"caseNo": "C-1"}]'],
    ['a string', '"C-1"'],
    ['a number', '42'],
    ['null', 'null'],
    ['true', 'true'],
  ])('reports a document that is %s', (_what, text) => {
    expect(parseSidecar(text)).toEqual({ sidecar: {}, error: 'sidecar is not a JSON object' });
  });

  it.each([
    ['caseNo', 12345],
    ['purpose', ['a', 'b']],
    ['place', { road: 'x' }],
    ['collector', true],
  ])('rejects the whole sidecar when %s is not a string', (key, value) => {
    const r = parseSidecar(JSON.stringify({ caseNo: 'C-1', purpose: 'p', place: 'pl', collector: 'c', [key]: value }));
    expect(r.error).toBe(`sidecar ${key} must be a string`);
    expect(r.sidecar).toEqual({});
  });

  it('allows 500 characters (after trimming) and rejects 501', () => {
    const ok = parseSidecar(JSON.stringify({ place: `  ${'路'.repeat(500)}  ` }));
    expect(ok.error).toBeUndefined();
    expect(ok.sidecar.place).toHaveLength(500);
    const long = parseSidecar(JSON.stringify({ caseNo: 'C-1', place: 'x'.repeat(501) }));
    expect(long.error).toBe('sidecar place is longer than 500 characters');
    expect(long.sidecar).toEqual({});
  });

  it('does not let a __proto__ key leak fields onto the sidecar', () => {
    const r = parseSidecar('{"__proto__": {"caseNo": "INJECTED"}, "purpose": "p"}');
    expect(r.sidecar).toEqual({ purpose: 'p' });
    expect(r.sidecar.caseNo).toBeUndefined();
  });
});

describe('buildMetadata', () => {
  it('fills everything the file name carries and names the collector from the device registry', () => {
    const m = buildMetadata(inputs({ name: name('012345_1234567_20261128093000_0001IMP.mp4') }));
    expect(m).toEqual({
      caseNo: null,
      capturedAt: '2026-11-28T09:30:00+08:00',
      capturedAtSource: 'file-name',
      recorderTime: '2026-11-28T09:30:00',
      place: null,
      collector: '张三',
      purpose: null,
      deviceSerial: '1234567',
      officerId: '012345',
      important: true,
    });
  });

  it("finds the officer name by officer id even on another officer's recorder", () => {
    // 王五 (099999) recorded on 张三's recorder: the name is his, not the recorder owner's.
    const m = buildMetadata(inputs({ name: name('099999_1234567_20261128093000_0001.mp4') }));
    expect(m.officerId).toBe('099999');
    expect(m.collector).toBe('王五');
  });

  it('falls back to the officer id when the officer is not registered, never to the recorder owner', () => {
    const m = buildMetadata(inputs({ name: name('000777_1234567_20261128093000_0001.mp4') }));
    expect(m.officerId).toBe('000777');
    expect(m.collector).toBe('000777');
  });

  it('uses the officer id as collector for a registered device without an officer name', () => {
    const m = buildMetadata(inputs({ name: name('7654321_054321_20261128093000_0001.mp4') }));
    expect(m.deviceSerial).toBe('7654321');
    expect(m.collector).toBe('054321');
  });

  it('lets the sidecar override the collector and supply case no., purpose and place', () => {
    const m = buildMetadata(
      inputs({
        name: name('012345_1234567_20261128093000_0001.mp4'),
        sidecar: { caseNo: 'C-9', purpose: '取证', place: '人民路8号', collector: '李四' },
        defaultPlace: '站内',
      }),
    );
    expect(m).toMatchObject({ caseNo: 'C-9', purpose: '取证', place: '人民路8号', collector: '李四', officerId: '012345' });
  });

  it('uses the station default place only when the sidecar has none', () => {
    expect(buildMetadata(inputs({ defaultPlace: '一号采集站' })).place).toBe('一号采集站');
    expect(buildMetadata(inputs({ defaultPlace: '一号采集站', sidecar: { place: '现场' } })).place).toBe('现场');
    expect(buildMetadata(inputs()).place).toBeNull();
  });

  it('takes serial and officer from the docked session when the name does not follow the pattern', () => {
    const m = buildMetadata(inputs({ sessionSerial: '1234567' }));
    expect(m).toMatchObject({
      deviceSerial: '1234567',
      officerId: '012345',
      collector: '张三',
      important: false,
      capturedAt: null,
      capturedAtSource: null,
    });
  });

  it('leaves collector and officer empty for an unknown recorder with an unparsed name', () => {
    const m = buildMetadata(inputs({ sessionSerial: 'UNKNOWN' }));
    expect(m).toMatchObject({ deviceSerial: 'UNKNOWN', officerId: null, collector: null });
    expect(buildMetadata(inputs()).deviceSerial).toBeNull();
  });

  it('prefers the file-name time over the container creation_time', () => {
    const m = buildMetadata(
      inputs({ name: name('012345_1234567_20261128093000_0001.mp4'), creationTime: '2020-01-01T00:00:00.000000Z' }),
    );
    expect(m.capturedAt).toBe('2026-11-28T09:30:00+08:00');
    expect(m.capturedAtSource).toBe('file-name');
  });

  it('uses the creation_time (UTC) in the station zone when the name has no time', () => {
    const m = buildMetadata(inputs({ sessionSerial: '1234567', creationTime: '2026-11-28T01:30:00.000000Z' }));
    expect(m.capturedAt).toBe('2026-11-28T09:30:00+08:00');
    expect(m.capturedAtSource).toBe('creation_time');
    expect(m.recorderTime).toBe('2026-11-28T01:30:00.000000Z');
  });

  it('ignores an unparseable creation_time', () => {
    const m = buildMetadata(inputs({ creationTime: 'not a date' }));
    expect(m.capturedAt).toBeNull();
    expect(m.capturedAtSource).toBeNull();
    expect(m.recorderTime).toBeNull();
  });

  it('interprets the file-name time in the station zone (DST zone)', () => {
    const summer = buildMetadata(inputs({ name: name('012345_1234567_20260701120000_1.mp4'), timeZone: 'Europe/Berlin' }));
    const winter = buildMetadata(inputs({ name: name('012345_1234567_20260101120000_1.mp4'), timeZone: 'Europe/Berlin' }));
    expect(summer.capturedAt).toBe('2026-07-01T12:00:00+02:00');
    expect(winter.capturedAt).toBe('2026-01-01T12:00:00+01:00');
  });

  it('reads capture time from the creation_time of a real recording (ffmpeg-made, probed with ffprobe)', async () => {
    const file = await sampleMedia('video', 2, 301);
    const probe = await createFfmpegTools().probe(file, 'video', (await fs.stat(file)).size);
    expect(probe.ok).toBe(true);
    expect(probe.creationTime).toBeDefined();
    const m = buildMetadata(
      inputs({ name: parseRecordingName('VID0001.mp4'), sessionSerial: '1234567', creationTime: probe.creationTime }),
    );
    // scripts/media.ts writes creation_time=2026-11-28T01:30:00Z into the container.
    expect(m.capturedAt).toBe('2026-11-28T09:30:00+08:00');
    expect(m.capturedAtSource).toBe('creation_time');
  });
});

describe('missingFields', () => {
  it('lists nothing when all five fields are present', () => {
    expect(
      missingFields({ caseNo: 'C', capturedAt: '2026-11-28T09:30:00+08:00', place: 'P', collector: '张三', purpose: 'X' }),
    ).toEqual([]);
  });

  it('lists every field that is absent, null, empty or blank, in the order of the rules', () => {
    expect(missingFields({})).toEqual([...REQUIRED_FIELDS]);
    expect(missingFields({ caseNo: '  ', capturedAt: null, place: '', collector: '张三', purpose: undefined })).toEqual([
      'caseNo',
      'capturedAt',
      'place',
      'purpose',
    ]);
  });

  it('accepts the metadata buildMetadata produces and reports its gaps', () => {
    const m = buildMetadata(inputs({ name: name('012345_1234567_20261128093000_0001.mp4'), sidecar: { caseNo: 'C-1' } }));
    expect(missingFields(m)).toEqual(['place', 'purpose']);
  });

  it('describes missing fields with their labels', () => {
    expect(describeMissing(['caseNo', 'purpose'])).toBe(`missing ${FIELD_LABELS.caseNo}, ${FIELD_LABELS.purpose}`);
    expect(describeMissing(['place'])).toContain('采集地点');
  });
});
