import type { RecorderStatus } from '../status/board.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import type { Catalog } from '../store/catalog.ts';

/**
 * What the page and GET /api/state show: the MQTT state snapshot, plus the upload speed, each recorder's
 * recordings still waiting to go to HQ, and a marker that changes whenever the list of held recordings changes.
 */
export interface StationState extends Omit<StateSnapshot, 'recorders'> {
  recorders: (RecorderStatus & { uploadsPending: number })[];
  uploadBytesPerSecond: number;
  held: { count: number; latest: string | null };
}

export function stationState(snap: StateSnapshot, catalog: Catalog, uploadBytesPerSecond: number): StationState {
  const held = catalog.held();
  return {
    ...snap,
    recorders: snap.recorders.map((r) => ({ ...r, uploadsPending: catalog.uploadsPendingOf(r.sessionId) })),
    alarms: snap.alarms.map((a) => ({ ...a, acknowledged: Boolean(a.acknowledged) })),
    // The current speed: nothing in flight is 0, whatever the last few seconds carried.
    uploadBytesPerSecond: snap.uploads.length ? uploadBytesPerSecond : 0,
    held,
  };
}

/** Upload speed over the last few seconds, from the uploader's running count of bytes sent. */
export class RateMeter {
  private readonly samples: { at: number; bytes: number }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly read: () => number,
    /** Milliseconds now (the station's clock). */
    private readonly ms: () => number,
    private readonly windowMs = 5000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private sample(): void {
    const now = this.ms();
    this.samples.push({ at: now, bytes: this.read() });
    while (this.samples.length > 2 && now - this.samples[1].at >= this.windowMs) this.samples.shift();
  }

  /** Bytes per second between the oldest sample in the window and now. */
  perSecond(): number {
    const first = this.samples[0];
    if (!first) return 0;
    const now = this.ms();
    const bytes = this.read() - first.bytes;
    return now > first.at && bytes > 0 ? Math.round(bytes / ((now - first.at) / 1000)) : 0;
  }
}
