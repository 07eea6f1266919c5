/**
 * The station's command/response driver for the BC protocol, over any Node Duplex byte stream (a serial port, a pty,
 * a USB bulk pipe, a socket). It does not own the stream: the transport that opened it closes it.
 *
 * One command is in flight at a time (calls queue up); each has a timeout. Replies are matched to the command by
 * their tag, so a late reply to an earlier, timed-out command is ignored rather than taken for the current one.
 * Failures are BcErrors with a code (see errors.ts).
 */
import type { Duplex } from 'node:stream';
import { BcError } from './errors.ts';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, type LineEvent } from './lines.ts';
import {
  BC_LOGIN_USER,
  commandTag,
  describeCommand,
  encodeCommand,
  isCommandEcho,
  parseReplyBytes,
  replyTag,
  type BcCommand,
  type BcReply,
  type OfficerIdentity,
} from './messages.ts';
import { assertTimeZone, formatBcTime, parseBcTime } from './time.ts';

export interface BcClientOptions {
  /** Per-command timeout, ms (default 3000). Each method also takes its own. */
  timeoutMs?: number;
  /** IANA zone in which the recorder's clock is read and set (e.g. `Asia/Shanghai`); the local zone when absent. */
  timeZone?: string;
  /** Longest line kept; a longer one is garbage (default 1024 bytes). */
  maxLineBytes?: number;
  /** Unparseable lines tolerated while waiting for a reply before failing with BC_GARBAGE (default 4). */
  maxGarbageLines?: number;
  /** Login user (default `admin`). */
  user?: string;
  /** Sees every line sent and received (passwords masked), for logs. */
  onTraffic?: (direction: 'tx' | 'rx', line: string) => void;
}

export interface CallOptions {
  timeoutMs?: number;
}

/** What a reply means for the command in flight: its value, a failure, or nothing (not for this command). */
type Outcome<T> = { value: T } | { error: BcError } | null;

interface InFlight {
  cmd: BcCommand;
  accept: (reply: BcReply) => Outcome<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: BcError) => void;
  timer: NodeJS.Timeout;
  garbageLines: number;
  garbageBytes: number;
}

export class BcClient {
  private readonly splitter: LineSplitter;
  private readonly timeoutMs: number;
  private readonly maxGarbageLines: number;
  private readonly user: string;
  readonly timeZone: string | undefined;
  private inFlight: InFlight | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closedBy: string | null = null;
  // biome-ignore lint/suspicious/noExplicitAny: stream listeners take whatever the event carries
  private readonly listeners: Array<[string, (...args: any[]) => void]>;

  constructor(
    private readonly stream: Duplex,
    private readonly opts: BcClientOptions = {},
  ) {
    this.splitter = new LineSplitter(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.maxGarbageLines = opts.maxGarbageLines ?? 4;
    this.user = opts.user ?? BC_LOGIN_USER;
    this.timeZone = opts.timeZone;
    if (this.timeZone !== undefined) assertTimeZone(this.timeZone);
    this.listeners = [
      ['data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)],
      ['end', () => this.onClosed('the stream ended')],
      ['close', () => this.onClosed('the stream closed')],
      ['error', (err: Error) => this.onClosed(`the stream failed: ${err.message}`)],
    ];
    for (const [event, fn] of this.listeners) stream.on(event, fn);
    if (stream.destroyed) this.onClosed('the stream was already destroyed');
  }

  /** True once the stream has ended or failed, or the client was disposed. */
  get closed(): boolean {
    return this.closedBy !== null;
  }

  /** `BC+LOGIN=admin:<password>`. Resolves with the word the recorder used (`OK`, `Sucess`); BC_AUTH_FAILED when refused. */
  login(password: string, call: CallOptions = {}): Promise<{ word: string }> {
    return this.request<{ word: string }>(
      { op: 'login', user: this.user, password },
      (r) => {
        if (r.kind === 'login-ok') return { value: { word: r.word } };
        if (r.kind === 'login-refused')
          return {
            error: new BcError('BC_AUTH_FAILED', `login refused: +LOGIN:${r.word}`, {
              command: `BC+LOGIN=${this.user}:***`,
              reason: r.word,
            }),
          };
        return null;
      },
      call,
    );
  }

  /** `BC+DID?`: the recorder's 7-character serial. */
  deviceId(call: CallOptions = {}): Promise<string> {
    return this.request({ op: 'get-did' }, (r) => (r.kind === 'did' ? { value: r.serial } : null), call);
  }

  /** `BC+UID?`: the officer the recorder is assigned to. */
  officer(call: CallOptions = {}): Promise<OfficerIdentity> {
    return this.request(
      { op: 'get-uid' },
      (r) => (r.kind === 'uid' ? { value: { officerId: r.officerId, officerName: r.officerName, unitNo: r.unitNo } } : null),
      call,
    );
  }

  /**
   * `BC+UID=<officerId>:<officerName>:<unitNo>`: assigns the recorder to this officer (it names its new files with the
   * officer id). An identity that cannot be sent is BC_BAD_ARGUMENT; a recorder that refuses answers BC_DEVICE_ERROR.
   */
  setOfficer(officer: OfficerIdentity, call: CallOptions = {}): Promise<void> {
    return this.request({ op: 'set-uid', ...officer }, (r) => (r.kind === 'uid-ok' ? { value: undefined } : null), call);
  }

  /** `BC+SYSTIME?`: the recorder's clock, read in the client's time zone (one-second resolution). */
  clock(call: CallOptions = {}): Promise<Date> {
    return this.request<Date>(
      { op: 'get-systime' },
      (r) => {
        if (r.kind !== 'systime') return null;
        const date = parseBcTime(r.time, this.timeZone);
        return date
          ? { value: date }
          : {
              error: new BcError('BC_BAD_REPLY', `clock ${r.time} is not a time in ${this.timeZone ?? 'the local zone'}`, {
                command: 'BC+SYSTIME?',
              }),
            };
      },
      call,
    );
  }

  /** `BC+SYSTIME=<YYYYMMDDhhmmss>`: sets the recorder's clock to `date`, written in the client's time zone. */
  setClock(date: Date, call: CallOptions = {}): Promise<void> {
    let time: string;
    try {
      time = formatBcTime(date, this.timeZone);
    } catch (e) {
      return Promise.reject(new BcError('BC_BAD_ARGUMENT', `cannot set the clock to ${String(date)}: ${(e as Error).message}`));
    }
    return this.request({ op: 'set-systime', time }, (r) => (r.kind === 'systime-ok' ? { value: undefined } : null), call);
  }

  /** `BC+BATVAL?`: battery level, 0-100. */
  battery(call: CallOptions = {}): Promise<number> {
    return this.request({ op: 'get-batval' }, (r) => (r.kind === 'batval' ? { value: r.percent } : null), call);
  }

  /** `BC+UDISKEN=1`: the recorder acknowledges, leaves command mode and returns as mass storage. */
  enableMassStorage(call: CallOptions = {}): Promise<void> {
    return this.request({ op: 'udisk-enable' }, (r) => (r.kind === 'udisken-ok' ? { value: undefined } : null), call);
  }

  /**
   * `BC+DEL=<path>`: the recorder deletes one file from its own storage (`path` inside it, `/`-separated). A refusal
   * (`+DEL:ERR:<reason>`) is BC_DEVICE_ERROR with the recorder's reason; a path that cannot be sent is BC_BAD_ARGUMENT.
   */
  deleteFile(path: string, call: CallOptions = {}): Promise<void> {
    return this.request<void>(
      { op: 'delete', path },
      (r) => {
        if (r.kind === 'del-ok') return { value: undefined };
        if (r.kind === 'del-refused')
          return {
            error: new BcError('BC_DEVICE_ERROR', `the recorder did not delete ${path}: ${r.reason}`, {
              command: describeCommand({ op: 'delete', path }),
              reason: r.reason,
            }),
          };
        return null;
      },
      call,
    );
  }

  /** Stops listening to the stream (which stays open: its transport owns it); pending and later calls fail BC_CLOSED. */
  dispose(): void {
    for (const [event, fn] of this.listeners) this.stream.off(event, fn);
    this.onClosed('the client was disposed');
  }

  private request<T>(cmd: BcCommand, accept: (reply: BcReply) => Outcome<T>, call: CallOptions): Promise<T> {
    const run = () => this.send(cmd, accept, call.timeoutMs ?? this.timeoutMs) as Promise<T>;
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private send(cmd: BcCommand, accept: (reply: BcReply) => Outcome<unknown>, timeoutMs: number): Promise<unknown> {
    const described = describeCommand(cmd);
    if (this.closedBy !== null || this.stream.destroyed || !this.stream.writable) {
      return Promise.reject(
        new BcError('BC_CLOSED', `cannot send ${described}: ${this.closedBy ?? 'the stream is not writable'}`, {
          command: described,
        }),
      );
    }
    let bytes: Buffer;
    try {
      bytes = encodeCommand(cmd);
    } catch (e) {
      return Promise.reject(e);
    }
    // Bytes received before the command was sent cannot be its reply.
    this.splitter.reset();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.onTimeout(), timeoutMs);
      this.inFlight = { cmd, accept, resolve, reject, timer, garbageLines: 0, garbageBytes: 0 };
      this.opts.onTraffic?.('tx', described);
      this.stream.write(bytes, (err) => {
        if (err)
          this.finish({
            error: new BcError('BC_CLOSED', `cannot send ${described}: ${err.message}`, { command: described, cause: err }),
          });
      });
    });
  }

  private onData(chunk: Buffer): void {
    const events = this.splitter.push(chunk);
    for (const ev of events) {
      if (!this.inFlight) return; // nothing asked: not a reply to anything
      this.onEvent(ev, this.inFlight);
    }
  }

  private onEvent(ev: LineEvent, f: InFlight): void {
    const command = describeCommand(f.cmd);
    if (ev.kind === 'overflow') {
      this.finish({
        error: new BcError(
          'BC_GARBAGE',
          `${command}: a line of more than ${this.splitter.maxLineBytes} bytes arrived instead of a reply`,
          { command },
        ),
      });
      return;
    }
    this.opts.onTraffic?.('rx', ev.text);
    if (isCommandEcho(ev.text)) return;
    const reply = parseReplyBytes(ev.bytes);
    if (reply.kind === 'unknown') {
      f.garbageLines++;
      f.garbageBytes += ev.bytes.length;
      if (f.garbageLines > this.maxGarbageLines) {
        this.finish({
          error: new BcError('BC_GARBAGE', `${command}: ${f.garbageLines} unreadable lines instead of a reply`, { command }),
        });
      }
      return;
    }
    if (reply.kind === 'error') {
      const code = f.cmd.op === 'login' ? 'BC_AUTH_FAILED' : 'BC_DEVICE_ERROR';
      this.finish({
        error: new BcError(code, `${command}: the recorder answered Error:${reply.reason}`, { command, reason: reply.reason }),
      });
      return;
    }
    if (replyTag(reply) !== commandTag(f.cmd)) return; // a late reply to an earlier command
    if (reply.kind === 'malformed') {
      this.finish({ error: new BcError('BC_BAD_REPLY', `${command}: ${reply.problem}`, { command }) });
      return;
    }
    const outcome = f.accept(reply);
    if (outcome) this.finish(outcome);
  }

  private onTimeout(): void {
    const f = this.inFlight;
    if (!f) return;
    const command = describeCommand(f.cmd);
    const noise = f.garbageBytes + this.splitter.pendingBytes;
    this.finish({
      error:
        noise > 0
          ? new BcError('BC_GARBAGE', `${command}: ${noise} bytes arrived but no reply`, { command })
          : new BcError('BC_TIMEOUT', `${command}: no reply`, { command }),
    });
  }

  private finish(outcome: { value: unknown } | { error: BcError }): void {
    const f = this.inFlight;
    if (!f) return;
    this.inFlight = null;
    clearTimeout(f.timer);
    if ('error' in outcome) f.reject(outcome.error);
    else f.resolve(outcome.value);
  }

  private onClosed(why: string): void {
    if (this.closedBy === null) this.closedBy = why;
    const f = this.inFlight;
    if (f) {
      const command = describeCommand(f.cmd);
      this.finish({ error: new BcError('BC_CLOSED', `${command}: ${why}`, { command }) });
    }
  }
}
