import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A token bucket shared by every upload of the station: `take(n)` resolves once n bytes may go. Rate 0 is no cap.
 * The bucket holds at most a fifth of a second of bytes, so a pause (or a clock a test moves ahead) gives no burst.
 */
export class UploadRateLimit {
  private tokens = 0;
  private last: number;
  private readonly waiting: { n: number; resolve: () => void }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private bytesPerSecond: number,
    private readonly ms: () => number,
  ) {
    this.last = ms();
  }

  get rate(): number {
    return this.bytesPerSecond;
  }

  /** The largest piece one `take` should ask for (a stream splits its chunks to this). */
  get pieceBytes(): number {
    return this.bytesPerSecond > 0 ? Math.max(1024, Math.min(64 * 1024, Math.floor(this.capacity()))) : 64 * 1024;
  }

  setRate(bytesPerSecond: number): void {
    this.refill();
    this.bytesPerSecond = bytesPerSecond;
    this.tokens = Math.min(this.tokens, this.capacity());
    this.pump();
  }

  take(n: number): Promise<void> {
    if (this.bytesPerSecond <= 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.push({ n, resolve });
      this.pump();
    });
  }

  private capacity(): number {
    return Math.max(1024, this.bytesPerSecond / 5);
  }

  private refill(): void {
    const now = this.ms();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    if (this.bytesPerSecond > 0) this.tokens = Math.min(this.capacity(), this.tokens + (elapsed * this.bytesPerSecond) / 1000);
  }

  private pump(): void {
    if (this.timer) return;
    this.refill();
    while (this.waiting.length) {
      const head = this.waiting[0];
      if (this.bytesPerSecond > 0) {
        // A piece larger than the bucket (the rate was lowered meanwhile) goes once the bucket is full.
        const need = Math.min(head.n, this.capacity());
        if (this.tokens < need) {
          const waitMs = Math.max(1, Math.ceil(((need - this.tokens) * 1000) / this.bytesPerSecond));
          this.timer = setTimeout(() => {
            this.timer = null;
            this.pump();
          }, waitMs);
          return;
        }
        this.tokens -= need;
      }
      this.waiting.shift();
      head.resolve();
    }
  }
}

/** Passes bytes on as the bucket allows, in pieces no larger than it holds. */
class ThrottledStream extends Transform {
  constructor(private readonly limit: UploadRateLimit) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const send = async () => {
      for (let at = 0; at < chunk.length; ) {
        const piece = chunk.subarray(at, at + this.limit.pieceBytes);
        await this.limit.take(piece.length);
        if (this.destroyed) return;
        this.push(piece);
        at += piece.length;
      }
    };
    send().then(() => done(), done);
  }
}

/**
 * tus-js-client's `fileReader` for a stored object: like its own Node file source (a fresh read stream of the byte
 * range for each PATCH), with the bytes passed through the station's bucket.
 */
export function throttledFileReader(path: string, limit: UploadRateLimit) {
  return {
    openFile: async (_input: unknown, _chunkSize: number) => {
      const { size } = await stat(path);
      // Every read stream is closed when its PATCH ends or the upload does: an object that retention deletes must not
      // be kept open (its space would not come back).
      const open = new Set<ReturnType<typeof createReadStream>>();
      return {
        size,
        slice: async (start: number, end: number) => {
          const file = createReadStream(path, { start, end: end - 1 });
          open.add(file);
          file.once('close', () => open.delete(file));
          const value = Object.assign(file.pipe(new ThrottledStream(limit)), { size: end - start });
          file.on('error', (e) => value.destroy(e));
          value.once('close', () => file.destroy());
          return { value, done: end >= size };
        },
        close: () => {
          for (const f of open) f.destroy();
          open.clear();
        },
      };
    },
  };
}
