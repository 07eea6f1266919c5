import fs from 'node:fs/promises';
import path from 'node:path';
import type { RecorderModel } from '../../drivers/emulator/index.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import type { VolumeFile } from './volumes.ts';
import { RECORDER_PASSWORD } from './hilWorld.ts';

export interface Clip extends VolumeFile {
  sha256: string;
  size: number;
}

/** A recorder's model for the emulator's command server. */
export function recorderModel(serial: string, officerId: string, officerName: string): RecorderModel {
  return {
    serial,
    officerId,
    officerName,
    unitNo: 'HIL',
    password: RECORDER_PASSWORD,
    loginWord: 'OK',
    battery: 77,
    clockOffsetMs: 90_000,
    now: () => new Date(),
    timeZone: 'Asia/Shanghai',
  };
}

/**
 * Clips made by ffmpeg with GA/T 947 names and complete sidecars (so they go to HQ at once): in DCIM/100MEDIA, one
 * nested deep, one under a long name. `variants` gives distinct contents; `seconds` their length (a few MB at most:
 * TCG is slow).
 */
export async function recorderClips(
  dir: string,
  o: { serial: string; officerId: string; variants: number[]; seconds?: number; kind?: 'video' | 'video-big' },
): Promise<{ clips: Clip[]; files: VolumeFile[] }> {
  await fs.mkdir(dir, { recursive: true });
  const clips: Clip[] = [];
  const files: VolumeFile[] = [];
  for (const [i, variant] of o.variants.entries()) {
    const source = await sampleMedia(o.kind ?? 'video', o.seconds ?? 2, variant);
    const name = recordingName({
      officerId: o.officerId,
      serial: o.serial,
      at: `20261128${String(8 + i).padStart(2, '0')}0000`,
      seq: i + 1,
    });
    const folder =
      i === 1
        ? 'DCIM/100MEDIA/2026/11/28/深夜巡逻 night patrol/a long folder name that is well past eight dot three'
        : 'DCIM/100MEDIA';
    const rel = `${folder}/${name}`;
    const sidecar = path.join(dir, `${name.replace(/\.mp4$/, '')}.meta.json`);
    await fs.writeFile(sidecar, JSON.stringify({ caseNo: `HIL-${o.serial}-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }));
    clips.push({ rel, source, sha256: await sha256OfFile(source), size: (await fs.stat(source)).size });
    files.push({ rel, source }, { rel: rel.replace(/\.mp4$/, '.meta.json'), source: sidecar });
  }
  return { clips, files };
}
