import { execFile } from 'node:child_process';
import type { MediaKind } from '../ingest/fileName.ts';

export interface StreamInfo { type: string; codec: string; width?: number; height?: number; sampleRate?: number; channels?: number }

export interface ProbeResult {
  ok: boolean;
  /** Why the file is not a clean recording (when !ok). */
  reason?: string;
  format?: string;
  duration?: number;
  streams: StreamInfo[];
  /** The container's creation_time tag, as written (ISO 8601, normally UTC). */
  creationTime?: string;
}

export interface MediaTools {
  probe(file: string, kind: MediaKind, size: number): Promise<ProbeResult>;
}

interface RunResult { code: number | null; stdout: string; stderr: string; timedOut: boolean }

function run(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${cmd} not found: install it (Debian: apt-get install ffmpeg)`));
        return;
      }
      const timedOut = Boolean(err && (err as { killed?: boolean }).killed);
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0, stdout, stderr, timedOut });
    });
  });
}

function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
}

/** ffprobe/ffmpeg through execFile with JSON output and timeouts (no shell, no wrapper library). */
export function createFfmpegTools(opts: { ffprobe?: string; ffmpeg?: string; baseTimeoutMs?: number } = {}): MediaTools {
  const ffprobe = opts.ffprobe ?? 'ffprobe';
  const ffmpeg = opts.ffmpeg ?? 'ffmpeg';
  const base = opts.baseTimeoutMs ?? 30_000;
  const timeoutFor = (size: number) => base + Math.ceil(size / (20 << 20)) * 1000;

  return {
    async probe(file, kind, size) {
      const timeout = timeoutFor(size);
      const p = await run(ffprobe, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file], timeout);
      if (p.timedOut) return { ok: false, reason: `ffprobe timed out after ${timeout} ms`, streams: [] };
      let json: { format?: { format_name?: string; duration?: string; tags?: Record<string, string> }; streams?: Record<string, unknown>[] } = {};
      try { json = JSON.parse(p.stdout || '{}'); } catch { /* reported below */ }
      if (p.code !== 0 || !json.format) {
        return { ok: false, reason: `not a readable ${kind} file: ${firstLine(p.stderr) || `ffprobe exit ${p.code}`}`, streams: [] };
      }
      const streams: StreamInfo[] = (json.streams ?? []).map((s) => ({
        type: String(s.codec_type ?? 'unknown'),
        codec: String(s.codec_name ?? 'unknown'),
        ...(s.width ? { width: Number(s.width), height: Number(s.height) } : {}),
        ...(s.sample_rate ? { sampleRate: Number(s.sample_rate), channels: Number(s.channels) } : {}),
      }));
      const duration = json.format.duration ? Number(json.format.duration) : undefined;
      const tags = json.format.tags ?? {};
      const creationTime = tags.creation_time ?? tags.CREATION_TIME;
      const result: ProbeResult = { ok: true, format: json.format.format_name, duration, streams, ...(creationTime ? { creationTime } : {}) };

      const wanted = kind === 'photo' ? 'video' : kind === 'audio' ? 'audio' : null;
      if (kind === 'video' && !streams.some((s) => s.type === 'video' || s.type === 'audio')) return { ...result, ok: false, reason: 'no audio or video stream' };
      if (wanted && !streams.some((s) => s.type === wanted)) return { ...result, ok: false, reason: `no ${kind === 'photo' ? 'image' : 'audio'} stream` };

      // Demux every packet (decode photos) to catch truncated or garbled files that still have a valid header.
      const check = kind === 'photo'
        ? ['-v', 'error', '-nostdin', '-i', file, '-f', 'null', '-']
        : ['-v', 'error', '-nostdin', '-i', file, '-map', '0', '-c', 'copy', '-f', 'null', '-'];
      const d = await run(ffmpeg, check, timeout);
      if (d.timedOut) return { ...result, ok: false, reason: `ffmpeg demux check timed out after ${timeout} ms` };
      const err = firstLine(d.stderr);
      if (d.code !== 0 || err) return { ...result, ok: false, reason: `does not demux cleanly: ${err || `ffmpeg exit ${d.code}`}` };
      return result;
    },
  };
}
