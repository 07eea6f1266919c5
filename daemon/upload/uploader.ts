import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { FileRow } from '../store/catalog.ts';

import { uploadMetadata } from './uploadMetadata.ts';
import { stationKeyForUpload } from '../custody/keys.ts';
import { type TransferError, transfer } from './tusTransfer.ts';
import { UploadRateLimit } from './rateLimit.ts';
import { inUploadWindow, parseWindows, type UploadWindow, waitingForWindow } from './uploadWindows.ts';

interface InFlight {
  fileId: number;
  controller: AbortController;
  offset: number;
  size: number;
  startedAt: number;
}

/**
 * Delivers ready recordings to HQ with tus: bounded concurrency, important first then oldest, the upload URL saved the
 * moment it is known (so a restart resumes from the server's offset), retries forever with capped backoff.
 */
export class Uploader implements Service {
  readonly name = 'upload';
  private readonly inFlight = new Map<number, InFlight>();
  private readonly notBefore = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private offBus: (() => void) | null = null;
  private consecutiveFailures = 0;
  private bytesSent = 0;
  private readonly log: Logger;
  private readonly rateLimit: UploadRateLimit;
  private windows: UploadWindow[];
  /** Why ordinary recordings are not going now (outside every upload window), or null. */
  private waitingFor: string | null = null;

  constructor(private readonly deps: StationContext) {
    this.log = deps.log.child({ component: 'upload' });
    this.rateLimit = new UploadRateLimit(deps.config.hq.tus.maxBytesPerSecond, () => deps.clock.ms());
    this.windows = parseWindows(deps.config.hq.tus.windows);
  }

  /** Applies hq.tus.maxBytesPerSecond and hq.tus.windows as they now are in the config (SIGHUP), to running uploads too. */
  applySettings(): void {
    this.rateLimit.setRate(this.deps.config.hq.tus.maxBytesPerSecond);
    this.windows = parseWindows(this.deps.config.hq.tus.windows);
    this.fill();
  }

  async start(): Promise<void> {
    this.running = true;
    this.offBus = this.deps.bus.on('upload.wanted', () => this.fill());
    this.timer = setInterval(() => this.fill(), 1000);
    this.fill();
  }

  /** Stops taking work and aborts transfers; their URLs stay in the catalog, so the next start resumes them. */
  async stop(): Promise<void> {
    this.running = false;
    this.offBus?.();
    if (this.timer) clearInterval(this.timer);
    for (const f of this.inFlight.values()) f.controller.abort();
    const deadline = this.deps.clock.ms() + 5000;
    while (this.inFlight.size && this.deps.clock.ms() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  snapshot(): {
    inFlight: { id: number; offset: number; size: number }[];
    bytesSent: number;
    waitingFor: string | null;
  } {
    return {
      inFlight: [...this.inFlight.values()].map((f) => ({ id: f.fileId, offset: f.offset, size: f.size })),
      bytesSent: this.bytesSent,
      waitingFor: this.waitingFor,
    };
  }

  private fill(): void {
    if (!this.running) return;
    const open = inUploadWindow(this.windows, this.deps.clock.now(), this.deps.timeZone);
    const waitingFor = open ? null : waitingForWindow(this.windows);
    if (waitingFor !== this.waitingFor) {
      this.waitingFor = waitingFor;
      this.log.info({ windows: this.deps.config.hq.tus.windows, open }, waitingFor ?? 'upload window open');
      this.deps.bus.emit('state.changed');
    }
    const slots = this.deps.config.hq.tus.concurrency - this.inFlight.size;
    if (slots <= 0) return;
    const now = this.deps.clock.ms();
    const waiting = [...this.notBefore].filter(([, t]) => t > now).map(([id]) => id);
    // Important recordings come first in the queue and go at any hour; ordinary ones only inside a window.
    const rows = this.deps.catalog.uploadQueue(slots, [...this.inFlight.keys(), ...waiting]);
    for (const row of rows) if (open || row.important) this.begin(row);
  }

  private begin(row: FileRow): void {
    const { catalog, config } = this.deps;
    const controller = new AbortController();
    const flight: InFlight = {
      fileId: row.id,
      controller,
      offset: row.upload_offset,
      size: row.size,
      startedAt: this.deps.clock.ms(),
    };
    this.inFlight.set(row.id, flight);
    if (row.state === 'ready') catalog.transition(row.id, 'uploading', {}, { from: ['ready'] });
    this.deps.bus.emit('state.changed');
    const log = this.log.child({ file: row.id, sha256: row.sha256 });
    log.info({ resume: Boolean(row.upload_url), size: row.size }, row.upload_url ? 'resuming upload' : 'starting upload');
    transfer({
      path: this.deps.objects.pathOf(row.sha256!),
      size: row.size,
      endpoint: config.hq.tus.endpoint,
      uploadUrl: row.upload_url,
      metadata: uploadMetadata(row, config.station.id, stationKeyForUpload(config.storage.dir)),
      headers: config.hq.tus.headers,
      stallTimeoutMs: config.hq.tus.stallTimeoutSeconds * 1000,
      ms: () => this.deps.clock.ms(),
      signal: controller.signal,
      rateLimit: this.rateLimit,
      onUrl: (url) => {
        if (url !== row.upload_url) catalog.update(row.id, { upload_url: url });
      },
      onProgress: (offset) => {
        this.bytesSent += Math.max(0, offset - flight.offset);
        flight.offset = offset;
        this.deps.bus.emit('state.changed');
      },
    })
      .then(
        () => {
          this.consecutiveFailures = 0;
          this.deps.board.clear('hq:tus');
          this.notBefore.delete(row.id);
          // Not moved when HQ's receipt already archived it meanwhile.
          catalog.markUploaded(row.id, this.deps.clock.now().toISOString());
          this.deps.bus.emit('outbox.added');
          // It has reached HQ: an earlier refusal of it is over. (HQ's receipt saying its copy differed waits for HQ's word.)
          this.deps.board.clear(`refused:${row.id}`);
          log.info({ ms: this.deps.clock.ms() - flight.startedAt }, 'uploaded');
        },
        (err: TransferError) => this.failed(row, flight, err, log),
      )
      .finally(() => {
        this.inFlight.delete(row.id);
        this.deps.bus.emit('state.changed');
        setImmediate(() => this.fill());
      });
  }

  private failed(row: FileRow, flight: InFlight, err: TransferError, log: Logger): void {
    const { catalog, board } = this.deps;
    if (err.code === 'ABORTED') {
      catalog.update(row.id, { upload_offset: flight.offset });
      return;
    }
    const attempts = row.upload_attempts + 1;
    const fields = { upload_attempts: attempts, last_error: `${err.code}: ${err.message}`, upload_offset: flight.offset };
    if (err.code === 'UPLOAD_GONE') {
      log.warn({ url: row.upload_url, status: err.status }, 'HQ no longer has this upload: starting it again from the beginning');
      catalog.update(row.id, { ...fields, upload_url: null, upload_offset: 0 });
      return;
    }
    if (err.code === 'STALLED') {
      log.warn({ offset: flight.offset }, 'upload stalled: aborting the request and resuming from the server offset');
      catalog.update(row.id, fields);
      return;
    }
    const max = this.deps.config.hq.tus.maxRetryDelaySeconds * 1000;
    const delay = Math.min(max, 1000 * 2 ** Math.min(this.consecutiveFailures, 16));
    this.consecutiveFailures++;
    this.notBefore.set(row.id, this.deps.clock.ms() + delay);
    if (err.code === 'HQ_REFUSED') {
      // A refusal (e.g. HQ's re-hash disagreed) leaves nothing to resume: the next try starts over.
      catalog.update(row.id, { ...fields, upload_url: null, upload_offset: 0 });
      board.raise(
        'UPLOAD_REFUSED',
        `refused:${row.id}`,
        `HQ refused ${row.filename} (${row.sha256?.slice(0, 12)}): ${err.message}`,
      );
      log.error({ status: err.status, err, retryInMs: delay }, 'HQ refused the upload');
    } else {
      catalog.update(row.id, fields);
      board.raise('HQ_UNREACHABLE', 'hq:tus', `HQ upload server unreachable: ${err.message}`);
      log.warn({ err, retryInMs: delay }, 'upload failed; will retry');
    }
  }
}
