import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';

const run = promisify(execFile);
export const FIXTURE_CACHE = path.join(PACKAGE_ROOT, '.cache', 'fixtures');

export type SampleKind = 'video' | 'video-big' | 'audio-wav' | 'audio-mp3' | 'photo' | 'video-faststart';

const lavfi = (source: string) => ['-f', 'lavfi', '-i', source];
const testPattern = (size: string, rate: number, s: number) => lavfi(`testsrc2=size=${size}:rate=${rate}:duration=${s}`);
const x264 = (...options: string[]) => ['-c:v', 'libx264', '-preset', 'ultrafast', ...options, '-pix_fmt', 'yuv420p'];

const RECIPES: Record<SampleKind, { ext: string; args: (seconds: number) => string[] }> = {
  video: {
    ext: 'mp4',
    args: (s) => [
      ...testPattern('320x240', 15, s),
      ...lavfi(`sine=frequency=440:duration=${s}`),
      ...x264(),
      '-c:a',
      'aac',
      '-shortest',
      '-metadata',
      'creation_time=2026-11-28T01:30:00Z',
    ],
  },
  'video-faststart': { ext: 'mp4', args: (s) => [...testPattern('320x240', 15, s), ...x264(), '-movflags', '+faststart'] },
  'video-big': { ext: 'mp4', args: (s) => [...testPattern('1280x720', 25, s), ...x264('-crf', '0')] },
  'audio-wav': { ext: 'wav', args: (s) => [...lavfi(`sine=frequency=660:duration=${s}`), '-c:a', 'pcm_s16le'] },
  'audio-mp3': { ext: 'mp3', args: (s) => [...lavfi(`sine=frequency=550:duration=${s}`), '-c:a', 'libmp3lame'] },
  photo: { ext: 'jpg', args: () => [...lavfi('testsrc2=size=640x480'), '-frames:v', '1'] },
};

/**
 * `name` in the fixture cache, made by `make(tmp)` unless it is there already. Concurrent makers (in this process or
 * others) never collide: each writes its own temp file and renames it in.
 */
export async function cachedFixture(name: string, make: (tmp: string) => Promise<unknown>): Promise<string> {
  const file = path.join(FIXTURE_CACHE, name);
  await fs.mkdir(FIXTURE_CACHE, { recursive: true });
  try {
    await fs.access(file);
    return file;
  } catch {
    /* make it */
  }
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp${path.extname(file)}`;
  await make(tmp);
  await fs.rename(tmp, file);
  return file;
}

/**
 * `source` remuxed into `target` (the streams copied, nothing encoded again): the same media, played `plays` times when
 * given, with `comment` as its container comment when given, so that each comment gives its own sha256 at no cost.
 */
export async function remux(source: string, target: string, o: { comment?: string; plays?: number } = {}): Promise<void> {
  const loop = o.plays === undefined ? [] : ['-stream_loop', String(o.plays - 1)];
  const comment = o.comment === undefined ? [] : ['-metadata', `comment=${o.comment}`];
  await run(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-y', ...loop, '-i', source, '-map', '0', '-c', 'copy', ...comment, target],
    {
      timeout: 300_000,
    },
  );
}

const making = new Map<string, Promise<string>>();

/** A media file made by ffmpeg, cached under .cache/fixtures; `variant` gives distinct content for the same recipe. */
export function sampleMedia(kind: SampleKind, seconds = 2, variant = 0): Promise<string> {
  const recipe = RECIPES[kind];
  const name = `${kind}-${seconds}s-v${variant}.${recipe.ext}`;
  let p = making.get(name);
  if (!p) {
    p = cachedFixture(name, (tmp) =>
      run(
        'ffmpeg',
        [
          '-hide_banner',
          '-loglevel',
          'error',
          '-y',
          ...recipe.args(seconds),
          '-metadata',
          `comment=dockd fixture ${variant}`,
          tmp,
        ],
        {
          timeout: 600_000,
          maxBuffer: 8 << 20,
        },
      ),
    );
    making.set(name, p);
    p.catch(() => making.delete(name));
  }
  return p;
}

/** A GA/T 947 style file name: officer first by default. */
export function recordingName(o: {
  officerId?: string;
  serial?: string;
  at?: string;
  seq?: number;
  important?: boolean;
  ext?: string;
  deviceFirst?: boolean;
}): string {
  const officerId = o.officerId ?? '012345';
  const serial = o.serial ?? '1234567';
  const at = o.at ?? '20261128093000';
  const seq = String(o.seq ?? 1).padStart(4, '0');
  const head = o.deviceFirst ? `${serial}_${officerId}` : `${officerId}_${serial}`;
  return `${head}_${at}_${seq}${o.important ? 'IMP' : ''}.${o.ext ?? 'mp4'}`;
}

export async function sha256OfFile(p: string): Promise<string> {
  const h = createHash('sha256');
  h.update(await fs.readFile(p));
  return h.digest('hex');
}
