import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectStatus, HELD_LISTED, renderStatus } from '../../daemon/cli/statusView.ts';
import type { Config } from '../../daemon/config.ts';
import { Catalog } from '../../daemon/store/catalog.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
/** collectStatus reads only the station's id from the config. */
const config = { station: { id: 'dock-test' } } as Config;

describe("dockctl status' view of recordings held for annotation", () => {
  let dir: string;
  let catalog: Catalog;
  const held: number[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-status-'));
    catalog = Catalog.open(path.join(dir, 'store'), { now: () => new Date('2026-12-02T08:00:00Z') });
    held.length = 0;
    for (let i = 0; i < HELD_LISTED + 5; i++) {
      const name = `012345_1234567_20261202080000_${String(i).padStart(4, '0')}.mp4`;
      const id = catalog.beginCopy({
        size: 100,
        kind: 'video',
        filename: name,
        source_path: `DCIM/${name}`,
        device_serial: '1234567',
      });
      const r = catalog.finishCopy(id, sha(name), {
        sessionId: 1,
        deviceSerial: '1234567',
        sourcePath: `DCIM/${name}`,
        size: 100,
        mtimeMs: 1_700_000_000_000,
      });
      catalog.transition(r.fileId, 'needs-annotation', { reason: 'missing 案件编号 case no.' });
      held.push(r.fileId);
    }
  });

  afterEach(async () => {
    catalog.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('lists the oldest in the text and counts the rest; --json has them all', () => {
    const text = renderStatus(collectStatus(config, catalog, HELD_LISTED));
    expect(text).toContain(`待补录 needs annotation (${HELD_LISTED + 5}):`);
    const listed = [...text.matchAll(/^ {2}#(\d+) /gm)].map((m) => Number(m[1]));
    expect(listed).toEqual(held.slice(0, HELD_LISTED));
    expect(text).toContain('… and 5 more (the oldest are listed): dockctl files --state needs-annotation');

    const all = collectStatus(config, catalog);
    expect(all.needsAnnotation.map((h) => h.id)).toEqual(held);
    expect(all.queue['needs-annotation']).toBe(HELD_LISTED + 5);
    expect(catalog.heldRecordings(3).map((h) => h.id)).toEqual(held.slice(0, 3));
  });

  it('lists every one, with no "more" line, when they fit', () => {
    for (const id of held.slice(HELD_LISTED)) catalog.transition(id, 'ready');
    const text = renderStatus(collectStatus(config, catalog, HELD_LISTED));
    expect(text).toContain(`待补录 needs annotation (${HELD_LISTED}):`);
    expect([...text.matchAll(/^ {2}#(\d+) /gm)].map((m) => Number(m[1]))).toEqual(held.slice(0, HELD_LISTED));
    expect(text).not.toContain('more (the oldest are listed)');
  });
});
