import type { DeviceEntry } from '../config.ts';
import { instantInZone, zonedIso } from '../media/zonedTime.ts';
import type { ParsedName } from '../recorder/recordingName.ts';

/** The five fields the rules require on every recording (案件编号、采集时间、采集地点、采集人、证明对象). */
export const REQUIRED_FIELDS = ['caseNo', 'capturedAt', 'place', 'collector', 'purpose'] as const;
export type RequiredField = (typeof REQUIRED_FIELDS)[number];

export const FIELD_LABELS: Record<RequiredField, string> = {
  caseNo: '案件编号 case no.',
  capturedAt: '采集时间 capture time',
  place: '采集地点 place',
  collector: '采集人 collector',
  purpose: '证明对象 purpose',
};

export interface Sidecar {
  caseNo?: string;
  purpose?: string;
  place?: string;
  collector?: string;
}

export interface RecordingMetadata {
  caseNo: string | null;
  capturedAt: string | null;
  capturedAtSource: 'file-name' | 'creation_time' | null;
  recorderTime: string | null;
  place: string | null;
  collector: string | null;
  purpose: string | null;
  deviceSerial: string | null;
  officerId: string | null;
  important: boolean;
}

const SIDECAR_KEYS = ['caseNo', 'purpose', 'place', 'collector'] as const;
const MAX_FIELD = 500;

/** Parses a sidecar document; unknown keys are ignored, wrong types are an error (reported, not fatal). */
export function parseSidecar(text: string): { sidecar: Sidecar; error?: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { sidecar: {}, error: `sidecar is not valid JSON: ${(e as Error).message}` };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { sidecar: {}, error: 'sidecar is not a JSON object' };
  const sidecar: Sidecar = {};
  for (const k of SIDECAR_KEYS) {
    const v = (doc as Record<string, unknown>)[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') return { sidecar: {}, error: `sidecar ${k} must be a string` };
    const t = v.trim();
    if (t.length > MAX_FIELD) return { sidecar: {}, error: `sidecar ${k} is longer than ${MAX_FIELD} characters` };
    if (t) sidecar[k] = t;
  }
  return { sidecar };
}

export interface MetadataInputs {
  name: ParsedName | null;
  sidecar: Sidecar;
  devices: DeviceEntry[];
  /** Serial of the docked recorder when the name does not carry one. */
  sessionSerial: string | null;
  creationTime?: string;
  timeZone: string;
  defaultPlace?: string;
}

function officerName(devices: DeviceEntry[], officerId: string | null, serial: string | null): string | null {
  const byOfficer = officerId ? devices.find((d) => d.officerId === officerId && d.officerName) : undefined;
  if (byOfficer) return byOfficer.officerName!;
  const byDevice = serial ? devices.find((d) => d.serial === serial) : undefined;
  if (byDevice && (!officerId || byDevice.officerId === officerId)) return byDevice.officerName ?? byDevice.officerId;
  return officerId;
}

export function buildMetadata(i: MetadataInputs): RecordingMetadata {
  const deviceSerial = i.name?.serial ?? i.sessionSerial;
  const device = deviceSerial ? i.devices.find((d) => d.serial === deviceSerial) : undefined;
  const officerId = i.name?.officerId ?? device?.officerId ?? null;
  let capturedAt: string | null = null;
  let capturedAtSource: RecordingMetadata['capturedAtSource'] = null;
  let recorderTime: string | null = null;
  if (i.name) {
    capturedAt = zonedIso(i.name.localTime, i.timeZone);
    capturedAtSource = 'file-name';
    recorderTime = i.name.localTime;
  } else if (i.creationTime && !Number.isNaN(Date.parse(i.creationTime))) {
    capturedAt = instantInZone(new Date(i.creationTime), i.timeZone);
    capturedAtSource = 'creation_time';
    recorderTime = i.creationTime;
  }
  return {
    caseNo: i.sidecar.caseNo ?? null,
    capturedAt,
    capturedAtSource,
    recorderTime,
    place: i.sidecar.place ?? i.defaultPlace ?? null,
    collector: i.sidecar.collector ?? officerName(i.devices, officerId, deviceSerial),
    purpose: i.sidecar.purpose ?? null,
    deviceSerial,
    officerId,
    important: i.name?.important ?? false,
  };
}

/**
 * A pool recorder's recording belongs to the officer who held the recorder when it was captured (see daemon/pool):
 * that officer, not the name's or the registry's default, is its officer and, unless the sidecar names one, its collector.
 */
export function attributeToHolder(
  meta: RecordingMetadata,
  holder: { officerId: string; officerName: string | null },
  sidecar: Sidecar,
): void {
  meta.officerId = holder.officerId;
  if (!sidecar.collector) meta.collector = holder.officerName ?? holder.officerId;
}

/** Which required fields are still empty. */
export function missingFields(m: Partial<Record<RequiredField, string | null | undefined>>): RequiredField[] {
  return REQUIRED_FIELDS.filter((f) => !m[f] || !String(m[f]).trim());
}

export function describeMissing(missing: RequiredField[]): string {
  return `missing ${missing.map((f) => FIELD_LABELS[f]).join(', ')}`;
}
