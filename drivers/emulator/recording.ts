/**
 * The emulated recorder records: a new file in its own storage, named as the recorder names it (GA/T 947:
 * `<officerId>_<serial>_<YYYYMMDDhhmmss>_<seq>[IMP].<ext>` in `DCIM/100MEDIA`), with the officer it is assigned to now
 * (`BC+UID=` changes it) and its own clock (which may drift). The content is copied from a media file the caller gives.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatBcTime } from '../protocols/bc/time.ts';
import { recorderClock, type RecorderModel } from './commandServer.ts';

export const RECORDING_DIR = ['DCIM', '100MEDIA'] as const;

export interface RecordOptions {
  /** A media file whose bytes become the recording. */
  from: string;
  /** Extension without the dot (default: that of `from`). */
  ext?: string;
  important?: boolean;
}

/** The next sequence number: one past the highest among the recordings already in the folder. */
async function nextSeq(dir: string): Promise<number> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const seqs = names.map((n) => /^[^_]+_[^_]+_\d{14}_(\d{1,8})/.exec(n)).map((m) => (m ? Number(m[1]) : 0));
  return Math.max(0, ...seqs) + 1;
}

/** Writes one recording into the storage at `volumeDir`; returns its path inside the storage (`/`-separated). */
export async function recordInto(volumeDir: string, model: RecorderModel, o: RecordOptions): Promise<string> {
  const dir = path.join(volumeDir, ...RECORDING_DIR);
  await fs.mkdir(dir, { recursive: true });
  const at = formatBcTime(recorderClock(model), model.timeZone);
  const seq = String(await nextSeq(dir)).padStart(4, '0');
  const ext = o.ext ?? (path.extname(o.from).slice(1) || 'mp4');
  const name = `${model.officerId}_${model.serial}_${at}_${seq}${o.important ? 'IMP' : ''}.${ext}`;
  await fs.copyFile(o.from, path.join(dir, name));
  return [...RECORDING_DIR, name].join('/');
}
