import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CopyError, copyAndHash } from '../../daemon/recorder/copyAndHash.ts';
import { DigestWorkers } from '../../daemon/recorder/digestWorkers.ts';
import { tempDir } from '../helpers/daemon.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** SM3 as OpenSSL's command line gives it for the file. */
async function opensslSm3(file: string): Promise<string> {
  const { stdout } = await run('openssl', ['dgst', '-sm3', '-r', file]);
  return stdout.split(' ')[0]!;
}

describe('SM3 on worker threads, beside the copy', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('dockd-digest-workers-');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('copies several files at once, each with the SM3 that `openssl dgst -sm3` gives for it (empty, one chunk, many chunks)', async () => {
    const sizes = [0, 1, 4 * MiB, 4 * MiB + 1, 19 * MiB + 777];
    const sources = await Promise.all(
      sizes.map(async (n, i) => {
        const p = path.join(dir, `src-${i}.bin`);
        await fs.writeFile(p, randomBytes(n));
        return p;
      }),
    );
    const results = await Promise.all(sources.map((s) => copyAndHash(s, `${s}.copy`, { extraDigests: ['sm3'] })));
    for (const [i, s] of sources.entries()) {
      expect(results[i].size).toBe(sizes[i]);
      expect(results[i].digests).toEqual({ sm3: await opensslSm3(s) });
      expect(await opensslSm3(`${s}.copy`)).toBe(results[i].digests.sm3);
    }
  });

  it('an unknown algorithm fails its own stream only; the workers go on serving the next copies', async () => {
    const workers = new DigestWorkers(1);
    const bad = workers.open(['no-such-digest']);
    await expect(bad.digest()).rejects.toThrow(/cannot compute the digests/);
    const good = workers.open(['sm3', 'sha512']);
    const bytes = randomBytes(5 * MiB);
    await good.update(bytes.subarray(0, 3 * MiB));
    await good.update(bytes.subarray(3 * MiB));
    const file = path.join(dir, 'bytes.bin');
    await fs.writeFile(file, bytes);
    const { stdout } = await run('openssl', ['dgst', '-sha512', '-r', file]);
    expect(await good.digest()).toEqual({ sm3: await opensslSm3(file), sha512: stdout.split(' ')[0] });
  });

  it('a copy interrupted mid-file drops its stream; the next copy of the same file has the right SM3', async () => {
    const src = path.join(dir, 'clip.bin');
    await fs.writeFile(src, randomBytes(13 * MiB));
    const ac = new AbortController();
    const e = await copyAndHash(src, path.join(dir, 'first.copy'), {
      extraDigests: ['sm3'],
      signal: ac.signal,
      onBytes: () => ac.abort(),
    }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(CopyError);
    const r = await copyAndHash(src, path.join(dir, 'second.copy'), { extraDigests: ['sm3'] });
    expect(r.digests.sm3).toBe(await opensslSm3(src));
  });
});
