import type { Catalog, FileState } from '../store/catalog.ts';
import type { DiskInfo } from '../store/diskInfo.ts';
import type { Alarm, RecorderStatus, StatusBoard } from './board.ts';

export interface StateSnapshot {
  stationId: string;
  at: string;
  pid: number;
  recorders: RecorderStatus[];
  queue: Record<FileState, number> & {
    bytesPending: number;
    uploading: number;
    outbox: number;
    awaitingReceipt: number;
    receiptOverdue: number;
    receiptOverdueSince: string | null;
    /** Why ordinary recordings are not uploading now (e.g. outside every hq.tus.windows), or null. */
    waitingFor: string | null;
  };
  uploads: { id: number; offset: number; size: number }[];
  disk: DiskInfo | null;
  links: { mqtt: 'connected' | 'disconnected'; tus: 'ok' | 'failing' };
  alarms: Alarm[];
}

export function buildSnapshot(p: {
  stationId: string;
  now: Date;
  board: StatusBoard;
  catalog: Catalog;
  uploads: { id: number; offset: number; size: number }[];
  disk: DiskInfo | null;
  mqttConnected: boolean;
  receipts?: { count: number; oldestSince: string | null };
  watermarks?: { lowWaterBytes: number; reserveBytes: number };
  uploadWaitingFor?: string | null;
}): StateSnapshot {
  const counts = p.catalog.counts();
  return {
    stationId: p.stationId,
    at: p.now.toISOString(),
    pid: process.pid,
    recorders: [...p.board.recorders.values()].map((r) => ({ ...r, files: { ...r.files }, bytes: { ...r.bytes } })),
    queue: {
      ...counts,
      bytesPending: p.catalog.bytesPending(),
      uploading: p.uploads.length,
      outbox: p.catalog.outboxSize(),
      awaitingReceipt: counts.uploaded,
      receiptOverdue: p.receipts?.count ?? 0,
      receiptOverdueSince: p.receipts?.oldestSince ?? null,
      waitingFor: p.uploadWaitingFor ?? null,
    },
    uploads: p.uploads,
    disk: p.disk ? { ...p.disk, ...(p.watermarks ?? {}) } : null,
    links: { mqtt: p.mqttConnected ? 'connected' : 'disconnected', tus: p.board.alarms.has('hq:tus') ? 'failing' : 'ok' },
    alarms: [...p.board.alarms.values()].sort((a, b) => b.since.localeCompare(a.since)),
  };
}
