import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../daemon/config.ts';

const run = promisify(execFile);
export const FIXTURE_CACHE = path.join(PACKAGE_ROOT, '.cache', 'fixtures');

export type SampleKind = 'video' | 'video-big' | 'audio-wav' | 'audio-mp3' | 'photo' | 'video-faststart';

const RECIPES: Record<SampleKind, { ext: string; args: (seconds: number) => string[] }> = {
  video: {
    ext: 'mp4',
    args: (s) => [
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=320x240:rate=15:duration=${s}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:duration=${s}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-shortest',
      '-metadata',
      'creation_time=2026-11-28T01:30:00Z',
    ],
  },
  'video-faststart': {
    ext: 'mp4',
    args: (s) => [
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=320x240:rate=15:duration=${s}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-movflags',
      '+faststart',
    ],
  },
  'video-big': {
    ext: 'mp4',
    args: (s) => [
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1280x720:rate=25:duration=${s}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-crf',
      '0',
      '-pix_fmt',
      'yuv420p',
    ],
  },
  'audio-wav': { ext: 'wav', args: (s) => ['-f', 'lavfi', '-i', `sine=frequency=660:duration=${s}`, '-c:a', 'pcm_s16le'] },
  'audio-mp3': { ext: 'mp3', args: (s) => ['-f', 'lavfi', '-i', `sine=frequency=550:duration=${s}`, '-c:a', 'libmp3lame'] },
  photo: { ext: 'jpg', args: () => ['-f', 'lavfi', '-i', 'testsrc2=size=640x480', '-frames:v', '1'] },
};

const making = new Map<string, Promise<string>>();

/**
 * A media file made by ffmpeg, cached under .cache/fixtures; `variant` gives distinct content for the same recipe.
 * Concurrent calls (in this process or others) never collide: each writes its own temp file and renames it in.
 */
export function sampleMedia(kind: SampleKind, seconds = 2, variant = 0): Promise<string> {
  const recipe = RECIPES[kind];
  const file = path.join(FIXTURE_CACHE, `${kind}-${seconds}s-v${variant}.${recipe.ext}`);
  let p = making.get(file);
  if (!p) {
    p = (async () => {
      await fs.mkdir(FIXTURE_CACHE, { recursive: true });
      try {
        await fs.access(file);
        return file;
      } catch {
        /* make it */
      }
      const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp.${recipe.ext}`;
      const args = [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        ...recipe.args(seconds),
        '-metadata',
        `comment=dockd fixture ${variant}`,
        tmp,
      ];
      await run('ffmpeg', args, { timeout: 600_000, maxBuffer: 8 << 20 });
      await fs.rename(tmp, file);
      return file;
    })();
    making.set(file, p);
    p.catch(() => making.delete(file));
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
