import fs from 'node:fs/promises';
import path from 'node:path';
import { sampleMedia } from '../scripts/media.ts';
import { largeClip } from './largeClip.ts';

/** Recorded during the shift, docked at its end: the files are old (settled). */
const RECORDED = new Date('2026-11-28T18:00:00+08:00');

/** A file made distinct from its source by its index written into the middle (same size, same container). */
async function distinctCopy(source: Buffer, target: string, index: number): Promise<void> {
  const copy = Buffer.from(source);
  Buffer.from(`dockd-bench-${index}-${Math.random()}`).copy(copy, Math.floor(copy.length / 2));
  await fs.writeFile(target, copy);
  await fs.utimes(target, RECORDED, RECORDED);
}

/**
 * A day's worth of small recordings: 200 clips of 1–2 MB, 50 photos, 20 sound files, every file distinct. `recorder`
 * numbers the volume: each has a serial of its own and content of its own (recorders in eight bays hold eight different
 * days, not one day eight times).
 */
export async function shiftVolume(dir: string, recorder = 0): Promise<void> {
  const d = path.join(dir, 'DCIM', '100MEDIA');
  await fs.mkdir(d, { recursive: true });
  const clips = await Promise.all([14, 18, 22, 27].map((s, i) => sampleMedia('video', s, 900 + i).then((p) => fs.readFile(p))));
  const photo = await fs.readFile(await sampleMedia('photo', 1, 910));
  const wav = await fs.readFile(await sampleMedia('audio-wav', 3, 911));
  const serial = String(1234567 + recorder);
  const name = (i: number, ext: string) =>
    `012345_${serial}_20261128${String(80000 + i).padStart(6, '0')}_${String(i).padStart(4, '0')}.${ext}`;
  const jobs: Promise<void>[] = [];
  const mark = (i: number) => recorder * 1000 + i;
  for (let i = 0; i < 200; i++) jobs.push(distinctCopy(clips[i % clips.length], path.join(d, name(i, 'mp4')), mark(i)));
  for (let i = 0; i < 50; i++) jobs.push(distinctCopy(photo, path.join(d, name(200 + i, 'jpg')), mark(200 + i)));
  for (let i = 0; i < 20; i++) jobs.push(distinctCopy(wav, path.join(d, name(250 + i, 'wav')), mark(250 + i)));
  await Promise.all(jobs);
}

/**
 * One large clip. `recorder` numbers the volume, as for shiftVolume: from 1 on, the clip has a serial of its own and its
 * index written into its middle (content of its own, same size and container).
 */
export async function bigVolume(dir: string, sizeMb: number, recorder = 0): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const target = path.join(dir, `012345_${1234567 + recorder}_20261128080000_0001.mp4`);
  await fs.copyFile(await largeClip(sizeMb), target);
  if (recorder) {
    const f = await fs.open(target, 'r+');
    try {
      const { size } = await f.stat();
      await f.write(Buffer.from(`dockd-bench-${recorder}-${Math.random()}`), 0, undefined, Math.floor(size / 2));
    } finally {
      await f.close();
    }
  }
  await fs.utimes(target, RECORDED, RECORDED);
}
