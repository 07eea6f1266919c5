import { cachedFixture, remux, sampleMedia } from '../../scripts/media.ts';

/** Seconds of the lossless 720p recipe ('video-big', about 1.7 MB/s) behind every big clip: about 27 MB. */
const BASE_SECONDS = 16;

/**
 * A large (~27 MB), valid MP4 clip, cached under .cache/fixtures. Variants share the encoded base and differ only in
 * a container tag (remuxed with -c copy), so each variant has its own sha256 but costs no new encode.
 */
export async function bigClip(variant = 0): Promise<string> {
  const base = await sampleMedia('video-big', BASE_SECONDS, 0);
  if (variant === 0) return base;
  return cachedFixture(`video-big-${BASE_SECONDS}s-remux-v${variant}.mp4`, (tmp) =>
    remux(base, tmp, { comment: `dockd big fixture ${variant}` }),
  );
}
