/** What the daemon reports as it works: MQTT events and audit heads, and its log lines of finished ingest sessions. */
import type { DaemonProcess, LogLine } from './daemon.ts';
import type { Received } from './mosquitto.ts';
import { waitFor } from './ports.ts';

/** Parsed `P/S/event` payloads, optionally of one type. */
export function eventsOf(messages: Received[], type?: string): Record<string, unknown>[] {
  return messages
    .filter((m) => m.topic.endsWith('/event'))
    .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
    .filter((e) => !type || e.type === type);
}

/** Retained-or-live `P/S/audit` heads seen so far, in arrival order. */
export function auditHeads(messages: Received[]): { seq: number; hash: string; at: string; retain: boolean }[] {
  return messages
    .filter((m) => m.topic.endsWith('/audit'))
    .map((m) => ({ ...(JSON.parse(m.payload) as { seq: number; hash: string; at: string }), retain: m.retain }));
}

/** Log lines of finished ingest sessions (one per docked volume), in order. */
export function ingestFinished(daemon: DaemonProcess): LogLine[] {
  return daemon.logs.filter((l) => l.msg === 'recorder ingest finished');
}

export async function waitForIngestFinished(daemon: DaemonProcess, n: number, timeoutMs = 180_000): Promise<LogLine> {
  await waitFor(
    `${n} finished ingest session(s)`,
    () => {
      if (daemon.proc?.exitCode !== null && daemon.proc?.exitCode !== undefined)
        throw new Error(`dockd exited ${daemon.proc.exitCode}: ${daemon.stderr}`);
      return ingestFinished(daemon).length >= n;
    },
    timeoutMs,
  );
  return ingestFinished(daemon)[n - 1];
}
