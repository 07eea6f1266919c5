import path from 'node:path';
import type { DeviceEntry } from '../config.ts';
import type { FoundRecording } from '../recorder/discover.ts';
import { parseRecordingName } from '../recorder/recordingName.ts';

function mostCommon(values: (string | null | undefined)[]): string | null {
  const counts = new Map<string, number>();
  for (const v of values) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: string | null = null;
  for (const [v, n] of counts) if (!best || n > counts.get(best)!) best = v;
  return best;
}

/** Who docked: the serial most file names carry (else the volume's name when it looks like one), and its officer. */
export function identifyRecorder(
  volumeName: string,
  recordings: FoundRecording[],
  devices: DeviceEntry[],
): { serial: string | null; officerId: string | null; officerName: string | null } {
  const names = recordings.map((r) => parseRecordingName(path.basename(r.relPath)));
  let serial = mostCommon(names.map((n) => n?.serial));
  if (!serial && devices.some((d) => d.serial === volumeName)) serial = volumeName;
  if (!serial && /^[A-Za-z0-9]{7}$/.test(volumeName)) serial = volumeName;
  const device = serial ? devices.find((d) => d.serial === serial) : undefined;
  const officerId = device?.officerId ?? mostCommon(names.map((n) => n?.officerId));
  const officerName = device?.officerName ?? devices.find((d) => d.officerId === officerId)?.officerName ?? null;
  return { serial, officerId, officerName };
}
