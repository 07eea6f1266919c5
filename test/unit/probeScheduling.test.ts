import { describe, expect, it } from 'vitest';
import { PROBE_MAX_WAIT_MS, probeMayStart } from '../../daemon/dock/dockService.ts';

describe('when a stored file waiting for its verification may be probed', () => {
  it('at once while no recorder copies, as many as there are slots', () => {
    expect(probeMayStart({ running: 0, slots: 1, copying: false, waitedMs: 0 })).toBe(true);
    expect(probeMayStart({ running: 2, slots: 3, copying: false, waitedMs: 0 })).toBe(true);
    expect(probeMayStart({ running: 3, slots: 3, copying: false, waitedMs: 10 * PROBE_MAX_WAIT_MS })).toBe(false);
  });

  it('not while recorders copy, until the first in line has waited PROBE_MAX_WAIT_MS (a minute)', () => {
    expect(PROBE_MAX_WAIT_MS).toBe(60_000);
    expect(probeMayStart({ running: 0, slots: 3, copying: true, waitedMs: 0 })).toBe(false);
    expect(probeMayStart({ running: 0, slots: 3, copying: true, waitedMs: PROBE_MAX_WAIT_MS - 1 })).toBe(false);
    expect(probeMayStart({ running: 0, slots: 3, copying: true, waitedMs: PROBE_MAX_WAIT_MS })).toBe(true);
  });

  it('beside the copies, one probe at a time however long files have waited', () => {
    expect(probeMayStart({ running: 1, slots: 3, copying: true, waitedMs: 10 * PROBE_MAX_WAIT_MS })).toBe(false);
  });
});
