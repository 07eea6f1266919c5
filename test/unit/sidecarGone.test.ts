import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionContext } from '../../daemon/ingest/ingestContext.ts';
import { ingestOne } from '../../daemon/ingest/ingestRecording.ts';
import { readSidecar } from '../../daemon/ingest/sidecarFile.ts';
import { createLogger } from '../../daemon/log.ts';
import { CopyError } from '../../daemon/recorder/copyAndHash.ts';
import { discover } from '../../daemon/recorder/discover.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { recordingName } from '../../scripts/media.ts';

const temps: string[] = [];
const catalogs: Catalog[] = [];
afterEach(async () => {
  for (const c of catalogs.splice(0)) c.close();
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

/**
 * A pulled vfat volume answers ENOENT for what it has not cached (the HIL test saw it, test/hil): a sidecar the walk
 * found and that cannot be opened now means the volume went, as EIO does. The recording is then not stored without its
 * metadata (it would be held as needs-annotation): the copy ends as SOURCE_GONE, which ends the session as unplugged.
 */
describe('a sidecar that vanished after the walk', () => {
  it('ends the copy as SOURCE_GONE before anything is catalogued', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-sidecar-gone-'));
    temps.push(dir);
    const volume = path.join(dir, 'REC1');
    await fs.mkdir(volume);
    const name = recordingName({ at: '20261128100000', seq: 1 });
    await fs.writeFile(path.join(volume, name), Buffer.alloc(4096, 7));
    const sidecar = path.join(volume, name.replace(/\.mp4$/, '.meta.json'));
    await fs.writeFile(sidecar, JSON.stringify({ caseNo: 'C-1', purpose: '现场检查', place: '幸福路12号' }));
    const [rec] = (await discover(volume)).recordings;
    expect(rec?.sidecarPath).toBeTruthy();
    await fs.rm(sidecar); // what the dead mount shows from now on

    const storeDir = path.join(dir, 'store');
    await fs.mkdir(storeDir);
    const catalog = Catalog.open(storeDir);
    catalogs.push(catalog);
    // Only what ingestOne reaches before it copies: the catalog (is it stored already?) and the log.
    const ctx = { catalog, log: createLogger('silent') } as unknown as SessionContext;
    const err = await ingestOne(ctx, {
      recording: rec!,
      sessionId: 1,
      sessionSerial: '1234567',
      driftMs: null,
      linkedOfficer: null,
      supersedes: null,
      onBytes: () => {},
      signal: new AbortController().signal,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CopyError);
    expect((err as CopyError).code).toBe('SOURCE_GONE');
    expect((err as Error).message).toMatch(/sidecar cannot be read: recorder volume went away \(ENOENT\)/);
    expect(catalog.list()).toEqual([]);
  });

  it('a sidecar that is there but not valid is only ignored (reported), as before', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-sidecar-bad-'));
    temps.push(dir);
    const file = path.join(dir, 'x.meta.json');
    await fs.writeFile(file, '{"caseNo": 12}');
    const r = await readSidecar(file);
    expect(r).toEqual({ sidecar: {}, error: 'sidecar caseNo must be a string' });
  });
});
