import { fileEvent } from '../status/stationEvents.ts';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import { headUpload } from './hqUpload.ts';
import { applyReceipt } from './receipts.ts';

const CHECK_EVERY_MS = 30_000;

/**
 * Uploaded files whose receipt is overdue are re-checked at HQ (HEAD on the upload URL): still complete → announced
 * again; gone → uploaded again from scratch. Nothing is archived without a receipt.
 */
export class ReceiptWatch implements Service {
  readonly name = 'receipts';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private offBus: (() => void) | null = null;
  /** Receipts as they arrived (P/S/receipt): applied one after another, in that order. */
  private applying: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly deps: StationContext) {
    this.log = deps.log.child({ component: 'receipts' });
  }

  async start(): Promise<void> {
    if (!this.deps.config.hq.receiptKey) {
      this.log.warn(
        'hq.receiptKey is not set: receipts cannot be told from forgeries, so they archive recordings but never let one be wiped from a recorder or freed here',
      );
    }
    const receiptDeps = { ...this.deps, log: this.log };
    this.offBus = this.deps.bus.on('receipt.received', (payload) => {
      this.applying = this.applying
        .then(() => applyReceipt(receiptDeps, payload))
        .then(
          () => {},
          (e) => this.log.error({ err: e }, 'receipt handling failed'),
        );
    });
    this.timer = setInterval(() => {
      this.running ??= this.check().finally(() => {
        this.running = null;
      });
    }, CHECK_EVERY_MS);
  }

  async stop(): Promise<void> {
    this.offBus?.();
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await this.applying;
  }

  /** Overdue uploads: how many, and since when the oldest waits. */
  overdue(): { count: number; oldestSince: string | null } {
    const limit = new Date(this.deps.clock.now().getTime() - this.deps.config.hq.receiptTimeoutSeconds * 1000).toISOString();
    return this.deps.catalog.receiptsOverdue(limit);
  }

  async check(): Promise<void> {
    const { catalog, config } = this.deps;
    const limit = new Date(this.deps.clock.now().getTime() - config.hq.receiptTimeoutSeconds * 1000).toISOString();
    const rows = catalog.dueForReannounce(limit, 50);
    const od = this.overdue();
    if (od.count)
      this.deps.board.raise(
        'RECEIPT_OVERDUE',
        'receipts',
        `${od.count} upload(s) wait for HQ's receipt, the oldest since ${od.oldestSince}`,
      );
    else this.deps.board.clear('receipts');
    for (const f of rows) {
      if (!f.upload_url) continue;
      let status: number;
      let complete = false;
      try {
        const hq = await headUpload(f.upload_url, config.hq.tus.headers);
        status = hq.status;
        complete = status >= 200 && status < 300 && hq.offset === f.size;
      } catch (e) {
        this.log.warn({ file: f.id, err: e }, 'cannot re-check an upload at HQ');
        continue;
      }
      const at = this.deps.clock.now().toISOString();
      if (complete) {
        catalog.transition(
          f.id,
          'uploaded',
          { announced_at: at },
          { from: ['uploaded'], event: fileEvent('file.uploaded', f, { uploadUrl: f.upload_url, reannounced: true }) },
        );
        this.log.info({ file: f.id }, 'no receipt yet: HQ still holds the upload; announced again');
      } else if (status === 404 || status === 410 || (status >= 200 && status < 300)) {
        catalog.transition(
          f.id,
          'ready',
          { upload_url: null, upload_offset: 0, last_error: `receipt overdue and HQ answers ${status} for the upload` },
          {
            from: ['uploaded'],
            event: fileEvent(
              'file.reupload',
              { ...f, state: 'ready' },
              { reason: `no receipt; HQ no longer holds the upload (HTTP ${status})` },
            ),
          },
        );
        this.deps.bus.emit('upload.wanted');
        this.log.warn({ file: f.id, status }, 'no receipt and HQ no longer holds the upload: uploading again');
      }
    }
  }
}
