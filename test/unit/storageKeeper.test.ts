import type { StatsFs } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StorageKeeper } from '../../daemon/custody/storageKeeper.ts';
import { EventBus } from '../../daemon/events.ts';
import { createLogger } from '../../daemon/log.ts';
import type { StationContext } from '../../daemon/service.ts';
import { StatusBoard } from '../../daemon/status/board.ts';

const MiB = 1 << 20;
const RESERVE = 500 * MiB;

/**
 * The keeper over a file system whose free space the test sets (the host's statfs seam), counting how often it is
 * asked; the clock is the test's too.
 */
function keeperOver(initialFree: number) {
  const fsState = { free: initialFree, asked: 0 };
  let nowMs = Date.parse('2026-12-02T01:00:00Z');
  const statfs = async (): Promise<StatsFs> => {
    fsState.asked++;
    return { bsize: 1, bavail: fsState.free, blocks: 10 * initialFree } as StatsFs;
  };
  const clock = { now: () => new Date(nowMs) };
  const log = createLogger('silent');
  const bus = new EventBus(log);
  const deps = {
    config: { storage: { dir: '/store', reserveBytes: RESERVE, lowWaterBytes: RESERVE * 2 }, retention: { localDays: 180 } },
    catalog: { expiredArchived: () => [] }, // nothing archived yet: nothing for retention to free
    host: { statfs },
    clock,
    log,
    board: new StatusBoard(bus, clock.now, () => {}),
  } as unknown as StationContext;
  return { keeper: new StorageKeeper(deps), fsState, advance: (ms: number) => (nowMs += ms) };
}

describe('StorageKeeper: room for a copy', () => {
  it('counts every recorder’s copies under way: a copy that fits alone is refused beside them', async () => {
    const { keeper } = keeperOver(RESERVE + 100 * MiB);
    expect(await keeper.hasRoom(60 * MiB)).toBe(true);
    const first = keeper.claim(60 * MiB); // recorder A starts it
    expect(await keeper.hasRoom(60 * MiB)).toBe(false); // recorder B's copy would go below the reserve with A's
    expect(await keeper.hasRoom(40 * MiB)).toBe(true);
    first.end(); // A's copy failed and wrote nothing
    expect(await keeper.hasRoom(60 * MiB)).toBe(true);
  });

  it('what a copy wrote comes off the free space once, whether or not the file system has shown it yet', async () => {
    const { keeper, fsState, advance } = keeperOver(RESERVE + 100 * MiB);
    expect(await keeper.hasRoom(1)).toBe(true);
    const copy = keeper.claim(80 * MiB);
    copy.wrote(50 * MiB);
    fsState.free -= 50 * MiB; // the file system shows it
    copy.wrote(80 * MiB);
    copy.end();
    fsState.free -= 30 * MiB;
    // Left: 20 MiB above the reserve, by the last answer less what was written since, or by a fresh answer.
    expect(await keeper.hasRoom(20 * MiB)).toBe(true);
    expect(await keeper.hasRoom(20 * MiB + 1)).toBe(false);
    advance(5000);
    expect(await keeper.hasRoom(20 * MiB)).toBe(true);
    expect(await keeper.hasRoom(20 * MiB + 1)).toBe(false);
  });

  it('asks the file system at most once a second far from the reserve, and for every decision near it', async () => {
    const { keeper, fsState, advance } = keeperOver(RESERVE + 10_000 * MiB);
    for (let i = 0; i < 50; i++) {
      const c = keeper.claim(MiB);
      expect(await keeper.hasRoom(MiB)).toBe(true);
      c.wrote(MiB);
      c.end();
    }
    expect(fsState.asked).toBe(1);
    advance(1001);
    expect(await keeper.hasRoom(MiB)).toBe(true);
    expect(fsState.asked).toBe(2);

    // Space taken by something else (another process) is seen within a second; near the reserve every answer is fresh.
    fsState.free = RESERVE + 30 * MiB;
    advance(1001);
    expect(await keeper.hasRoom(31 * MiB)).toBe(false);
    fsState.free = RESERVE + 40 * MiB;
    expect(await keeper.hasRoom(31 * MiB)).toBe(true);
    expect(fsState.asked).toBe(4);
  });

  it('waitForRoom waits, paused with a reason, until the copies under way are done and space is back', async () => {
    const { keeper, fsState, advance } = keeperOver(RESERVE + 100 * MiB);
    const other = keeper.claim(90 * MiB);
    const reasons: (string | null)[] = [];
    const waited = keeper.waitForRoom(50 * MiB, new AbortController().signal, (r) => reasons.push(r));
    await new Promise((r) => setTimeout(r, 50));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/disk full/);
    other.wrote(90 * MiB);
    other.end();
    fsState.free -= 90 * MiB;
    fsState.free += 200 * MiB; // retention freed objects
    advance(1000);
    expect(await waited).toBe(true);
    expect(reasons).toEqual([expect.stringMatching(/disk full/), null]);
  });
});
