/**
 * An emulated body-worn recorder: part of the product, used by tests and demos in place of real hardware.
 *
 * Plugged in, it is in command mode: it speaks the BC protocol on a tty — a socat pty pair whose station end is a
 * symlink the caller places (e.g. in a directory standing in for /dev/serial/by-id), or an existing tty path. On
 * `BC+UDISKEN=1` it acknowledges, leaves command mode (the pty link disappears) and returns as mass storage: its
 * volume directory appears at `<mountRoot>/<serial>`. Unplugged, the tty and the storage vanish. Faults make it
 * misbehave (see EmulatorFaults); they are read live and can be changed at any time.
 *
 * `BC+DEL=<path>` deletes a file from the volume directory itself (the recorder's own storage) and from its exposed
 * copy. With `keepsControlChannel` the tty stays while the storage is exposed (a composite USB device), so the station
 * can delete files after it has copied them; otherwise the tty vanishes on `BC+UDISKEN=1`, like most recorders.
 * With faults.vanishesBeforeUdiskReply its serial-dir link vanishes without a reply (the pty stays until unplugged).
 *
 * `BC+UID=` assigns it to an officer (a pool recorder); `record()` then makes recordings named with that officer.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertTimeZone } from '../protocols/bc/time.ts';
import { SERIAL_PATTERN } from '../protocols/bc/messages.ts';
import { SerialTransport } from '../transports/serial.ts';
import { CommandServer, recorderClock, type EmulatorFaults, type RecorderModel } from './commandServer.ts';
import { EmulatorError } from './errors.ts';
import { createPtyPair, type PtyPair } from './ptyPair.ts';
import { deleteFromStorage } from './recorderStorage.ts';
import { recordInto, type RecordOptions } from './recording.ts';
import { exposeVolume, withdrawVolume } from './volumeExposure.ts';

/** `pty`: make a pty pair and put the station's end at this path; `path`: speak on an existing tty. */
export type EmulatorPort = { pty: string } | { path: string };

export interface EmulatedRecorderOptions {
  serial: string;
  officerId: string;
  officerName: string;
  unitNo?: string;
  password: string;
  /** `+LOGIN:` success word (default `OK`; `Sucess` like some firmware). */
  loginWord?: string;
  /** Battery level 0-100 (default 87). */
  battery?: number;
  /** The recorder's clock runs ahead of the true time by this much, ms (negative: behind). Default 0. */
  clockOffsetMs?: number;
  /** The true time (default: the system clock). */
  now?: () => Date;
  /** Zone of the recorder's wall clock (default: local). */
  timeZone?: string;
  /** The recorder's storage: a directory with its recordings. Exposed as a copy; only `BC+DEL` changes it. */
  volumeDir: string;
  /** The control channel (tty) stays while the storage is exposed (default false: it vanishes on `BC+UDISKEN=1`). */
  keepsControlChannel?: boolean;
  /** Where its storage appears in mass-storage mode, as `<mountRoot>/<serial>`. */
  mountRoot: string;
  port: EmulatorPort;
  faults?: EmulatorFaults;
  /** Between acknowledging UDISKEN and the tty vanishing, so the station can read the acknowledgement (default 250 ms). */
  leaveDelayMs?: number;
  /** Between the tty vanishing and the storage appearing (default 0 ms). */
  storageDelayMs?: number;
}

export type RecorderState = 'unplugged' | 'command' | 'switching' | 'storage' | 'no-storage';

export interface EmulatorEvents {
  state: [state: RecorderState];
  /** A line received in command mode (password masked). */
  command: [line: string];
  storage: [exposedPath: string];
  /** `BC+DEL` deleted this path from the recorder's storage. */
  deleted: [relPath: string];
  unplugged: [];
  /** Only emitted when someone listens; otherwise kept in `lastError`. */
  error: [err: Error];
}

export class EmulatedRecorder extends EventEmitter<EmulatorEvents> {
  /** Live faults: change them at any time. */
  faults: EmulatorFaults;
  readonly model: RecorderModel;
  lastError: Error | null = null;
  private currentState: RecorderState = 'unplugged';
  private pty: PtyPair | null = null;
  private transport: SerialTransport | null = null;
  private server: CommandServer | null = null;
  private exposed: string | null = null;
  private linkDir: string | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private ops: Promise<void> = Promise.resolve();

  constructor(private readonly opts: EmulatedRecorderOptions) {
    super();
    if (!SERIAL_PATTERN.test(opts.serial))
      throw new EmulatorError('EMULATOR_BAD_CONFIG', `serial must be 7 letters or digits, got ${JSON.stringify(opts.serial)}`);
    if (!/^[0-9A-Za-z]+$/.test(opts.officerId))
      throw new EmulatorError(
        'EMULATOR_BAD_CONFIG',
        `officerId must be letters or digits, got ${JSON.stringify(opts.officerId)}`,
      );
    if (/[\r\n\0:]/.test(opts.officerName) || /[\r\n\0]/.test(opts.password))
      throw new EmulatorError(
        'EMULATOR_BAD_CONFIG',
        'officerName and password must not contain line breaks (nor the name a ":")',
      );
    const battery = opts.battery ?? 87;
    if (!Number.isInteger(battery) || battery < 0 || battery > 100)
      throw new EmulatorError('EMULATOR_BAD_CONFIG', `battery must be 0-100, got ${battery}`);
    if (opts.timeZone !== undefined) assertTimeZone(opts.timeZone);
    this.faults = { ...opts.faults };
    this.model = {
      serial: opts.serial,
      officerId: opts.officerId,
      officerName: opts.officerName,
      unitNo: opts.unitNo ?? '',
      password: opts.password,
      loginWord: opts.loginWord ?? 'OK',
      battery,
      clockOffsetMs: opts.clockOffsetMs ?? 0,
      now: opts.now ?? (() => new Date()),
      timeZone: opts.timeZone,
    };
  }

  get serial(): string {
    return this.model.serial;
  }
  get state(): RecorderState {
    return this.currentState;
  }
  /** The tty the station opens: the pty link (while in command mode) or the given path. */
  get stationPath(): string {
    return 'pty' in this.opts.port ? this.opts.port.pty : this.opts.port.path;
  }
  /** The recorder's own storage (what `BC+DEL` deletes from). */
  get volumeDir(): string {
    return this.opts.volumeDir;
  }
  /** Where the storage is while exposed, else null. */
  get exposedPath(): string | null {
    return this.exposed;
  }
  /** The recorder's own clock now. */
  clock(): Date {
    return recorderClock(this.model);
  }

  /**
   * Records one file into its own storage, named with the officer it is assigned to and its own clock; returns its
   * path inside the storage. Not while its storage is exposed (a docked recorder in mass-storage mode does not record).
   */
  record(o: RecordOptions): Promise<string> {
    return this.serializeValue(async () => {
      if (this.currentState === 'storage' || this.currentState === 'switching')
        throw new EmulatorError('EMULATOR_STATE', `recorder ${this.serial} does not record while it is mass storage`);
      return recordInto(this.opts.volumeDir, this.model, o);
    });
  }

  /** Plugs the recorder in: command mode, the tty appears. */
  plugIn(): Promise<void> {
    return this.serialize(async () => {
      if (this.currentState !== 'unplugged')
        throw new EmulatorError('EMULATOR_STATE', `recorder ${this.serial} is already plugged in (${this.currentState})`);
      await this.openCommandMode();
      this.setState('command');
    });
  }

  /** Pulls the cable: the tty and the storage vanish at once (whatever is being read). Idempotent. */
  unplug(): Promise<void> {
    return this.serialize(async () => {
      if (this.currentState === 'unplugged') return;
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      await this.closeCommandMode();
      if (this.exposed) {
        const exposed = this.exposed;
        this.exposed = null;
        await withdrawVolume(exposed);
      }
      this.setState('unplugged');
      this.emit('unplugged');
    });
  }

  /** Unplugs and removes the emulator's private files. */
  async stop(): Promise<void> {
    await this.unplug();
    if (this.linkDir) await fs.rm(this.linkDir, { recursive: true, force: true });
    this.linkDir = null;
  }

  private serialize(fn: () => Promise<void>): Promise<void> {
    return this.serializeValue(fn);
  }

  private serializeValue<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.ops.then(fn);
    this.ops = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private setState(state: RecorderState): void {
    this.currentState = state;
    this.emit('state', state);
  }

  private report(err: Error): void {
    this.lastError = err;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private after(ms: number, fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn().catch((e: Error) => this.report(e));
    }, ms);
    this.timers.add(t);
  }

  private async openCommandMode(): Promise<void> {
    let target: string;
    if ('pty' in this.opts.port) {
      // The recorder's end lives in a private directory: never next to the station's end, where it would look like a second recorder.
      this.linkDir ??= await fs.mkdtemp(path.join(os.tmpdir(), `dockd-emulator-${this.serial}-`));
      this.pty = await createPtyPair({ recorderLink: path.join(this.linkDir, 'recorder'), stationLink: this.opts.port.pty });
      target = this.pty.recorderLink;
    } else {
      target = this.opts.port.path;
    }
    try {
      this.transport = await SerialTransport.open(target);
    } catch (e) {
      await this.pty?.close();
      this.pty = null;
      throw e;
    }
    const transport = this.transport;
    void transport.closed.then(() => {
      // The tty went away under us (socat killed, the gadget removed): the recorder is as good as unplugged.
      if (this.transport === transport) this.unplug().catch((e: Error) => this.report(e));
    });
    this.server = new CommandServer(transport.stream, this.model, () => this.faults, {
      onCommand: (line) => this.emit('command', line),
      onMassStorage: () => this.after(this.opts.leaveDelayMs ?? 250, () => this.leaveCommandMode()),
      onLeaveWithoutReply: () => this.vanishWithoutReply().catch((e: Error) => this.report(e)),
      deleteFile: async (rel) => {
        const reply = await deleteFromStorage(this.opts.volumeDir, this.exposed, rel);
        if (reply.kind === 'del-ok') this.emit('deleted', rel);
        return reply;
      },
    });
  }

  private async closeCommandMode(): Promise<void> {
    this.server?.detach();
    this.server = null;
    const transport = this.transport;
    this.transport = null;
    await transport?.close();
    await this.pty?.close();
    this.pty = null;
  }

  private leaveCommandMode(): Promise<void> {
    return this.serialize(async () => {
      if (this.currentState !== 'command') return;
      this.setState('switching');
      if (!this.opts.keepsControlChannel) await this.closeCommandMode();
      this.returnUnlessFaulty();
    });
  }

  /**
   * faults.vanishesBeforeUdiskReply: only the station's link goes (as a serial-dir entry vanishes when the device
   * re-enumerates); the pty stays open until unplugged, so the station's port sees no close, just silence.
   */
  private vanishWithoutReply(): Promise<void> {
    return this.serialize(async () => {
      if (this.currentState !== 'command') return;
      this.setState('switching');
      if (this.pty) await fs.rm(this.pty.stationLink, { force: true });
      this.returnUnlessFaulty();
    });
  }

  private returnUnlessFaulty(): void {
    if (this.faults.neverReturnsAsStorage) {
      this.setState('no-storage');
      return;
    }
    this.after(this.opts.storageDelayMs ?? 0, () => this.returnAsStorage());
  }

  private returnAsStorage(): Promise<void> {
    return this.serialize(async () => {
      if (this.currentState !== 'switching') return;
      this.exposed = await exposeVolume(this.opts.volumeDir, this.opts.mountRoot, this.serial);
      this.setState('storage');
      this.emit('storage', this.exposed);
      const unplugAfter = this.faults.unplugMidCopyMs;
      if (unplugAfter !== undefined) this.after(unplugAfter, () => this.unplug());
    });
  }
}
