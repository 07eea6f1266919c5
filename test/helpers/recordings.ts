import fs from 'node:fs/promises';
import path from 'node:path';
import { recordingName, sha256OfFile } from '../../scripts/media.ts';
import { dockVolume } from './volume.ts';

export interface PlacedRecording {
  name: string;
  relPath: string;
  sha256: string;
  size: number;
  source: string;
}

/**
 * Builds a recorder volume holding `clips` as GA/T 947 named recordings (serial 1234567, officer 012345) under DCIM/,
 * each with a complete sidecar so it becomes `ready` for upload, and docks it under `mountRoot` in one rename.
 */
export async function dockRecordings(
  mountRoot: string,
  volumeName: string,
  clips: string[],
): Promise<{ volume: string; files: PlacedRecording[] }> {
  const files: PlacedRecording[] = [];
  for (const [i, clip] of clips.entries()) {
    const name = recordingName({ at: `202611280${Math.floor(i / 60) + 8}${String(i % 60).padStart(2, '0')}00`, seq: i + 1 });
    files.push({
      name,
      relPath: path.join('DCIM', name),
      sha256: await sha256OfFile(clip),
      size: (await fs.stat(clip)).size,
      source: clip,
    });
  }
  const volume = await dockVolume(mountRoot, volumeName, async (v) => {
    await fs.mkdir(path.join(v, 'DCIM'));
    for (const [i, f] of files.entries()) {
      await fs.copyFile(f.source, path.join(v, f.relPath));
      await fs.writeFile(
        path.join(v, 'DCIM', f.name.replace(/\.mp4$/, '.meta.json')),
        JSON.stringify({ caseNo: `C-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
      );
    }
  });
  return { volume, files };
}

/** Every object file in the store with the sha256 of its content (the name must equal it). */
export async function storedObjects(storeDir: string): Promise<{ name: string; sha256: string }[]> {
  const root = path.join(storeDir, 'objects', 'sha256');
  const out: { name: string; sha256: string }[] = [];
  for (const a of await fs.readdir(root).catch(() => [] as string[])) {
    for (const b of await fs.readdir(path.join(root, a))) {
      for (const name of await fs.readdir(path.join(root, a, b)))
        out.push({ name, sha256: await sha256OfFile(path.join(root, a, b, name)) });
    }
  }
  return out;
}
