import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { FIXTURE_CACHE, sampleMedia } from '../scripts/media.ts';

const run = promisify(execFile);

/** A valid MP4 of about `sizeMb` MiB (a generated clip looped with -c copy), cached under the fixture cache. */
export async function largeClip(sizeMb: number): Promise<string> {
  const file = path.join(FIXTURE_CACHE, `bench-${sizeMb}MB.mp4`);
  try {
    await fs.access(file);
    return file;
  } catch {
    /* build it */
  }
  const seed = await sampleMedia('video-big', 4, 99);
  const seedSize = (await fs.stat(seed)).size;
  const loops = Math.max(0, Math.ceil((sizeMb * 1024 * 1024) / seedSize) - 1);
  process.stdout.write(
    `building a ${sizeMb} MB MP4 from a ${(seedSize / 1048576).toFixed(1)} MB clip looped ${loops + 1}× ...\n`,
  );
  const tmp = `${file}.tmp.mp4`;
  await run(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-y', '-stream_loop', String(loops), '-i', seed, '-c', 'copy', tmp],
    { timeout: 1_800_000 },
  );
  await fs.rename(tmp, file);
  return file;
}
