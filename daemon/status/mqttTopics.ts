import type { StateSnapshot } from './snapshot.ts';
import type { StationEvent } from './stationEvents.ts';
import type { SignedAuditHead } from '../custody/signatures.ts';

/**
 * The topics under P/S (P = hq.mqtt.topicPrefix, S = station.id) and what each carries: the MQTT contract of
 * DESIGN.md and the README. Model: zigbee2mqtt's lib/types/api.ts.
 */
export interface StationTopics {
  /** Retained; `offline` is also the last will. */
  status: 'online' | 'offline';
  /** Retained snapshot, on change and every few seconds. */
  state: StateSnapshot;
  /** QoS 1, through the catalog's outbox. */
  event: StationEvent;
  /** Retained, signed head of the audit chain. */
  audit: SignedAuditHead;
}

/** HQ → station. */
export interface HqTopics {
  receipt: { stationId?: string; sha256: string; ok: boolean; at?: string; sig?: string };
}

export type StationTopic = keyof StationTopics;

/** The payload of a station topic as it goes on the wire. */
export function wirePayload<T extends StationTopic>(_topic: T, payload: StationTopics[T]): string {
  return typeof payload === 'string' ? payload : JSON.stringify(payload);
}
