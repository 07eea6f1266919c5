import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import { lowerPriority } from '../backgroundPriority.ts';

export type ThumbnailResult =
  | { ok: true; file: string }
  | { ok: false; code: 'NO_PICTURE' | 'NO_OBJECT' | 'FAILED'; message: string };

const WIDTH = 320;

/**
 * JPEG thumbnails of stored recordings (a frame of a video, a scaled photo), grabbed with ffmpeg from the stored
 * object on first request and cached under <storage.dir>/thumbs/<sha256>.jpg. At most `concurrency` ffmpeg runs at
 * once, each with a timeout; concurrent requests for the same recording share one run. Creating one is audited.
 */
export class Thumbnails {
  private readonly pending = new Map<string, Promise<ThumbnailResult>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly abort = new AbortController();
  readonly dir: string;

  constructor(
    private readonly deps: {
      storageDir: string;
      objects: ObjectStore;
      catalog: Catalog;
      log: Logger;
      ffmpeg?: string;
      timeoutMs?: number;
      concurrency?: number;
    },
  ) {
    this.dir = path.join(deps.storageDir, 'thumbs');
  }

  /** Ends running ffmpeg processes. */
  stop(): void {
    this.abort.abort();
  }

  async get(f: FileRow): Promise<ThumbnailResult> {
    if (f.kind !== 'video' && f.kind !== 'photo')
      return { ok: false, code: 'NO_PICTURE', message: `recording #${f.id} is ${f.kind}: it has no picture` };
    if (!f.sha256) return { ok: false, code: 'NO_OBJECT', message: `recording #${f.id} is not stored yet` };
    const file = path.join(this.dir, `${f.sha256}.jpg`);
    if (
      await fs.access(file).then(
        () => true,
        () => false,
      )
    )
      return { ok: true, file };
    let p = this.pending.get(f.sha256);
    if (!p) {
      p = this.make(f, file).finally(() => this.pending.delete(f.sha256!));
      this.pending.set(f.sha256, p);
    }
    return p;
  }

  private async make(f: FileRow, target: string): Promise<ThumbnailResult> {
    const source = this.deps.objects.pathOf(f.sha256!);
    if (
      f.local_deleted_at ||
      !(await fs.access(source).then(
        () => true,
        () => false,
      ))
    ) {
      return { ok: false, code: 'NO_OBJECT', message: `the stored copy of recording #${f.id} is no longer at the station` };
    }
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp.jpg`;
    // A frame a little into the video (the first is often black); from the start if that gives none.
    const seeks = f.kind === 'video' && f.duration && f.duration > 0.5 ? [Math.min(1, f.duration / 3), 0] : [0];
    let lastError = '';
    try {
      for (const at of seeks) {
        try {
          await this.slot(() =>
            this.ffmpeg([
              '-hide_banner',
              '-loglevel',
              'error',
              '-nostdin',
              '-y',
              '-ss',
              at.toFixed(3),
              '-i',
              source,
              '-map',
              '0:v:0',
              '-frames:v',
              '1',
              '-vf',
              `scale=${WIDTH}:-2`,
              '-q:v',
              '5',
              '-an',
              '-sn',
              '-f',
              'image2',
              '-c:v',
              'mjpeg',
              tmp,
            ]),
          );
          if ((await fs.stat(tmp)).size > 0) {
            await fs.rename(tmp, target);
            this.deps.catalog.audit('thumbnail.created', f.sha256, {
              id: f.id,
              file: path.basename(target),
              width: WIDTH,
              at: at,
            });
            return { ok: true, file: target };
          }
        } catch (e) {
          lastError = (e as Error).message;
        }
      }
      this.deps.log.warn({ file: f.id, err: lastError }, 'cannot make a thumbnail');
      return {
        ok: false,
        code: 'FAILED',
        message: `no picture could be taken from recording #${f.id}${lastError ? `: ${lastError}` : ''}`,
      };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    const max = this.deps.concurrency ?? 2;
    while (this.running >= max) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private ffmpeg(args: string[]): Promise<void> {
    const timeout = this.deps.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.deps.ffmpeg ?? 'ffmpeg',
        args,
        { timeout, killSignal: 'SIGKILL', signal: this.abort.signal, maxBuffer: 1 << 20 },
        (err, _out, stderr) => {
          if (!err) return resolve();
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return reject(new Error('ffmpeg not found: install it (Debian: apt-get install ffmpeg)'));
          if ((err as { killed?: boolean }).killed) return reject(new Error(`ffmpeg timed out after ${timeout} ms`));
          reject(
            new Error(
              String(stderr)
                .split('\n')
                .map((l) => l.trim())
                .find(Boolean) ?? err.message,
            ),
          );
        },
      );
      lowerPriority(child.pid);
    });
  }
}
