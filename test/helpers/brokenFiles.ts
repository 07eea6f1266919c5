/** Recordings that are not what they should be: cut short, garbage, or colliding on a sha256 prefix. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { sha256Of } from './trees.ts';

/** Writes the first half of `source` to `target` (a recording cut short, e.g. the battery died mid-write). */
export async function writeFirstHalf(source: string, target: string): Promise<Buffer> {
  const data = await fs.readFile(source);
  const half = data.subarray(0, Math.floor(data.length / 2));
  await fs.writeFile(target, half);
  return half;
}

/** A file that is not a valid recording (random bytes): ffprobe fails on it, so it is rejected. */
export async function writeCorrupt(target: string, size = 4096): Promise<Buffer> {
  const data = randomBytes(size);
  await fs.writeFile(target, data);
  return data;
}

/** Two distinct random blobs whose sha256 share their first `hexDigits` hex digits (a birthday search; fast for 6). */
export function blobsWithSharedPrefix(hexDigits = 6, size = 1024): { a: Buffer; b: Buffer; prefix: string } {
  const seen = new Map<string, Buffer>();
  for (;;) {
    const blob = randomBytes(size);
    const prefix = sha256Of(blob).slice(0, hexDigits);
    const other = seen.get(prefix);
    if (other && !other.equals(blob)) return { a: other, b: blob, prefix };
    seen.set(prefix, blob);
  }
}
