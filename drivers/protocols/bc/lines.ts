/**
 * Line framing of the BC protocol: bytes in, lines out. Pure (no IO, no timers).
 *
 * Robust to what a serial line really delivers: a line split over many chunks, several lines in one chunk, `\r\n`,
 * `\n` or a lone `\r` as terminator, empty lines, NUL and other noise, a line that never ends (the buffer is bounded:
 * past `maxLineBytes` the line is dropped up to its terminator and reported once as an overflow), and bytes that are
 * not UTF-8 (GB18030, which some firmware uses for officer names, is tried next; anything else is decoded with
 * replacement characters and marked `invalid`).
 */

export type LineEncoding = 'utf-8' | 'gb18030' | 'invalid';

export type LineEvent =
  | { kind: 'line'; text: string; bytes: Buffer; encoding: LineEncoding }
  | { kind: 'overflow'; bytes: number };

export const DEFAULT_MAX_LINE_BYTES = 1024;

const CR = 0x0d;
const LF = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const gb18030 = new TextDecoder('gb18030', { fatal: true });
const lenient = new TextDecoder('utf-8');

/** Decodes one line's bytes: UTF-8, else GB18030, else UTF-8 with replacement characters. */
export function decodeLine(bytes: Uint8Array): { text: string; encoding: LineEncoding } {
  try {
    return { text: utf8.decode(bytes), encoding: 'utf-8' };
  } catch {
    /* next */
  }
  try {
    return { text: gb18030.decode(bytes), encoding: 'gb18030' };
  } catch {
    /* next */
  }
  return { text: lenient.decode(bytes), encoding: 'invalid' };
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private length = 0;
  /** Inside an overlong line: bytes are dropped until the next terminator. */
  private discarding = false;

  constructor(readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1)
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
  }

  /** Bytes of an unfinished line held in the buffer (0 while discarding an overlong line). */
  get pendingBytes(): number {
    return this.length;
  }

  /** Feeds a chunk; returns the complete lines (and overflows) it finished, in order. Empty lines are skipped. */
  push(chunk: Uint8Array): LineEvent[] {
    const out: LineEvent[] = [];
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i];
      if (b !== CR && b !== LF) continue;
      this.append(buf.subarray(start, i), out);
      this.finishLine(out);
      start = i + 1;
    }
    this.append(buf.subarray(start), out);
    return out;
  }

  /** Forgets any unfinished line (e.g. noise received before a command was sent). */
  reset(): void {
    this.parts = [];
    this.length = 0;
    this.discarding = false;
  }

  private append(part: Buffer, out: LineEvent[]): void {
    if (part.length === 0 || this.discarding) return;
    if (this.length + part.length > this.maxLineBytes) {
      out.push({ kind: 'overflow', bytes: this.length + part.length });
      this.parts = [];
      this.length = 0;
      this.discarding = true;
      return;
    }
    // Copy: the caller may reuse its chunk buffer.
    this.parts.push(Buffer.from(part));
    this.length += part.length;
  }

  private finishLine(out: LineEvent[]): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    if (this.length === 0) return;
    const bytes = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    out.push({ kind: 'line', bytes, ...decodeLine(bytes) });
  }
}
