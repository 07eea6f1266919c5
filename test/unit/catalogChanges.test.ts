/**
 * The catalog's named changes (each one transaction: state, history, audit entry and outbox event together) and its
 * named queries, on a real SQLite catalog in a temp dir.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../daemon/security/password.ts';
import { Catalog, type FileFields } from '../../daemon/store/catalog.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('Catalog named changes', () => {
  let dir: string;
  let catalog: Catalog;
  let clock: number;
  const now = () => new Date(clock);
  const at = (plusMs = 0) => new Date(clock + plusMs).toISOString();

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-changes-'));
    clock = Date.parse('2026-12-01T08:00:00.000Z');
    catalog = Catalog.open(dir, { now });
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  function stored(name: string, over: Partial<FileFields> = {}): number {
    const id = catalog.beginCopy({ size: 100, kind: 'video', filename: `${name}.mp4`, source_path: `DCIM/${name}.mp4`, ...over });
    const sighting = { sessionId: null, deviceSerial: '1234567', sourcePath: `DCIM/${name}.mp4`, size: 100, mtimeMs: 1 };
    return catalog.finishCopy(id, sha(name), sighting).fileId;
  }

  const events = () => catalog.outboxPeek(100).map((e) => JSON.parse(e.payload) as Record<string, unknown>);
  const auditTypes = () => catalog.auditEntries().map((e) => [e.type, e.subject]);

  it('markUploaded moves uploading → uploaded with the upload fields and announces file.uploaded, once', () => {
    const id = stored('up');
    catalog.transition(id, 'uploading', { upload_url: 'http://hq/files/1', upload_offset: 40 });
    expect(catalog.markUploaded(id, at())).toBe(true);
    expect(catalog.get(id)).toMatchObject({
      state: 'uploaded',
      upload_offset: 100,
      uploaded_at: at(),
      announced_at: at(),
      last_error: null,
    });
    expect(events()).toEqual([
      expect.objectContaining({ type: 'file.uploaded', at: at(), id, sha256: sha('up'), uploadUrl: 'http://hq/files/1' }),
    ]);
    // Archived by a receipt meanwhile: not moved back, nothing announced.
    catalog.transition(id, 'archived');
    expect(catalog.markUploaded(id, at())).toBe(false);
    expect(catalog.get(id)!.state).toBe('archived');
    expect(events()).toHaveLength(1);
  });

  it('classified announces file.ingested and, as they apply, file.rejected, file.damaged and file.needs-annotation', () => {
    const empty = stored('empty', { size: 0 });
    expect(
      catalog.classified(empty, { state: 'rejected', fields: { reason: 'empty' }, detail: 'empty', rejected: 'empty' }),
    ).toBe(true);
    const damaged = stored('damaged');
    catalog.classified(damaged, {
      state: 'needs-annotation',
      fields: { integrity: 'damaged', integrity_note: 'moov atom not found', reason: 'missing case no.' },
      damaged: 'moov atom not found',
      missing: ['caseNo'],
    });
    const clean = stored('clean');
    catalog.classified(clean, { state: 'ready', fields: { integrity: 'ok' }, missing: [] });
    expect(events().map((e) => [e.type, e.id, e.reason ?? e.missing ?? null])).toEqual([
      ['file.ingested', empty, null],
      ['file.rejected', empty, 'empty'],
      ['file.ingested', damaged, null],
      ['file.damaged', damaged, 'moov atom not found'],
      ['file.needs-annotation', damaged, ['caseNo']],
      ['file.ingested', clean, null],
    ]);
    expect(events()[3]).toMatchObject({ integrity: 'damaged', integrityNote: 'moov atom not found', state: 'needs-annotation' });
    expect(catalog.historyOf(empty).at(-1)).toMatchObject({ from_state: 'stored', to_state: 'rejected', detail: 'empty' });
    // Only a stored file gets a verdict.
    expect(catalog.classified(clean, { state: 'ready', fields: {} })).toBe(false);
    expect(events()).toHaveLength(6);
  });

  it('objectFreed, receiptVerified and playableCopyMade set their column and add their audit entry', () => {
    const id = stored('kept');
    catalog.transition(id, 'archived', { archived_at: at() });
    const file = catalog.get(id)!;
    catalog.receiptVerified(file, at(1000));
    catalog.objectFreed(file, at(2000), 'past retention');
    catalog.playableCopyMade(file, { sha256: sha('derived'), size: 50, how: 'ffmpeg -c copy' });
    expect(catalog.get(id)).toMatchObject({ receipt_at: at(1000), local_deleted_at: at(2000), derived_sha256: sha('derived') });
    expect(auditTypes()).toEqual([
      ['receipt.verified', sha('kept')],
      ['object.deleted', sha('kept')],
      ['file.playable-copy', sha('kept')],
    ]);
    expect(JSON.parse(catalog.auditEntries()[1].data)).toEqual({ id, where: 'station store', why: 'past retention' });
  });

  it('wipedFromRecorder marks the sighting wiped and announces recorder.file-deleted', () => {
    const id = stored('wiped');
    catalog.wipedFromRecorder({
      type: 'recorder.file-deleted',
      at: at(),
      sha256: sha('wiped'),
      id,
      path: 'DCIM/wiped.mp4',
      deviceSerial: '1234567',
      method: 'unlink',
      why: 'archived at HQ',
    });
    expect(events()).toEqual([expect.objectContaining({ type: 'recorder.file-deleted', id, path: 'DCIM/wiped.mp4' })]);
    expect(auditTypes()).toEqual([['recorder.file-deleted', sha('wiped')]]);
  });

  it('recorderDocked and leftBehind record the session, what was skipped or left, and their event or audit entries', () => {
    const s = catalog.openSession('/dock/REC1');
    catalog.recorderDocked(
      s,
      { device_serial: '1234567', files_found: 2, skipped: 1 },
      [{ path: 'a.txt', reason: 'not a recording' }],
      {
        type: 'recorder.docked',
        at: at(),
        volume: '/dock/REC1',
        sessionId: s,
        deviceSerial: '1234567',
        officerId: null,
        officerName: null,
        bay: null,
        battery: null,
        clockDriftMs: null,
        files: 2,
        bytes: 200,
        skipped: [{ relPath: 'a.txt', reason: 'not a recording' }],
        skippedCount: 1,
        leftBehind: [],
      },
    );
    catalog.leftBehind(s, '1234567', [{ path: 'LOCKED/b.mp4', reason: 'cannot read (EIO)', pathHex: '4c' }]);
    expect(catalog.session(s)).toMatchObject({ device_serial: '1234567', files_found: 2, skipped: 1 });
    expect(catalog.skippedOf(s)).toEqual([
      { path: 'a.txt', reason: 'not a recording', left_behind: 0, path_hex: null },
      { path: 'LOCKED/b.mp4', reason: 'cannot read (EIO)', left_behind: 1, path_hex: '4c' },
    ]);
    expect(events().map((e) => e.type)).toEqual(['recorder.docked']);
    expect(auditTypes()).toEqual([
      ['recorder.docked', '1234567'],
      ['recording.left-behind', '1234567'],
    ]);
  });

  it('auditWith commits the entry only with what it runs alongside', () => {
    expect(() =>
      catalog.auditWith('file.exported', sha('x'), { to: '/mnt/a' }, () => {
        throw new Error('manifest not written');
      }),
    ).toThrow('manifest not written');
    expect(catalog.auditEntries()).toEqual([]);
    const seq = catalog.auditWith('file.exported', sha('x'), { to: '/mnt/b' }, (e) => e.seq);
    expect(seq).toBe(1);
    expect(auditTypes()).toEqual([['file.exported', sha('x')]]);
  });

  it('changes users with an audit entry naming who changed them', () => {
    const officer = catalog.addUser(
      { name: 'zhang', role: 'officer', officerId: '012345', hash: hashPassword('246810') },
      'uid 0',
    );
    expect(officer).toMatchObject({ name: 'zhang', officerId: '012345' });
    expect(catalog.setUserPassword('zhang', hashPassword('135790'), 'uid 0').revoked).toBe(0);
    expect(catalog.setUserDisabled('zhang', true, 'uid 0').changed).toBe(true);
    expect(catalog.setUserDisabled('zhang', true, 'uid 0').changed).toBe(false);
    expect(catalog.users.get('zhang')!.disabled).toBe(true);
    expect(auditTypes()).toEqual([
      ['user.added', 'zhang'],
      ['user.password-changed', 'zhang'],
      ['user.disabled', 'zhang'],
    ]);
    expect(JSON.parse(catalog.auditEntries()[0].data)).toEqual({
      user: 'zhang',
      role: 'officer',
      officerId: '012345',
      by: 'uid 0',
    });
  });
});

describe('Catalog named queries', () => {
  let dir: string;
  let catalog: Catalog;
  let clock: number;
  const iso = (ms: number) => new Date(ms).toISOString();

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-queries-'));
    clock = Date.parse('2026-12-01T08:00:00.000Z');
    catalog = Catalog.open(dir, { now: () => new Date(clock) });
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  function stored(name: string, over: Partial<FileFields> = {}): number {
    const id = catalog.beginCopy({ size: 100, kind: 'video', filename: name, source_path: name, ...over });
    const sighting = { sessionId: null, deviceSerial: null, sourcePath: name, size: 100, mtimeMs: 1 };
    return catalog.finishCopy(id, sha(name), sighting).fileId;
  }

  it('pages by id with a cursor, filtered by state, damage, officer, case no. and capture time', () => {
    const a = stored('a', { officer_id: '111111', case_no: 'C-1', captured_at: '2026-11-28T09:00:00+08:00' });
    const b = stored('b', { officer_id: '222222', captured_at: '2026-11-28T02:30:00Z' });
    const c = stored('c', { officer_id: '111111', captured_at: '2026-11-29T09:00:00+08:00' });
    catalog.transition(b, 'ready', { integrity: 'damaged' });
    const ids = (f: Parameters<Catalog['page']>[0], o: Partial<Parameters<Catalog['page']>[1]> = {}) =>
      catalog.page(f, { order: 'asc', limit: 10, ...o }).map((r) => r.id);
    expect(ids({})).toEqual([a, b, c]);
    expect(ids({}, { order: 'desc', limit: 2 })).toEqual([c, b]);
    expect(ids({}, { order: 'desc', after: b })).toEqual([a]);
    expect(ids({}, { after: a, limit: 1 })).toEqual([b]);
    expect(ids({}, { after: c })).toEqual([]);
    expect(ids({ state: 'stored' })).toEqual([a, c]);
    expect(ids({ damaged: true })).toEqual([b]);
    expect(ids({ officerId: '222222' })).toEqual([b]);
    expect(ids({ caseNo: 'C-1' })).toEqual([a]);
    // 09:00+08:00 is 01:00Z: before b (02:30Z) although its wall time is later.
    expect(ids({ capturedFrom: '2026-11-28T01:30:00Z', capturedBefore: '2026-11-29T00:00:00Z' })).toEqual([b]);
    expect(ids({ capturedFrom: '2026-11-28' })).toEqual([a, b, c]);
    expect([...catalog.each({ officerId: '111111' })].map((r) => r.id)).toEqual([a, c]);
    expect(catalog.list('stored').map((r) => r.id)).toEqual([a, c]);
  });

  it('counts held recordings, a session’s pending uploads and the totals', () => {
    const a = stored('a', { officer_id: '111111', session_id: 7 });
    const b = stored('b', { officer_id: '222222', session_id: 7 });
    const c = stored('c', { session_id: 8 });
    clock += 1000;
    catalog.transition(a, 'needs-annotation');
    catalog.transition(b, 'ready');
    catalog.transition(c, 'uploaded', { uploaded_at: iso(clock) });
    expect(catalog.held()).toEqual({ count: 1, latest: iso(clock) });
    expect(catalog.held('111111')).toEqual({ count: 1, latest: iso(clock) });
    expect(catalog.held('222222')).toEqual({ count: 0, latest: null });
    expect(catalog.uploadsPendingOf(7)).toBe(1);
    expect(catalog.uploadsPendingOf(8)).toBe(0);
    expect(catalog.totals()).toEqual({ ingestedFiles: 3, ingestedBytes: 300, uploadedFiles: 1, uploadedBytes: 100 });
  });

  it('finds overdue receipts, files due to be announced again, and archived objects past retention', () => {
    const old = stored('old');
    const fresh = stored('fresh');
    catalog.transition(old, 'uploaded', { uploaded_at: iso(clock - 3_600_000), announced_at: iso(clock - 3_600_000) });
    catalog.transition(fresh, 'uploaded', { uploaded_at: iso(clock), announced_at: iso(clock) });
    const before = iso(clock - 60_000);
    expect(catalog.receiptsOverdue(before)).toEqual({ count: 1, oldestSince: iso(clock - 3_600_000) });
    expect(catalog.dueForReannounce(before, 50).map((f) => f.id)).toEqual([old]);

    const signed = stored('signed');
    const unsigned = stored('unsigned');
    const freed = stored('freed');
    catalog.transition(signed, 'archived', { archived_at: iso(clock - 10_000), receipt_at: iso(clock - 10_000) });
    catalog.transition(unsigned, 'archived', { archived_at: iso(clock - 10_000) });
    catalog.transition(freed, 'archived', {
      archived_at: iso(clock - 10_000),
      receipt_at: iso(clock - 10_000),
      local_deleted_at: iso(clock),
    });
    expect(catalog.expiredArchived(iso(clock), 10).map((f) => f.id)).toEqual([signed]);
    expect(catalog.expiredArchived(iso(clock - 20_000), 10)).toEqual([]);
    expect(catalog.expiredArchived(iso(clock), 0)).toEqual([]);
  });
});
