/**
 * dockctl files on a catalog built directly with the store (no daemon): filters, a page after a cursor, and --json
 * streamed as one array exactly as before.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalog } from '../../daemon/store/catalog.ts';
import { publicFile } from '../../daemon/store/publicFile.ts';
import { makeWorld, runDockctl, tempDir } from '../helpers/daemon.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('dockctl files: filters and pages', () => {
  let dir: string;
  let world: Awaited<ReturnType<typeof makeWorld>>;
  const ids: number[] = [];

  beforeEach(async () => {
    dir = await tempDir('dockd-files-');
    world = await makeWorld(dir, { tusEndpoint: 'http://127.0.0.1:1/files/', mqttUrl: 'mqtt://127.0.0.1:2' });
    const catalog = Catalog.open(world.storeDir);
    ids.length = 0;
    for (const [i, officer, caseNo, at] of [
      [1, '111111', 'C-1', '2026-11-28T09:00:00+08:00'],
      [2, '222222', null, '2026-11-28T10:00:00+08:00'],
      [3, '111111', null, '2026-11-30T09:00:00+08:00'],
    ] as const) {
      const id = catalog.beginCopy({
        size: i,
        kind: 'video',
        filename: `${i}.mp4`,
        source_path: `DCIM/${i}.mp4`,
        officer_id: officer,
        case_no: caseNo,
        captured_at: at,
      });
      catalog.finishCopy(id, sha(String(i)), {
        sessionId: null,
        deviceSerial: null,
        sourcePath: `DCIM/${i}.mp4`,
        size: i,
        mtimeMs: 1,
      });
      ids.push(id);
    }
    catalog.close();
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const json = async (...args: string[]): Promise<number[]> => {
    const r = await runDockctl(world.configFile, ['files', '--json', ...args]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { id: number }[]).map((f) => f.id);
  };

  it('filters by officer, case no. and capture time, pages after a cursor, and streams the same JSON as before', async () => {
    const [a, b, c] = ids;
    const all = await runDockctl(world.configFile, ['files', '--json']);
    const catalog = Catalog.open(world.storeDir, { readonly: true });
    expect(all.stdout).toBe(`${JSON.stringify(catalog.list().map(publicFile), null, 2)}\n`);
    catalog.close();
    expect(await json('--officer', '111111')).toEqual([a, c]);
    expect(await json('--case-no', 'C-1')).toEqual([a]);
    expect(await json('--from', '2026-11-28T01:30:00Z', '--to', '2026-11-29')).toEqual([b]);
    expect(await json('--after', String(a), '--limit', '1')).toEqual([b]);
    expect(await json('--after', String(c))).toEqual([]);
    const empty = await runDockctl(world.configFile, ['files', '--json', '--officer', '999999']);
    expect(empty.stdout).toBe('[]\n');
    const text = await runDockctl(world.configFile, ['files', '--officer', '222222']);
    expect(text.stdout).toMatch(new RegExp(`^ID +STATE[^\\n]*\\n${b} +stored `));
    const bad = await runDockctl(world.configFile, ['files', '--from', 'yesterday']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--from yesterday: give a date or time in ISO 8601/);
  });
});
