import { execFile } from 'node:child_process';
import { lowerPriority } from '../backgroundPriority.ts';
import { open, stat } from 'node:fs/promises';
import type { MediaKind } from './mediaTypes.ts';

export interface StreamInfo {
  type: string;
  codec: string;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
}

export interface ProbeResult {
  /** The file demuxes (or decodes) cleanly. False with `reason`: damaged. */
  ok: boolean;
  /** Why the file is not a clean recording (when !ok). */
  reason?: string;
  /**
   * Set when the probe itself failed for a reason of the station's own (timed out, killed, ffmpeg missing, no
   * memory): there is no verdict on the file, and the probe is tried again later.
   */
  unavailable?: string;
  format?: string;
  duration?: number;
  streams: StreamInfo[];
  /** The container's creation_time tag, as written (ISO 8601, normally UTC). */
  creationTime?: string;
}

export interface MediaTools {
  /** `attempt` (0 first) lengthens the timeout of a probe tried again after the station was too busy. */
  probe(file: string, kind: MediaKind, size: number, attempt?: number): Promise<ProbeResult>;
  /**
   * Writes a playable copy of a damaged MP4/MOV to `out` (stream copy of what still demuxes); true when `out` holds
   * a container a player opens, with its streams. The damaged original is never changed.
   */
  salvage(file: string, out: string, size: number): Promise<boolean>;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  failed: string | null;
}

/** Runs a tool; `failed` says why it gave no answer (timed out, killed by a signal, missing, not startable). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: unknown }) | null;
        let failed: string | null = null;
        if (e?.code === 'ENOENT') failed = `${cmd} not found: install it (Debian: apt-get install ffmpeg)`;
        else if (e?.killed) failed = `${cmd} timed out after ${timeoutMs} ms`;
        else if (e?.signal) failed = `${cmd} was killed (${e.signal})`;
        else if (e && typeof e.code === 'string') failed = `${cmd} could not run: ${e.code}`;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr, failed });
      },
    );
    lowerPriority(child.pid);
  });
}

/**
 * A RIFF file (WAV, AVI) says its own length in its header; ffmpeg reads a truncated one without a word, so the
 * header is compared with the file. Null when it is not RIFF or the lengths agree.
 */
async function riffTruncation(file: string, size: number): Promise<string | null> {
  const h = await open(file, 'r').catch(() => null);
  if (!h) return null;
  try {
    const head = Buffer.alloc(12);
    const { bytesRead } = await h.read(head, 0, 12, 0);
    if (bytesRead < 12 || head.toString('latin1', 0, 4) !== 'RIFF') return null;
    const declared = head.readUInt32LE(4) + 8;
    return declared > size
      ? `truncated: the ${head.toString('latin1', 8, 12).trim()} header declares ${declared} bytes, the file has ${size}`
      : null;
  } finally {
    await h.close();
  }
}

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}

/** ffprobe/ffmpeg through execFile with JSON output and timeouts (no shell, no wrapper library). */
export function createFfmpegTools(opts: { ffprobe?: string; ffmpeg?: string; baseTimeoutMs?: number } = {}): MediaTools {
  const ffprobe = opts.ffprobe ?? 'ffprobe';
  const ffmpeg = opts.ffmpeg ?? 'ffmpeg';
  const base = opts.baseTimeoutMs ?? 30_000;
  const timeoutFor = (size: number) => base + Math.ceil(size / (20 << 20)) * 1000;

  return {
    async probe(file, kind, size, attempt = 0) {
      const timeout = timeoutFor(size) * 2 ** Math.min(attempt, 4);
      const p = await run(ffprobe, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file], timeout);
      if (p.failed) return { ok: false, unavailable: p.failed, streams: [] };
      let json: {
        format?: { format_name?: string; duration?: string; tags?: Record<string, string> };
        streams?: Record<string, unknown>[];
      } = {};
      try {
        json = JSON.parse(p.stdout || '{}');
      } catch {
        /* reported below */
      }
      if (p.code !== 0 || !json.format) {
        return {
          ok: false,
          reason: `not a readable ${kind} file: ${firstLine(p.stderr) || `ffprobe exit ${p.code}`}`,
          streams: [],
        };
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
      const result: ProbeResult = {
        ok: true,
        format: json.format.format_name,
        duration,
        streams,
        ...(creationTime ? { creationTime } : {}),
      };

      const wanted = kind === 'photo' ? 'video' : kind === 'audio' ? 'audio' : null;
      if (kind === 'video' && !streams.some((s) => s.type === 'video' || s.type === 'audio'))
        return { ...result, ok: false, reason: 'no audio or video stream' };
      if (wanted && !streams.some((s) => s.type === wanted))
        return { ...result, ok: false, reason: `no ${kind === 'photo' ? 'image' : 'audio'} stream` };

      const riff = kind === 'photo' ? null : await riffTruncation(file, size);
      if (riff) return { ...result, ok: false, reason: riff };

      // Demux every packet (decode photos) to catch truncated or garbled files that still have a valid header.
      const check =
        kind === 'photo'
          ? ['-v', 'error', '-nostdin', '-i', file, '-f', 'null', '-']
          : ['-v', 'error', '-nostdin', '-i', file, '-map', '0', '-c', 'copy', '-f', 'null', '-'];
      const d = await run(ffmpeg, check, timeout);
      if (d.failed) return { ...result, ok: false, unavailable: d.failed };
      const err = firstLine(d.stderr);
      if (d.code !== 0 || err)
        return { ...result, ok: false, reason: `does not demux cleanly: ${err || `ffmpeg exit ${d.code}`}` };
      return result;
    },

    async salvage(file, out, size) {
      const r = await run(
        ffmpeg,
        ['-v', 'error', '-nostdin', '-y', '-i', file, '-map', '0', '-c', 'copy', '-f', 'mp4', out],
        timeoutFor(size),
      );
      if (r.failed || r.code !== 0) return false;
      const st = await stat(out).catch(() => null);
      if (!st || st.size === 0) return false;
      // Playable: a container a player opens, with its streams indexed (the tail may still hold the partial packet).
      const check = await this.probe(out, 'video', st.size);
      return !check.unavailable && check.format !== undefined && check.streams.length > 0;
    },
  };
}
