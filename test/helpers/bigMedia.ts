import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { FIXTURE_CACHE, sampleMedia } from '../../scripts/media.ts';

const run = promisify(execFile);

/** Seconds of the lossless 720p recipe ('video-big', about 1.7 MB/s) behind every big clip: about 27 MB. */
const BASE_SECONDS = 16;

/**
 * A large (~27 MB), valid MP4 clip, cached under .cache/fixtures. Variants share the encoded base and differ only in
 * a container tag (remuxed with -c copy), so each variant has its own sha256 but costs no new encode.
 */
export async function bigClip(variant = 0): Promise<string> {
  const base = await sampleMedia('video-big', BASE_SECONDS, 0);
  if (variant === 0) return base;
  const file = path.join(FIXTURE_CACHE, `video-big-${BASE_SECONDS}s-remux-v${variant}.mp4`);
  try {
    await fs.access(file);
    return file;
  } catch {
    /* make it */
  }
  const tmp = `${file}.${process.pid}-${Math.random().toString(16).slice(2, 10)}.tmp.mp4`;
  await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-i',
      base,
      '-map',
      '0',
      '-c',
      'copy',
      '-metadata',
      `comment=dockd big fixture ${variant}`,
      tmp,
    ],
    { timeout: 300_000 },
  );
  await fs.rename(tmp, file);
  return file;
}
