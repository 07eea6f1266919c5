/**
 * The recorder's side of the BC protocol, over any Duplex: reads command lines, answers them from the recorder's
 * model, and misbehaves on request (faults are read live, so a test can change them between commands).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { LineSplitter } from '../protocols/bc/lines.ts';
import { describeCommand, encodeReply, parseCommand, type BcCommand, type BcReply } from '../protocols/bc/messages.ts';
import { formatBcTime, parseBcTime } from '../protocols/bc/time.ts';

/** What the recorder is and knows; shared by its successive command sessions (the clock survives a re-plug). */
export interface RecorderModel {
  serial: string;
  officerId: string;
  officerName: string;
  unitNo: string;
  password: string;
  /** The word `+LOGIN:` uses for success: `OK`, or `Sucess` like some firmware. */
  loginWord: string;
  battery: number;
  /** The recorder's clock minus the true time (`now()`), ms. Setting the clock changes it. */
  clockOffsetMs: number;
  /** The true time (injected). */
  now: () => Date;
  /** Zone of the recorder's wall clock (local when undefined). */
  timeZone?: string;
}

export interface EmulatorFaults {
  /** Every login is answered `Error:password error`, even with the right password. */
  wrongPassword?: boolean;
  /** Never answers anything. */
  silence?: boolean;
  /** Answers every command with random bytes. */
  garbage?: boolean;
  /** Waits this long before each answer, ms. */
  slowRepliesMs?: number;
  /** Acknowledges `BC+UDISKEN=1` and leaves command mode, but its storage never appears. */
  neverReturnsAsStorage?: boolean;
  /** After the storage appears, it vanishes again after this many ms (the cable pulled while files are read). */
  unplugMidCopyMs?: number;
  /** Every `BC+DEL` is refused with this reason (`+DEL:ERR:<reason>`) and nothing is deleted. */
  deleteFails?: string;
  /**
   * On `BC+UDISKEN=1` (logged in) it never replies: it re-enumerates as storage, its tty vanishes from the serial dir
   * while the station's open port sees neither a reply nor a close, and then its storage appears.
   */
  vanishesBeforeUdiskReply?: boolean;
}

export function recorderClock(model: RecorderModel): Date {
  return new Date(model.now().getTime() + model.clockOffsetMs);
}

/** One session's answer to one command (pure apart from the clock it reads and sets on the model). */
export function answer(
  cmd: BcCommand | null,
  model: RecorderModel,
  session: { loggedIn: boolean },
  faults: EmulatorFaults,
): BcReply {
  if (!cmd) return { kind: 'error', reason: 'unknown command' };
  if (cmd.op === 'login') {
    if (faults.wrongPassword || cmd.user !== 'admin' || cmd.password !== model.password) {
      session.loggedIn = false;
      return { kind: 'error', reason: 'password error' };
    }
    session.loggedIn = true;
    return { kind: 'login-ok', word: model.loginWord };
  }
  if (!session.loggedIn) return { kind: 'error', reason: 'not login' };
  switch (cmd.op) {
    case 'get-did':
      return { kind: 'did', serial: model.serial };
    case 'get-uid':
      return { kind: 'uid', officerId: model.officerId, officerName: model.officerName, unitNo: model.unitNo };
    case 'set-uid':
      // Assigned to an officer: later answers to BC+UID? and the names of new recordings carry this officer.
      model.officerId = cmd.officerId;
      model.officerName = cmd.officerName;
      model.unitNo = cmd.unitNo;
      return { kind: 'uid-ok' };
    case 'get-systime':
      return { kind: 'systime', time: formatBcTime(recorderClock(model), model.timeZone) };
    case 'set-systime': {
      const t = parseBcTime(cmd.time, model.timeZone);
      if (!t) return { kind: 'error', reason: 'bad time' };
      model.clockOffsetMs = t.getTime() - model.now().getTime();
      return { kind: 'systime-ok' };
    }
    case 'get-batval':
      return { kind: 'batval', percent: model.battery };
    case 'udisk-enable':
      return { kind: 'udisken-ok' };
    // Deleting needs the recorder's storage: a CommandServer given a deleteFile hook answers it instead.
    case 'delete':
      return { kind: 'del-refused', reason: faults.deleteFails ?? 'no storage' };
  }
}

export interface CommandServerHooks {
  /** Every received line and the command it parsed to (null when none). */
  onCommand?: (line: string, cmd: BcCommand | null) => void;
  /** `BC+UDISKEN=1` was acknowledged and the acknowledgement handed to the stream. */
  onMassStorage?: () => void;
  /** `BC+UDISKEN=1` with faults.vanishesBeforeUdiskReply: the server has stopped answering, nothing was replied. */
  onLeaveWithoutReply?: () => void;
  /** Answers `BC+DEL=<path>` after a login (unless faults.deleteFails): deletes from the recorder's storage. */
  deleteFile?: (path: string) => Promise<BcReply>;
}

export class CommandServer {
  private readonly splitter = new LineSplitter(512);
  private readonly session = { loggedIn: false };
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Answers leave in the order their commands came, also when one (a deletion) takes a while. */
  private answering: Promise<void> = Promise.resolve();
  private detached = false;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);

  constructor(
    private readonly stream: Duplex,
    private readonly model: RecorderModel,
    private readonly faults: () => EmulatorFaults,
    private readonly hooks: CommandServerHooks = {},
  ) {
    stream.on('data', this.onData);
  }

  get loggedIn(): boolean {
    return this.session.loggedIn;
  }

  /** Stops answering; pending (slow) answers are dropped. The stream stays open. */
  detach(): void {
    this.detached = true;
    this.stream.off('data', this.onData);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private receive(chunk: Buffer): void {
    for (const ev of this.splitter.push(chunk)) {
      if (ev.kind !== 'line') continue;
      const cmd = parseCommand(ev.text);
      this.hooks.onCommand?.(cmd ? describeCommand(cmd) : ev.text, cmd);
      const faults = this.faults();
      if (faults.silence) continue;
      if (cmd?.op === 'udisk-enable' && this.session.loggedIn && faults.vanishesBeforeUdiskReply) {
        this.detach();
        this.hooks.onLeaveWithoutReply?.();
        return;
      }
      const deleting = cmd?.op === 'delete' && this.session.loggedIn && !faults.deleteFails && this.hooks.deleteFile;
      const reply = deleting
        ? this.hooks.deleteFile!((cmd as { path: string }).path)
        : Promise.resolve(answer(cmd, this.model, this.session, faults));
      this.answering = this.answering.then(async () => {
        const r = await reply.catch((e: Error): BcReply => ({ kind: 'del-refused', reason: e.message }));
        const bytes = faults.garbage ? randomBytes(16 + Math.floor(Math.random() * 48)) : encodeReply(r);
        const leaves = !faults.garbage && cmd?.op === 'udisk-enable' && r.kind === 'udisken-ok';
        this.later(faults.slowRepliesMs ?? 0, () => this.write(bytes, leaves));
      });
    }
  }

  private later(ms: number, fn: () => void): void {
    if (ms <= 0) {
      fn();
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private write(bytes: Buffer, leaves: boolean): void {
    if (this.detached || this.stream.destroyed) return;
    this.stream.write(bytes, (err) => {
      if (!err && leaves && !this.detached) this.hooks.onMassStorage?.();
    });
  }
}
