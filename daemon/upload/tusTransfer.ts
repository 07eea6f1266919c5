import { createReadStream } from 'node:fs';
import * as tus from 'tus-js-client';
import { redactSecrets } from '../redact.ts';
import { CodedError } from '../../drivers/errors.ts';
import { throttledFileReader, type UploadRateLimit } from './rateLimit.ts';

export type TransferErrorCode = 'UPLOAD_GONE' | 'HQ_REFUSED' | 'HQ_UNREACHABLE' | 'STALLED' | 'ABORTED';

export class TransferError extends CodedError<TransferErrorCode> {
  constructor(
    code: TransferErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(code, message);
  }
}

export interface TransferOptions {
  path: string;
  size: number;
  endpoint: string;
  /** Resume this upload; when the server no longer knows it, fail with UPLOAD_GONE instead of silently starting over. */
  uploadUrl: string | null;
  metadata: Record<string, string>;
  headers: Record<string, string>;
  stallTimeoutMs: number;
  /** Milliseconds now (the station's clock), for the stall timeout. */
  ms: () => number;
  onUrl: (url: string) => void;
  onProgress: (offset: number) => void;
  signal: AbortSignal;
  /** The station's shared upload cap (hq.tus.maxBytesPerSecond): the file's bytes pass through it. */
  rateLimit?: UploadRateLimit;
}

function statusOf(err: unknown): number | undefined {
  const res = (err as { originalResponse?: { getStatus(): number } | null }).originalResponse;
  return res ? res.getStatus() : undefined;
}

/**
 * One tus transfer, from a read stream of the stored object (tus-js-client reads ranges of the file by path, so memory
 * stays constant and a resume starts at the server's offset). No retries here: the uploader decides.
 */
export function transfer(o: TransferOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let lastProgress = o.ms();
    let settled = false;
    const finish = (err?: TransferError) => {
      if (settled) return;
      settled = true;
      clearInterval(stallTimer);
      o.signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const resuming = Boolean(o.uploadUrl);
    const upload = new tus.Upload(createReadStream(o.path), {
      // Without an endpoint, tus-js-client reports a 4xx on the resuming HEAD instead of quietly creating a new upload.
      endpoint: resuming ? undefined : o.endpoint,
      uploadUrl: o.uploadUrl ?? undefined,
      uploadSize: o.size,
      metadata: o.metadata,
      headers: o.headers,
      retryDelays: null,
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: false,
      // With no cap, tus-js-client reads the file itself (as before upload caps existed).
      ...(o.rateLimit && o.rateLimit.rate > 0 ? { fileReader: throttledFileReader(o.path, o.rateLimit) } : {}),
      onUploadUrlAvailable: () => {
        if (upload.url) o.onUrl(upload.url);
      },
      onProgress: (sent) => {
        lastProgress = o.ms();
        o.onProgress(sent);
      },
      onSuccess: () => finish(),
      onError: (err) => {
        const status = statusOf(err);
        // HQ's error text may echo a credential we sent (Authorization header): never pass it on.
        const msg = redactSecrets(err.message.split('\n')[0]);
        if (resuming && status !== undefined && status >= 400 && status < 500 && status !== 423 && /resume/.test(err.message)) {
          finish(new TransferError('UPLOAD_GONE', `HQ no longer has the upload (HEAD ${status})`, status));
        } else if (status !== undefined && status >= 400 && status < 500 && status !== 423 && status !== 408 && status !== 429) {
          finish(new TransferError('HQ_REFUSED', `HQ refused the upload (HTTP ${status}): ${msg}`, status));
        } else {
          finish(
            new TransferError(
              'HQ_UNREACHABLE',
              status
                ? `HQ answered HTTP ${status}`
                : `HQ unreachable: ${redactSecrets((err as { causingError?: Error }).causingError?.message ?? msg)}`,
              status,
            ),
          );
        }
      },
    });
    const onAbort = () => {
      upload.abort(false).catch(() => {});
      finish(new TransferError('ABORTED', 'upload stopped'));
    };
    o.signal.addEventListener('abort', onAbort);
    const stallTimer = setInterval(
      () => {
        if (o.ms() - lastProgress > o.stallTimeoutMs) {
          upload.abort(false).catch(() => {});
          finish(new TransferError('STALLED', `no progress for ${Math.round(o.stallTimeoutMs / 1000)} s`));
        }
      },
      Math.min(1000, o.stallTimeoutMs),
    );
    if (o.signal.aborted) onAbort();
    else upload.start();
  });
}
