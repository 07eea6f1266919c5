import type { EventBus } from '../events.ts';

export type RecorderState = 'identifying' | 'copying' | 'paused' | 'verifying' | 'done' | 'error' | 'unplugged';

export interface RecorderStatus {
  volume: string;
  name: string;
  sessionId: number;
  serial: string | null;
  officerId: string | null;
  officerName: string | null;
  state: RecorderState;
  dockedAt: string;
  files: {
    total: number;
    done: number;
    copied: number;
    alreadyStored: number;
    rejected: number;
    damaged: number;
    needsAnnotation: number;
    skipped: number;
    /** Recordings still being written (size or mtime changing): copied once they settle. */
    settling: number;
    /** Recordings that changed after they were copied, copied again as a new version (`supersedes`). */
    superseded: number;
  };
  bytes: { total: number; done: number };
  current: string | null;
  /** Every recording on it is stored and hashed, none left behind, none still changing: the officer may take it. */
  safeToUndock: boolean;
  /** Recordings (or directories that may hold some) on the volume that are not in the store, with the reason. */
  leftBehind: { path: string; reason: string; pathHex?: string }[];
  error: string | null;
  /** Battery level in percent, when the recorder's protocol reports it. */
  battery?: number | null;
  /** Recorder clock minus station clock in ms, when the recorder's protocol reports it. */
  driftMs?: number | null;
  /** The bay (dock.bays) or USB port the recorder sits in, when known. */
  bay?: string | null;
}

/** The counters of a recorder tile before anything is known. */
export function noFiles(): RecorderStatus['files'] {
  return {
    total: 0,
    done: 0,
    copied: 0,
    alreadyStored: 0,
    rejected: 0,
    damaged: 0,
    needsAnnotation: 0,
    skipped: 0,
    settling: 0,
    superseded: 0,
  };
}

export type AlarmCode =
  | 'HQ_UNREACHABLE'
  | 'UPLOAD_REFUSED'
  | 'INGEST_FAILED'
  | 'RECORDER_UNPLUGGED'
  | 'MQTT_UNREACHABLE'
  | 'DISK_LOW'
  | 'DISK_FULL'
  | 'OBJECT_CORRUPT'
  | 'RECEIPT_OVERDUE'
  | 'UNKNOWN_RECORDER'
  | 'WRONG_PASSWORD'
  | 'RECORDER_HANDSHAKE_FAILED'
  | 'RECORDER_NO_STORAGE'
  | 'MOUNT_FAILED'
  | 'RECORDING_LEFT_BEHIND'
  | 'SERVICE_FAILED'
  | 'LATE_OFFLOAD'
  | 'ANNOTATION_OVERDUE'
  | 'UPLOAD_OVERDUE'
  | 'RECORDER_NOT_DOCKED';

export interface Alarm {
  key: string;
  code: AlarmCode;
  message: string;
  since: string;
  /** An admin has seen it (it stays active until its cause clears). */
  acknowledged?: boolean;
  acknowledgedBy?: string;
  acknowledgedAt?: string;
}

/** The live picture: docked recorders and active alarms. Services write it; the status publisher reads it. */
export class StatusBoard {
  readonly recorders = new Map<string, RecorderStatus>();
  readonly alarms = new Map<string, Alarm>();

  constructor(
    private readonly bus: EventBus,
    private readonly now: () => Date,
    private readonly onAlarm: (a: Alarm, raised: boolean) => void,
  ) {}

  upsertRecorder(r: RecorderStatus): void {
    this.recorders.set(r.volume, r);
    this.bus.emit('state.changed');
  }

  /** Tells the listeners that a recorder's tile changed (see RecorderTile), when it is on the board. */
  recorderChanged(volume: string): void {
    if (this.recorders.has(volume)) this.bus.emit('state.changed');
  }

  patchRecorder(volume: string, patch: Partial<RecorderStatus>): void {
    const r = this.recorders.get(volume);
    if (!r) return;
    Object.assign(r, patch);
    this.bus.emit('state.changed');
  }

  removeRecorder(volume: string): void {
    if (this.recorders.delete(volume)) this.bus.emit('state.changed');
  }

  /** Raises an alarm once per key; returns false if it was already active. */
  raise(code: AlarmCode, key: string, message: string): boolean {
    const existing = this.alarms.get(key);
    if (existing && existing.message === message) return false;
    const ack = existing?.acknowledged
      ? { acknowledged: true, acknowledgedBy: existing.acknowledgedBy, acknowledgedAt: existing.acknowledgedAt }
      : {};
    const alarm: Alarm = { key, code, message, since: existing?.since ?? this.now().toISOString(), ...ack };
    this.alarms.set(key, alarm);
    if (!existing) this.onAlarm(alarm, true);
    this.bus.emit('state.changed');
    return !existing;
  }

  /** Marks an active alarm as seen by `by`; null if no such alarm. An update of its message keeps the mark. */
  acknowledge(key: string, by: string): Alarm | null {
    const a = this.alarms.get(key);
    if (!a) return null;
    if (!a.acknowledged) {
      Object.assign(a, { acknowledged: true, acknowledgedBy: by, acknowledgedAt: this.now().toISOString() });
      this.bus.emit('state.changed');
    }
    return a;
  }

  clear(key: string): void {
    const a = this.alarms.get(key);
    if (!a) return;
    this.alarms.delete(key);
    this.onAlarm(a, false);
    this.bus.emit('state.changed');
  }
}
