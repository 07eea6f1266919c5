import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Catalog } from '../store/catalog.ts';
import { FILE_STATES } from '../store/catalog.ts';
import type { StationState } from './stationState.ts';

/**
 * GET /metrics in the Prometheus text format (prom-client, its own registry). Gauges are set from the station state
 * at scrape time; the ingested/uploaded counters follow the catalog (so they do not restart from zero with dockd);
 * the sent-bytes counter counts what this process put on the wire.
 */
export class StationMetrics {
  readonly registry = new Registry();
  private readonly docked: Gauge;
  private readonly recorders: Gauge<'state'>;
  private readonly safe: Gauge;
  private readonly ingestedFiles: Counter;
  private readonly ingestedBytes: Counter;
  private readonly uploadedFiles: Counter;
  private readonly uploadedBytes: Counter;
  private readonly sentBytes: Counter;
  private readonly queue: Gauge<'state'>;
  private readonly pendingBytes: Gauge;
  private readonly inFlight: Gauge;
  private readonly awaitingReceipt: Gauge;
  private readonly throughput: Gauge;
  private readonly alarms: Gauge<'code'>;
  private readonly unacknowledged: Gauge;
  private readonly diskFree: Gauge;
  private readonly diskTotal: Gauge;
  private readonly diskLow: Gauge;
  private readonly diskReserve: Gauge;
  private readonly link: Gauge<'link'>;
  private readonly outbox: Gauge;
  private readonly last = { ingestedFiles: 0, ingestedBytes: 0, uploadedFiles: 0, uploadedBytes: 0, sent: 0 };

  constructor(private readonly deps: { catalog: Catalog; state: () => StationState; bytesSent: () => number }) {
    const registers = [this.registry];
    const g = <L extends string = string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const c = (name: string, help: string) => new Counter({ name, help, registers });
    this.docked = g('dockd_recorders_docked', 'Recorders docked now (one per occupied bay)');
    this.recorders = g('dockd_recorders', 'Docked recorders by state', ['state']);
    this.safe = g('dockd_recorders_safe_to_undock', 'Docked recorders whose every recording is stored and hashed');
    this.ingestedFiles = c('dockd_ingested_files_total', 'Recordings stored and hashed at this station');
    this.ingestedBytes = c('dockd_ingested_bytes_total', 'Bytes of recordings stored and hashed at this station');
    this.uploadedFiles = c('dockd_uploaded_files_total', 'Recordings delivered to HQ (tus upload finished)');
    this.uploadedBytes = c('dockd_uploaded_bytes_total', 'Bytes of recordings delivered to HQ');
    this.sentBytes = c(
      'dockd_upload_sent_bytes_total',
      'Upload bytes sent by this dockd process (including resumed and repeated ones)',
    );
    this.queue = g('dockd_queue_files', 'Recordings in the catalog by state', ['state']);
    this.pendingBytes = g('dockd_queue_pending_bytes', 'Bytes not yet delivered to HQ');
    this.inFlight = g('dockd_uploads_in_flight', 'Uploads in progress');
    this.awaitingReceipt = g('dockd_awaiting_receipt_files', "Uploaded recordings waiting for HQ's receipt");
    this.throughput = g('dockd_upload_throughput_bytes_per_second', 'Upload speed over the last few seconds');
    this.alarms = g('dockd_alarms_active', 'Active alarms by code', ['code']);
    this.unacknowledged = g('dockd_alarms_unacknowledged', 'Active alarms no admin has acknowledged');
    this.diskFree = g('dockd_disk_free_bytes', "Free bytes on the store's filesystem");
    this.diskTotal = g('dockd_disk_total_bytes', "Size of the store's filesystem");
    this.diskLow = g('dockd_disk_low_water_bytes', 'Free space below which DISK_LOW is raised (storage.lowWaterBytes)');
    this.diskReserve = g('dockd_disk_reserve_bytes', 'Free space below which copies wait (storage.reserveBytes)');
    this.link = g('dockd_link_up', 'HQ links: 1 up, 0 down', ['link']);
    this.outbox = g('dockd_outbox_events', 'Events waiting for the MQTT broker');
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    this.update();
    return this.registry.metrics();
  }

  private update(): void {
    const s = this.deps.state();
    this.docked.set(s.recorders.length);
    this.recorders.reset();
    for (const st of ['identifying', 'copying', 'paused', 'verifying', 'done', 'error', 'unplugged'])
      this.recorders.set({ state: st }, s.recorders.filter((r) => r.state === st).length);
    this.safe.set(s.recorders.filter((r) => r.safeToUndock).length);
    const totals = this.deps.catalog.totals();
    this.follow(this.ingestedFiles, 'ingestedFiles', totals.ingestedFiles);
    this.follow(this.ingestedBytes, 'ingestedBytes', totals.ingestedBytes);
    this.follow(this.uploadedFiles, 'uploadedFiles', totals.uploadedFiles);
    this.follow(this.uploadedBytes, 'uploadedBytes', totals.uploadedBytes);
    this.follow(this.sentBytes, 'sent', this.deps.bytesSent());
    for (const st of FILE_STATES) this.queue.set({ state: st }, s.queue[st]);
    this.pendingBytes.set(s.queue.bytesPending);
    this.inFlight.set(s.uploads.length);
    this.awaitingReceipt.set(s.queue.awaitingReceipt);
    this.throughput.set(s.uploadBytesPerSecond);
    this.alarms.reset();
    for (const a of s.alarms) this.alarms.inc({ code: a.code });
    this.unacknowledged.set(s.alarms.filter((a) => !a.acknowledged).length);
    if (s.disk) {
      this.diskFree.set(s.disk.freeBytes);
      this.diskTotal.set(s.disk.totalBytes);
      if (s.disk.lowWaterBytes !== undefined) this.diskLow.set(s.disk.lowWaterBytes);
      if (s.disk.reserveBytes !== undefined) this.diskReserve.set(s.disk.reserveBytes);
    }
    this.link.set({ link: 'mqtt' }, s.links.mqtt === 'connected' ? 1 : 0);
    this.link.set({ link: 'tus' }, s.links.tus === 'ok' ? 1 : 0);
    this.outbox.set(s.queue.outbox);
  }

  /** Moves a counter up to a total kept elsewhere (never down: a counter only grows). */
  private follow(counter: Counter, key: keyof StationMetrics['last'], total: number): void {
    const delta = total - this.last[key];
    if (delta > 0) {
      counter.inc(delta);
      this.last[key] = total;
    }
  }
}
