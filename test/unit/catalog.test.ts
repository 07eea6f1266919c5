import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyAndHash } from '../../daemon/recorder/copyAndHash.ts';
import { Catalog, type FileFields, type SourceSighting } from '../../daemon/store/catalog.ts';
import { BYTES_PENDING_SQL } from '../../daemon/store/catalogReads.ts';
import { ObjectStore, ObjectStoreError } from '../../daemon/store/objects.ts';
import { SCHEMA_VERSION } from '../../daemon/store/schema.ts';
import type { StationEvent } from '../../daemon/status/stationEvents.ts';

/** An event reduced to what the outbox and audit chain look at (its type, time and subject). */
const bareEvent = (e: { type: string } & Record<string, unknown>): StationEvent => e as unknown as StationEvent;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function sighting(over: Partial<SourceSighting> = {}): SourceSighting {
  return { sessionId: 1, deviceSerial: '1234567', sourcePath: 'DCIM/a.mp4', size: 100, mtimeMs: 1_700_000_000_000, ...over };
}

function fileFields(over: Partial<FileFields> = {}) {
  return {
    size: 100,
    kind: 'video',
    filename: 'a.mp4',
    source_path: 'DCIM/a.mp4',
    device_serial: '1234567',
    officer_id: '012345',
    ...over,
  };
}

describe('Catalog', () => {
  let dir: string;
  let catalog: Catalog;
  let clock: number;
  const now = () => new Date(clock);

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-catalog-'));
    clock = Date.parse('2026-11-28T01:00:00.000Z');
    catalog = Catalog.open(path.join(dir, 'store'), { now });
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A file taken all the way to `stored`, with the given sha256. */
  function stored(hash: string, over: Partial<FileFields> = {}, s: Partial<SourceSighting> = {}): number {
    const id = catalog.beginCopy(fileFields(over));
    const r = catalog.finishCopy(id, hash, sighting({ sourcePath: String(over.source_path ?? 'DCIM/a.mp4'), ...s }));
    expect(r.duplicate).toBe(false);
    return r.fileId;
  }

  describe('the state snapshot', () => {
    it('is saved without waiting for the disk, read by another connection, and leaves later commits synchronous', () => {
      catalog.setKvUnsynced('state', { at: 'now', recorders: [] });
      const raw = new Database(path.join(dir, 'store', 'catalog.sqlite'), { readonly: true });
      try {
        const row = raw.prepare(`SELECT value FROM kv WHERE key = 'state'`).get() as { value: string };
        expect(JSON.parse(row.value)).toEqual({ at: 'now', recorders: [] });
      } finally {
        raw.close();
      }
      const db = (catalog as unknown as { db: Database.Database }).db;
      expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL, for every commit that is not a snapshot
      catalog.close();
      catalog = Catalog.open(path.join(dir, 'store'), { now });
      expect(catalog.getKv('state')).toEqual({ at: 'now', recorders: [] });
    });
  });

  describe('opening', () => {
    it('creates the database in WAL mode at the current schema version, and keeps data across reopen', () => {
      const raw = new Database(path.join(dir, 'store', 'catalog.sqlite'), { readonly: true });
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      raw.close();
      const id = stored(sha('persist'));
      catalog.close();
      catalog = Catalog.open(path.join(dir, 'store'), { now });
      expect(catalog.get(id)).toMatchObject({ sha256: sha('persist'), state: 'stored' });
    });

    it('refuses a catalog written by a newer dockd', () => {
      catalog.close();
      const raw = new Database(path.join(dir, 'store', 'catalog.sqlite'));
      raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      raw.close();
      expect(() => Catalog.open(path.join(dir, 'store'), { now })).toThrow(/newer than this dockd/);
      catalog = Catalog.open(path.join(dir, 'other'), { now }); // for afterEach
    });

    it('opens read-only without creating anything when asked to', () => {
      expect(() => Catalog.open(path.join(dir, 'absent'), { readonly: true })).toThrow();
      const ro = Catalog.open(path.join(dir, 'store'), { readonly: true });
      try {
        expect(() => ro.beginCopy(fileFields())).toThrow(/readonly/i);
      } finally {
        ro.close();
      }
    });
  });

  describe('copy life cycle', () => {
    it('beginCopy creates a copying row without a hash, with its fields and one history entry', () => {
      const id = catalog.beginCopy(fileFields({ captured_at: '2026-11-28T09:30:00+08:00', important: 1 }));
      expect(catalog.get(id)).toMatchObject({
        state: 'copying',
        sha256: null,
        size: 100,
        kind: 'video',
        filename: 'a.mp4',
        source_path: 'DCIM/a.mp4',
        device_serial: '1234567',
        officer_id: '012345',
        captured_at: '2026-11-28T09:30:00+08:00',
        important: 1,
        created_at: '2026-11-28T01:00:00.000Z',
      });
      expect(catalog.historyOf(id)).toEqual([
        { at: '2026-11-28T01:00:00.000Z', from_state: null, to_state: 'copying', detail: 'DCIM/a.mp4' },
      ]);
    });

    it('finishCopy stores the hash, moves to stored and records the sighting as the copy', () => {
      const id = catalog.beginCopy(fileFields());
      clock += 1000;
      const r = catalog.finishCopy(id, sha('one'), sighting(), { sm3: 'ab'.repeat(32) });
      expect(r).toEqual({ fileId: id, duplicate: false });
      expect(catalog.get(id)).toMatchObject({
        state: 'stored',
        sha256: sha('one'),
        sm3: 'ab'.repeat(32),
        updated_at: '2026-11-28T01:00:01.000Z',
      });
      expect(catalog.historyOf(id).map((h) => [h.from_state, h.to_state, h.detail])).toEqual([
        [null, 'copying', 'DCIM/a.mp4'],
        ['copying', 'stored', sha('one')],
      ]);
      expect(catalog.sightingsOf(id)).toEqual([
        { session_id: 1, device_serial: '1234567', source_path: 'DCIM/a.mp4', copied: 1, seen_at: '2026-11-28T01:00:01.000Z' },
      ]);
      expect(catalog.bySha256(sha('one'))!.id).toBe(id);
    });

    it('records the same content seen again as a second sighting on the same row, and drops the new row', () => {
      const first = stored(sha('same'));
      const second = catalog.beginCopy(
        fileFields({ source_path: 'OTHER/copy-of-a.mp4', filename: 'copy-of-a.mp4', device_serial: '7654321' }),
      );
      const r = catalog.finishCopy(
        second,
        sha('same'),
        sighting({ sessionId: 2, deviceSerial: '7654321', sourcePath: 'OTHER/copy-of-a.mp4' }),
      );
      expect(r).toEqual({ fileId: first, duplicate: true });
      expect(catalog.get(second)).toBeUndefined();
      expect(catalog.historyOf(second)).toEqual([]);
      expect(catalog.list()).toHaveLength(1);
      expect(catalog.sightingsOf(first).map((s) => [s.session_id, s.device_serial, s.source_path, s.copied])).toEqual([
        [1, '1234567', 'DCIM/a.mp4', 1],
        [2, '7654321', 'OTHER/copy-of-a.mp4', 0],
      ]);
      expect(catalog.get(first)).toMatchObject({ state: 'stored', filename: 'a.mp4' });
    });

    it('finishCopies catalogues a copy that had no copying row as beginCopy + finishCopy would have, in one transaction', () => {
      const began = '2026-11-28T00:59:58.000Z';
      const withRow = catalog.beginCopy(fileFields({ source_path: 'DCIM/big.mp4', filename: 'big.mp4' }));
      clock += 1000;
      const fields = fileFields({ captured_at: '2026-11-28T09:30:00+08:00', important: 1 });
      const [small, big, again] = catalog.finishCopies([
        {
          fileId: null,
          begun: { ...fields, at: began },
          sha256: sha('small'),
          sighting: sighting(),
          digests: { sm3: 'cd'.repeat(32) },
        },
        { fileId: withRow, sha256: sha('big'), sighting: sighting({ sourcePath: 'DCIM/big.mp4' }), digests: {} },
        // The same content from another path in the same batch: a sighting on the first, no row of its own.
        {
          fileId: null,
          begun: { ...fields, source_path: 'DCIM/b.mp4', at: began },
          sha256: sha('small'),
          sighting: sighting({ sourcePath: 'DCIM/b.mp4' }),
          digests: {},
        },
      ]);
      expect(small.duplicate).toBe(false);
      expect(big).toEqual({ fileId: withRow, duplicate: false });
      expect(again).toEqual({ fileId: small.fileId, duplicate: true });
      expect(catalog.get(small.fileId)).toMatchObject({
        state: 'stored',
        sha256: sha('small'),
        sm3: 'cd'.repeat(32),
        captured_at: '2026-11-28T09:30:00+08:00',
        important: 1,
        device_serial: '1234567',
        created_at: began,
        updated_at: '2026-11-28T01:00:01.000Z',
      });
      expect(catalog.historyOf(small.fileId)).toEqual([
        { at: began, from_state: null, to_state: 'copying', detail: 'DCIM/a.mp4' },
        { at: '2026-11-28T01:00:01.000Z', from_state: 'copying', to_state: 'stored', detail: sha('small') },
      ]);
      expect(catalog.sightingsOf(small.fileId).map((s) => [s.source_path, s.copied])).toEqual([
        ['DCIM/a.mp4', 1],
        ['DCIM/b.mp4', 0],
      ]);
      expect(catalog.list()).toHaveLength(2);
    });

    it('finds a known source by recorder, path, size and mtime (a recorder without serial matches by IS NULL)', () => {
      const id = stored(sha('known'));
      expect(catalog.findKnownSource(sighting())!.id).toBe(id);
      expect(catalog.findKnownSource(sighting({ mtimeMs: 1 }))).toBeUndefined();
      expect(catalog.findKnownSource(sighting({ size: 101 }))).toBeUndefined();
      expect(catalog.findKnownSource(sighting({ deviceSerial: '7654321' }))).toBeUndefined();
      const anon = stored(
        sha('anon'),
        { source_path: 'x.mp4', device_serial: null },
        { deviceSerial: null, sourcePath: 'x.mp4' },
      );
      expect(catalog.findKnownSource(sighting({ deviceSerial: null, sourcePath: 'x.mp4' }))!.id).toBe(anon);
      // a row still copying has no hash yet and is not "known"
      catalog.beginCopy(fileFields({ source_path: 'y.mp4' }));
      expect(catalog.findKnownSource(sighting({ sourcePath: 'y.mp4' }))).toBeUndefined();
    });

    it('abortCopy removes a copying row and its history, and leaves a stored row alone', () => {
      const copying = catalog.beginCopy(fileFields());
      catalog.abortCopy(copying);
      expect(catalog.get(copying)).toBeUndefined();
      expect(catalog.historyOf(copying)).toEqual([]);
      const done = stored(sha('keep'));
      catalog.abortCopy(done);
      expect(catalog.get(done)).toMatchObject({ state: 'stored' });
      expect(catalog.historyOf(done)).toHaveLength(2);
    });

    it('recoverInterruptedCopies removes every row left copying (and only those) and says how many', () => {
      const done = stored(sha('done'));
      const a = catalog.beginCopy(fileFields({ source_path: 'a' }));
      const b = catalog.beginCopy(fileFields({ source_path: 'b' }));
      catalog.transition(done, 'ready');
      expect(catalog.recoverInterruptedCopies()).toBe(2);
      expect(catalog.get(a)).toBeUndefined();
      expect(catalog.get(b)).toBeUndefined();
      expect(catalog.historyOf(a)).toEqual([]);
      expect(catalog.get(done)).toMatchObject({ state: 'ready' });
      expect(catalog.recoverInterruptedCopies()).toBe(0);
    });

    it('survives a crash mid-copy: a reopened catalog still has the copying row until recovery', () => {
      const id = catalog.beginCopy(fileFields());
      catalog.close(); // as after a kill: the row was committed
      catalog = Catalog.open(path.join(dir, 'store'), { now });
      expect(catalog.get(id)!.state).toBe('copying');
      expect(catalog.recoverInterruptedCopies()).toBe(1);
      expect(catalog.counts().copying).toBe(0);
    });
  });

  describe('transition', () => {
    it('moves state, sets fields, logs history and queues the event with its time', () => {
      const id = stored(sha('t'));
      clock += 5000;
      const ok = catalog.transition(
        id,
        'needs-annotation',
        { reason: 'missing 案件编号 case no.', captured_at: '2026-11-28T09:30:00+08:00' },
        {
          detail: 'missing case no.',
          event: bareEvent({ type: 'file.needs-annotation', sha256: sha('t') }),
        },
      );
      expect(ok).toBe(true);
      expect(catalog.get(id)).toMatchObject({
        state: 'needs-annotation',
        reason: 'missing 案件编号 case no.',
        captured_at: '2026-11-28T09:30:00+08:00',
        updated_at: '2026-11-28T01:00:05.000Z',
      });
      expect(catalog.historyOf(id).at(-1)).toEqual({
        at: '2026-11-28T01:00:05.000Z',
        from_state: 'stored',
        to_state: 'needs-annotation',
        detail: 'missing case no.',
      });
      const [entry] = catalog.outboxPeek(10);
      expect(entry.topic).toBe('event');
      expect(JSON.parse(entry.payload)).toEqual({
        type: 'file.needs-annotation',
        sha256: sha('t'),
        at: '2026-11-28T01:00:05.000Z',
      });
    });

    it('does nothing and returns false when the from guard does not match', () => {
      const id = stored(sha('g'));
      catalog.transition(id, 'uploaded');
      const historyBefore = catalog.historyOf(id);
      expect(
        catalog.transition(id, 'uploading', { upload_url: 'http://x/1' }, { from: ['ready'], event: bareEvent({ type: 'x' }) }),
      ).toBe(false);
      expect(catalog.get(id)).toMatchObject({ state: 'uploaded', upload_url: null });
      expect(catalog.historyOf(id)).toEqual(historyBefore);
      expect(catalog.outboxSize()).toBe(0);
      expect(catalog.transition(id, 'archived', {}, { from: ['uploading', 'uploaded'] })).toBe(true);
      expect(catalog.get(id)!.state).toBe('archived');
    });

    it('returns false for an unknown id', () => {
      expect(catalog.transition(9999, 'ready')).toBe(false);
    });

    it('adds no history for a same-state update without detail, and one with detail', () => {
      const id = stored(sha('s'));
      const n = catalog.historyOf(id).length;
      catalog.transition(id, 'stored', { probe: '{}' });
      expect(catalog.historyOf(id)).toHaveLength(n);
      catalog.transition(id, 'stored', {}, { detail: 're-probed' });
      expect(catalog.historyOf(id)).toHaveLength(n + 1);
    });

    it('ignores field names that are not columns (they never reach the SQL)', () => {
      const id = stored(sha('inj'));
      const evil = { "state = 'archived', sha256": 'x', case_no: 'C-1' } as unknown as FileFields;
      expect(catalog.transition(id, 'ready', evil)).toBe(true);
      expect(catalog.get(id)).toMatchObject({ state: 'ready', sha256: sha('inj'), case_no: 'C-1' });
    });

    it('is undone as a whole when its event cannot be queued', () => {
      const id = stored(sha('rb'));
      // A BigInt cannot be written as JSON: the outbox insert throws after the state change and its history line.
      const unwritable = bareEvent({ type: 'file.ingested', sha256: sha('rb'), size: 1n });
      expect(() => catalog.transition(id, 'ready', { case_no: 'C-1' }, { event: unwritable })).toThrow(/BigInt/);
      expect(catalog.get(id)).toMatchObject({ state: 'stored', case_no: null });
      expect(catalog.outboxSize()).toBe(0);
      expect(catalog.historyOf(id).map((h) => h.to_state)).toEqual(['copying', 'stored']);
    });
  });

  describe('resolve', () => {
    const a = `abcdef01${'0'.repeat(56)}`;
    const b = `abcdef02${'0'.repeat(56)}`;
    const c = `123456ff${'1'.repeat(56)}`;

    it('finds a file by catalog id', () => {
      const id = stored(a);
      expect(catalog.resolve(String(id)).file!.id).toBe(id);
    });

    it('finds a file by a unique sha256 prefix of 6 or more hex digits, in any case', () => {
      stored(a, { source_path: 'a' });
      const idB = stored(b, { source_path: 'b' });
      expect(catalog.resolve('abcdef02').file!.id).toBe(idB);
      expect(catalog.resolve('ABCDEF02').file!.id).toBe(idB);
      expect(catalog.resolve(b).file!.id).toBe(idB);
    });

    it('refuses an ambiguous prefix', () => {
      stored(a, { source_path: 'a' });
      stored(b, { source_path: 'b' });
      expect(catalog.resolve('abcdef')).toEqual({ error: 'sha256 prefix abcdef is not unique; give more digits' });
    });

    it('refuses a prefix shorter than 6 digits, non-hex text and an over-long prefix', () => {
      stored(a);
      expect(catalog.resolve('abcde')).toEqual({ error: 'no recording with id abcde' });
      expect(catalog.resolve('abc%')).toEqual({ error: 'no recording with id abc%' });
      expect(catalog.resolve('abcdef_')).toEqual({ error: 'no recording with id abcdef_' });
      expect(catalog.resolve(`${a}0`).error).toBeDefined();
      expect(catalog.resolve('').error).toBeDefined();
    });

    it('treats an all-digit argument that is no id as a sha256 prefix', () => {
      const id = stored(c);
      expect(id).not.toBe(123456);
      expect(catalog.resolve('123456').file!.id).toBe(id);
    });

    it('reports an unknown id or prefix', () => {
      stored(a);
      expect(catalog.resolve('999')).toEqual({ error: 'no recording with id 999' });
      expect(catalog.resolve('fedcba98')).toEqual({ error: 'no recording with id or sha256 prefix fedcba98' });
    });
  });

  describe('uploadQueue', () => {
    function ready(hash: string, capturedAt: string | null, important = 0, state: 'ready' | 'uploading' = 'ready'): number {
      const id = stored(hash, { source_path: hash, captured_at: capturedAt, important });
      catalog.transition(id, state);
      return id;
    }

    it('puts important files first, then the oldest capture, then the lowest id', () => {
      const late = ready(sha('late'), '2026-11-28T10:00:00+08:00');
      const early = ready(sha('early'), '2026-11-28T08:00:00+08:00');
      const impLate = ready(sha('impLate'), '2026-11-28T11:00:00+08:00', 1);
      const impEarly = ready(sha('impEarly'), '2026-11-28T07:00:00+08:00', 1, 'uploading');
      const tieA = ready(sha('tieA'), '2026-11-28T09:00:00+08:00');
      const tieB = ready(sha('tieB'), '2026-11-28T09:00:00+08:00');
      expect(catalog.uploadQueue(10).map((r) => r.id)).toEqual([impEarly, impLate, early, tieA, tieB, late]);
    });

    it('includes only ready and uploading files', () => {
      const r = ready(sha('r'), '2026-11-28T09:00:00+08:00');
      const u = ready(sha('u'), '2026-11-28T09:01:00+08:00', 0, 'uploading');
      const n = stored(sha('n'), { source_path: 'n' });
      catalog.transition(n, 'needs-annotation');
      const d = stored(sha('d'), { source_path: 'd' });
      catalog.transition(d, 'uploaded');
      stored(sha('s'), { source_path: 's' });
      catalog.beginCopy(fileFields({ source_path: 'c' }));
      expect(catalog.uploadQueue(10).map((x) => x.id)).toEqual([r, u]);
    });

    it('honours the limit and the excluded ids (files already in flight)', () => {
      const ids = ['a', 'b', 'c', 'd'].map((k, i) => ready(sha(k), `2026-11-28T0${i + 1}:00:00+08:00`));
      expect(catalog.uploadQueue(2).map((r) => r.id)).toEqual(ids.slice(0, 2));
      expect(catalog.uploadQueue(2, [ids[0], ids[2]]).map((r) => r.id)).toEqual([ids[1], ids[3]]);
      expect(catalog.uploadQueue(10, ids)).toEqual([]);
    });

    it('orders by the instant captured, not the text, when offsets differ (the repeated hour of a DST change)', () => {
      // 02:45 CEST (00:45Z) was captured before 02:15 CET (01:15Z), although its text sorts after.
      const cet = ready(sha('cet'), '2026-10-25T02:15:00+01:00');
      const cest = ready(sha('cest'), '2026-10-25T02:45:00+02:00');
      const utc = ready(sha('utc'), '2026-10-25T01:00:00+00:00');
      expect(catalog.uploadQueue(10).map((r) => r.id)).toEqual([cest, utc, cet]);
    });
  });

  describe('outbox', () => {
    it('returns messages in the order they were queued, and never reuses a sequence number', () => {
      let notified = 0;
      catalog.onEnqueue = () => {
        notified++;
      };
      catalog.enqueue('event', bareEvent({ type: 'a', at: 'x' }));
      catalog.enqueue('event', bareEvent({ type: 'n', at: 'x' }));
      catalog.enqueue('event', bareEvent({ type: 'b', at: 'y' }));
      expect(notified).toBe(3);
      const all = catalog.outboxPeek(10);
      expect(all.map((e) => [e.topic, JSON.parse(e.payload).type])).toEqual([
        ['event', 'a'],
        ['event', 'n'],
        ['event', 'b'],
      ]);
      expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((x, y) => x - y));
      expect(catalog.outboxPeek(2).map((e) => e.seq)).toEqual(all.slice(0, 2).map((e) => e.seq));
      for (const e of all) catalog.outboxDelete(e.seq);
      expect(catalog.outboxSize()).toBe(0);
      catalog.enqueue('event', bareEvent({ type: 'c', at: 'z' }));
      expect(catalog.outboxPeek(1)[0].seq).toBeGreaterThan(all[2].seq);
    });

    it('keeps undelivered messages across a restart', () => {
      catalog.enqueue('event', bareEvent({ type: 'file.ingested', at: 't1', sha256: sha('x') }));
      catalog.enqueue('event', bareEvent({ type: 'file.ready', at: 't2', sha256: sha('x') }));
      catalog.outboxDelete(catalog.outboxPeek(1)[0].seq);
      catalog.close();
      catalog = Catalog.open(path.join(dir, 'store'), { now });
      expect(catalog.outboxPeek(10).map((e) => JSON.parse(e.payload).type)).toEqual(['file.ready']);
    });

    it('appends every event to an intact audit chain', () => {
      catalog.enqueue('event', bareEvent({ type: 'recorder.docked', at: 't1', deviceSerial: '1234567' }));
      const id = stored(sha('audited'));
      catalog.transition(id, 'ready', {}, { event: bareEvent({ type: 'file.ready', sha256: sha('audited') }) });
      const entries = catalog.auditEntries();
      expect(entries.map((e) => [e.type, e.subject])).toEqual([
        ['recorder.docked', '1234567'],
        ['file.ready', sha('audited')],
      ]);
      expect(catalog.verifyChain()).toMatchObject({ ok: true, entries: 2 });
    });
  });

  describe('counts, bytes and sessions', () => {
    it('counts files per state and the bytes still to upload', () => {
      const a = stored(sha('a'), { source_path: 'a', size: 1000 });
      const b = stored(sha('b'), { source_path: 'b', size: 500 });
      catalog.transition(b, 'uploading', { upload_offset: 200 });
      const c = stored(sha('c'), { source_path: 'c', size: 70 });
      catalog.transition(c, 'uploaded');
      catalog.beginCopy(fileFields({ source_path: 'd', size: 9 }));
      expect(catalog.counts()).toEqual({
        copying: 1,
        stored: 1,
        rejected: 0,
        'needs-annotation': 0,
        ready: 0,
        uploading: 1,
        uploaded: 1,
        archived: 0,
      });
      expect(catalog.bytesPending()).toBe(1000 + 300);
      expect(catalog.get(a)!.state).toBe('stored');
    });

    it('sums the bytes still to upload from the partial index alone (schema 13), in every state not yet uploaded', () => {
      const a = stored(sha('a'), { source_path: 'a', size: 1000 });
      const b = stored(sha('b'), { source_path: 'b', size: 500 });
      catalog.transition(b, 'needs-annotation');
      const c = stored(sha('c'), { source_path: 'c', size: 70 });
      catalog.transition(c, 'ready');
      const d = stored(sha('d'), { source_path: 'd', size: 9000 });
      catalog.transition(d, 'uploading', { upload_offset: 8000 });
      catalog.transition(stored(sha('e'), { source_path: 'e', size: 4 }), 'uploaded');
      expect(catalog.bytesPending()).toBe(1000 + 500 + 70 + 1000);
      catalog.transition(a, 'uploading', { upload_offset: 1000 });
      expect(catalog.bytesPending()).toBe(500 + 70 + 1000);
      const db = new Database(path.join(dir, 'store', 'catalog.sqlite'), { readonly: true });
      try {
        const plan = db.prepare(`EXPLAIN QUERY PLAN ${BYTES_PENDING_SQL}`).all() as { detail: string }[];
        expect(plan.map((p) => p.detail).join(' ')).toMatch(/COVERING INDEX files_pending/);
      } finally {
        db.close();
      }
    });

    it('keeps the counts per state right through every kind of change (they are kept, not counted, since schema 11)', () => {
      const counted = () => {
        const db = new Database(path.join(dir, 'store', 'catalog.sqlite'), { readonly: true });
        try {
          const rows = db.prepare(`SELECT state, COUNT(*) n FROM files GROUP BY state`).all() as { state: string; n: number }[];
          return Object.fromEntries(rows.map((r) => [r.state, r.n]));
        } finally {
          db.close();
        }
      };
      const kept = () => Object.fromEntries(Object.entries(catalog.counts()).filter(([, n]) => n));
      const a = stored(sha('a'), { source_path: 'a' });
      const b = stored(sha('b'), { source_path: 'b' });
      catalog.transition(b, 'uploading');
      catalog.transition(b, 'uploading', { upload_offset: 10 }); // no change of state
      catalog.beginCopy(fileFields({ source_path: 'c' }));
      const dropped = catalog.beginCopy(fileFields({ source_path: 'd' }));
      catalog.abortCopy(dropped);
      const dup = catalog.beginCopy(fileFields({ source_path: 'e' }));
      catalog.finishCopy(dup, sha('a'), sighting({ sourcePath: 'e' })); // same content as a: the copying row goes
      expect(kept()).toEqual(counted());
      expect(kept()).toEqual({ stored: 1, uploading: 1, copying: 1 });
      expect(catalog.recoverInterruptedCopies()).toBe(1);
      catalog.transition(a, 'ready');
      expect(kept()).toEqual(counted());
      expect(kept()).toEqual({ ready: 1, uploading: 1 });
    });

    it('records sessions and what was skipped in them', () => {
      const s = catalog.openSession('/var/dock/REC1');
      catalog.recordSkipped(s, 'link.mp4', 'symbolic link (never followed)');
      catalog.recordSkipped(s, 'notes.txt', 'not a recording (extension .txt)');
      catalog.recordSkipped(s, 'LOCKED', 'cannot read directory: EACCES', { leftBehind: true });
      catalog.recordSkipped(s, '\\xff.mp4', 'cannot read (EIO)', { leftBehind: true, pathHex: 'ff2e6d7034' });
      catalog.updateSession(s, { device_serial: '1234567', files_found: 3, result: 'done' });
      expect(catalog.skippedOf(s)).toEqual([
        { path: 'link.mp4', reason: 'symbolic link (never followed)', left_behind: 0, path_hex: null },
        { path: 'notes.txt', reason: 'not a recording (extension .txt)', left_behind: 0, path_hex: null },
        { path: 'LOCKED', reason: 'cannot read directory: EACCES', left_behind: 1, path_hex: null },
        { path: '\\xff.mp4', reason: 'cannot read (EIO)', left_behind: 1, path_hex: 'ff2e6d7034' },
      ]);
      expect(catalog.session(s)).toMatchObject({
        volume: '/var/dock/REC1',
        device_serial: '1234567',
        files_found: 3,
        result: 'done',
      });
    });
  });
});

describe('ObjectStore', () => {
  let dir: string;
  let store: ObjectStore;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-objects-'));
    store = new ObjectStore(path.join(dir, 'store'));
    await store.init();
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function temp(bytes: Buffer): Promise<{ path: string; sha256: string }> {
    const p = store.tempPath();
    await fs.writeFile(p, bytes, { mode: 0o600 });
    return { path: p, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  it('lays objects out by hash under objects/sha256/ab/cd/, temp files under tmp/', () => {
    const h = sha('layout');
    expect(store.pathOf(h)).toBe(path.join(dir, 'store', 'objects', 'sha256', h.slice(0, 2), h.slice(2, 4), h));
    const t1 = store.tempPath();
    const t2 = store.tempPath();
    expect(path.dirname(t1)).toBe(path.join(dir, 'store', 'tmp'));
    expect(t1).not.toBe(t2);
  });

  it('commit moves the temp file to its address, read-only (0444), and removes the temp file', async () => {
    const bytes = randomBytes(10_000);
    const t = await temp(bytes);
    const target = await store.commit(t.path, t.sha256, bytes.length);
    expect(target).toBe(store.pathOf(t.sha256));
    const st = await fs.stat(target);
    expect(st.mode & 0o777).toBe(0o444);
    expect((await fs.readFile(target)).equals(bytes)).toBe(true);
    await expect(fs.access(t.path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.exists(t.sha256)).toBe(true);
    expect(await store.exists(sha('absent'))).toBe(false);
  });

  it('is write-once: committing the same address again keeps the existing object and drops the temp file', async () => {
    const bytes = randomBytes(4096);
    const first = await temp(bytes);
    const target = await store.commit(first.path, first.sha256, bytes.length);
    const inode = (await fs.stat(target)).ino;
    // Different bytes claiming the same hash and size (as a buggy or hostile caller might): the stored object wins.
    const impostor = await temp(randomBytes(4096));
    expect(await store.commit(impostor.path, first.sha256, 4096)).toBe(target);
    const after = await fs.stat(target);
    expect(after.ino).toBe(inode);
    expect(after.mode & 0o777).toBe(0o444);
    expect((await fs.readFile(target)).equals(bytes)).toBe(true);
    await expect(fs.access(impostor.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports OBJECT_CONFLICT when an existing object has another size, keeping it', async () => {
    const bytes = randomBytes(100);
    const t = await temp(bytes);
    await store.commit(t.path, t.sha256, bytes.length);
    const other = await temp(randomBytes(200));
    const err = await store.commit(other.path, t.sha256, 200).then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ObjectStoreError);
    expect(err.code).toBe('OBJECT_CONFLICT');
    expect((await fs.readFile(store.pathOf(t.sha256))).equals(bytes)).toBe(true);
    await expect(fs.access(other.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rehash matches an intact object and detects one flipped byte', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const t = await temp(bytes);
    const target = await store.commit(t.path, t.sha256, bytes.length);
    expect(await store.rehash(t.sha256)).toEqual({ sha256: t.sha256, size: bytes.length });

    await fs.chmod(target, 0o644);
    const h = await fs.open(target, 'r+');
    try {
      const one = Buffer.alloc(1);
      await h.read(one, 0, 1, 2_000_000);
      one[0] ^= 0x01;
      await h.write(one, 0, 1, 2_000_000);
    } finally {
      await h.close();
    }
    await fs.chmod(target, 0o444);

    const again = await store.rehash(t.sha256);
    expect(again.size).toBe(bytes.length);
    expect(again.sha256).not.toBe(t.sha256);
    const tampered = Buffer.from(bytes);
    tampered[2_000_000] ^= 0x01;
    expect(again.sha256).toBe(createHash('sha256').update(tampered).digest('hex'));
  });

  it('rehash reports OBJECT_MISSING for an object that is gone', async () => {
    const err = await store.rehash(sha('never stored')).then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ObjectStoreError);
    expect(err.code).toBe('OBJECT_MISSING');
  });

  it('sweepTemp removes leftover temp files, counts them, and leaves objects alone', async () => {
    const kept = await temp(Buffer.from('object'));
    await store.commit(kept.path, kept.sha256, 6);
    for (let i = 0; i < 3; i++) await temp(randomBytes(10));
    expect(await store.sweepTemp()).toBe(3);
    expect(await fs.readdir(store.tmpDir)).toEqual([]);
    expect(await store.sweepTemp()).toBe(0);
    expect(await store.exists(kept.sha256)).toBe(true);
  });

  it('sweepTemp counts nothing when there is no tmp directory', async () => {
    const bare = new ObjectStore(path.join(dir, 'uninitialised'));
    expect(await bare.sweepTemp()).toBe(0);
  });

  it('takes a copyAndHash result end to end: copy into a temp path, commit, catalogue, rehash', async () => {
    const bytes = randomBytes(5 * 1024 * 1024);
    const src = path.join(dir, 'src.mp4');
    await fs.writeFile(src, bytes);
    const tmp = store.tempPath();
    const r = await copyAndHash(src, tmp);
    await store.commit(tmp, r.sha256, r.size);
    const catalog = Catalog.open(path.join(dir, 'store'));
    try {
      const id = catalog.beginCopy({ size: r.size, kind: 'video', filename: 'src.mp4', source_path: 'src.mp4' });
      catalog.finishCopy(id, r.sha256, {
        sessionId: null,
        deviceSerial: null,
        sourcePath: 'src.mp4',
        size: r.size,
        mtimeMs: r.mtimeMs,
      });
      expect(catalog.resolve(r.sha256.slice(0, 8)).file!.id).toBe(id);
    } finally {
      catalog.close();
    }
    expect(await store.rehash(r.sha256)).toEqual({ sha256: r.sha256, size: bytes.length });
    expect(await store.sweepTemp()).toBe(0);
  });
});

// Guard against accidental use of an in-memory database in the tests above: the catalog must be a file on disk.
describe('Catalog storage', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-catalog-file-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('writes catalog.sqlite in the storage dir, readable by another connection', () => {
    const c = Catalog.open(path.join(dir, 's'));
    const id = c.beginCopy({ size: 1, kind: 'photo', filename: 'p.jpg', source_path: 'p.jpg' });
    c.close();
    const db = new Database(path.join(dir, 's', 'catalog.sqlite'), { readonly: true });
    try {
      expect(db.prepare('SELECT state, filename FROM files WHERE id = ?').get(id)).toEqual({
        state: 'copying',
        filename: 'p.jpg',
      });
    } finally {
      db.close();
    }
  });
});

describe('Assignments.holderAt', () => {
  let dir: string;
  let catalog: Catalog;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-holder-'));
    catalog = Catalog.open(path.join(dir, 'store'));
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  function hold(serial: string, officerId: string, from: string, to: string | null): void {
    catalog.assignments.begin({ serial, officerId, officerName: null, at: new Date(from), by: 'admin' });
    if (to) catalog.assignments.end(serial, new Date(to), 'admin');
  }

  it('finds who held the recorder at a capture time given with any offset: from the start, up to but not including the end', () => {
    hold('S1', 'A', '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z');
    hold('S1', 'B', '2026-11-02T00:00:00Z', '2026-11-03T08:00:00Z');
    hold('S2', 'X', '2026-11-03T08:00:00Z', null); // another recorder, held in the gap
    hold('S1', 'C', '2026-11-03T09:00:00Z', null);
    const who = (at: string) => catalog.assignments.holderAt('S1', at)?.officerId;
    expect(who('2026-11-01T08:00:00+08:00')).toBe('A');
    expect(who('2026-11-02T07:59:59.999+08:00')).toBe('A');
    expect(who('2026-11-02T08:00:00+08:00')).toBe('B');
    expect(who('2026-11-03T15:59:59.999+08:00')).toBe('B');
    expect(who('2026-11-03T16:00:00+08:00')).toBeUndefined(); // B's end, and nobody took it then
    expect(who('2026-11-03T16:30:00+08:00')).toBeUndefined();
    expect(who('2026-11-03T17:00:00+08:00')).toBe('C');
    expect(who('2031-01-01T00:00:00Z')).toBe('C');
    expect(who('2026-10-31T23:59:59Z')).toBeUndefined();
    expect(who('not a time')).toBeUndefined();
    expect(catalog.assignments.holderAt('S2', '2026-11-03T08:30:00Z')?.officerId).toBe('X');
  });

  it('agrees with a scan of every assignment, at any instant of a year of daily check-outs', () => {
    const day = 86_400_000;
    const start = Date.parse('2026-01-01T00:00:00Z');
    let days = 0;
    for (let d = 0; d < 365; d++) {
      // Out at 07:00 to 19:00, some days not returned until the next morning, some days not at all.
      if (d % 11 === 3) continue;
      days++;
      const to = d % 7 === 5 ? start + (d + 1) * day + 6 * 3_600_000 : start + d * day + 19 * 3_600_000;
      hold('S1', `O${d}`, new Date(start + d * day + 7 * 3_600_000).toISOString(), new Date(to).toISOString());
    }
    const all = catalog.assignments.list('S1');
    expect(all).toHaveLength(days);
    expect(days).toBe(332);
    const scan = (t: number) =>
      all.find((a) => Date.parse(a.startedAt) <= t && (a.endedAt === null || t < Date.parse(a.endedAt)))?.officerId;
    let held = 0;
    for (let i = 0; i < 2000; i++) {
      const t = start + Math.floor((((i * 7919) % 2000) / 2000) * 366 * day);
      const local = new Date(t + 8 * 3_600_000).toISOString().replace('Z', '+08:00'); // the same instant, as UTC+8
      const found = catalog.assignments.holderAt('S1', local)?.officerId;
      expect(found, local).toBe(scan(t));
      if (found) held++;
    }
    expect(held).toBeGreaterThan(500); // the instants hit held and free times alike
    expect(held).toBeLessThan(2000);
  });
});
