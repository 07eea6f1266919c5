import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, lowerPriority } from '../../daemon/backgroundPriority.ts';
import { CopyWorkers } from '../../daemon/recorder/copyWorkers.ts';
import { tempDir } from '../helpers/daemon.ts';

/** The nice value of a task (a thread or a process) from /proc: field 19 of its stat line. */
async function niceOf(statFile: string): Promise<number> {
  const stat = await fs.readFile(statFile, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

async function threadNices(): Promise<number[]> {
  const tids = await fs.readdir('/proc/self/task');
  return Promise.all(tids.map((t) => niceOf(`/proc/self/task/${t}/stat`).catch(() => Number.NaN)));
}

const lowered = (nice: number) => Math.min(19, nice + BACKGROUND_NICE);

describe('background work runs below the event loop', () => {
  it('a copy thread lowers its own priority, not the event loop’s', async () => {
    const own = os.getPriority(0);
    const count = async () => (await threadNices()).filter((n) => n === lowered(own)).length;
    const before = await count();
    const one = new CopyWorkers(1);
    const dir = await tempDir('dockd-nice-');
    try {
      await fs.writeFile(path.join(dir, 'src'), randomBytes(1000));
      expect((await one.copyAndHash(path.join(dir, 'src'), path.join(dir, 'dst'))).size).toBe(1000);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    expect(await count()).toBe(before + 1);
    expect(os.getPriority(0)).toBe(own);
  });

  it('a tool started for background work (ffprobe, ffmpeg) is lowered; one already gone is no error', async () => {
    const child = spawn('sleep', ['5']);
    try {
      const own = os.getPriority(0);
      lowerPriority(child.pid);
      expect(await niceOf(`/proc/${child.pid}/stat`)).toBe(lowered(own));
    } finally {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    }
    expect(() => lowerPriority(child.pid)).not.toThrow();
    expect(() => lowerPriority(undefined)).not.toThrow();
  });
});
