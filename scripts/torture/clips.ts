import fs from 'node:fs/promises';
import path from 'node:path';
import { bigClip } from '../../test/helpers/bigMedia.ts';
import { dockVolume } from '../../test/helpers/volume.ts';
import { recordingName, remux, sampleMedia, sha256OfFile } from '../media.ts';

/** Small clips: the 'video' recipe makes about 75 kB a second, so these are 0.6–3 MB. */
const SMALL_SECONDS = [8, 14, 20, 26, 32, 40];
/** `big`: the test suite's ~27 MB clip, two per volume: a copy lasts long enough (~0.1–0.3 s) to be killed half-way. */
export type ClipRole = 'small' | 'big';

export interface TortureClip {
  wave: number;
  role: ClipRole;
  name: string;
  relPath: string;
  size: number;
  sha256: string;
}

/** One recorder volume of the torture: docked, copied under fire, undocked once dockd said it was safe. */
export interface Wave {
  index: number;
  volume: string;
  clips: TortureClip[];
  bigs: TortureClip[];
  bytes: number;
  /** dockd's state said 可安全拔出 safe to undock for this volume at some point. */
  safeSeen: boolean;
  undocked: boolean;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** GA/T 947 time of clip `i` of wave `w`: waves an hour apart from 2026-11-28 08:00, clips two minutes apart. */
function captureTime(w: number, i: number): string {
  const t = new Date(Date.UTC(2026, 10, 28, 8, 0, 0) + w * 3_600_000 + i * 120_000);
  return `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${pad(t.getUTCSeconds())}`;
}

/**
 * Makes the clips of each wave: real ffmpeg clips (encoded once, cached under .cache/fixtures), each remuxed with its
 * own container comment so that every clip of every wave has distinct content (its own sha256) at no encoding cost.
 */
export class ClipFactory {
  private bases: { small: string[]; big: string } | null = null;

  constructor(private readonly clipsPerWave: number) {}

  async prepare(): Promise<void> {
    if (this.bases) return;
    const small = [];
    for (const [i, s] of SMALL_SECONDS.entries()) small.push(await sampleMedia('video', s, 100 + i));
    this.bases = { small, big: await bigClip(0) };
  }

  /** Builds wave `index` (clips, a sidecar each so every clip is ready for upload) and docks it under `mountRoot`. */
  async dock(index: number, mountRoot: string): Promise<Wave> {
    await this.prepare();
    const bases = this.bases!;
    const clips: TortureClip[] = [];
    const volume = await dockVolume(mountRoot, `REC-W${pad(index, 3)}`, async (dir) => {
      await fs.mkdir(path.join(dir, 'DCIM'));
      for (let i = 0; i < this.clipsPerWave; i++) {
        // The big clips come early and in the middle, so kills find them half-copied and half-uploaded.
        const role: ClipRole = i === 1 || i === Math.floor(this.clipsPerWave / 2) ? 'big' : 'small';
        const base = role === 'big' ? bases.big : bases.small[i % bases.small.length];
        const name = recordingName({
          at: captureTime(index, i),
          seq: (index * 100 + i + 1) % 10_000,
          important: i === this.clipsPerWave - 1,
        });
        const relPath = path.join('DCIM', name);
        const file = path.join(dir, relPath);
        await remux(base, file, { comment: `dockd torture wave ${index} clip ${i}` });
        await fs.writeFile(
          path.join(dir, 'DCIM', name.replace(/\.mp4$/, '.meta.json')),
          JSON.stringify({ caseNo: `T${index}-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
        );
        clips.push({ wave: index, role, name, relPath, size: (await fs.stat(file)).size, sha256: await sha256OfFile(file) });
      }
    });
    return {
      index,
      volume,
      clips,
      bigs: clips.filter((c) => c.role === 'big'),
      bytes: clips.reduce((n, c) => n + c.size, 0),
      safeSeen: false,
      undocked: false,
    };
  }

  /** Takes the volume away, as an officer does once the station says it is safe. */
  static async undock(wave: Wave): Promise<void> {
    await fs.rm(wave.volume, { recursive: true, force: true });
    wave.undocked = true;
  }
}
