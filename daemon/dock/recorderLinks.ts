import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import { BcClient, handshake, isBcError, reconnect, type HandshakeResult } from '../../drivers/protocols/bc/index.ts';
import type { DeleteChannel } from '../../drivers/volumes/recorderVolume.ts';
import type { ByteTransport } from '../../drivers/transports/index.ts';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import { noFiles } from '../status/board.ts';
import { switchToMassStorage } from './massStorageSwitch.ts';
import { pairStorage } from './storagePairing.ts';

/** What a recorder said about itself on its control channel, waiting for its storage to appear. */
export interface RecorderIdentity {
  serial: string;
  officerId: string;
  officerName: string | null;
  unitNo: string | null;
  battery: number | null;
  driftMs: number | null;
  recorderClock: string | null;
  portPath: string | null;
  /** USB serial number (iSerial) of its command-mode device: its storage may carry it on another port path. */
  usbSerial?: string | null;
  bay: string | null;
  link: string;
  at: string;
}

/** Logins tried on a tty that just appeared before the recorder counts as not answering (see dock()). */
const LOGIN_ATTEMPTS = 3;

const PLAIN_REASON: Record<string, string> = {
  BC_AUTH_FAILED: '密码错误 wrong password',
  BC_TIMEOUT: 'recorder does not answer',
  BC_GARBAGE: 'recorder answers garbage',
  BC_CLOSED: 'recorder went away during the handshake',
  BC_BAD_REPLY: 'recorder gave an unexpected reply',
  BC_DEVICE_ERROR: 'recorder reported an error',
};

/**
 * Recorders with a control channel: for each tty that appears (in dock.serialDir, or found by the USB watcher) run the
 * handshake — log in, read serial and officer, measure and fix the clock drift, read the battery, switch to mass
 * storage — then wait for its storage volume and hand the identity to the ingest. Each recorder is handled on its own:
 * a timeout, garbage, a wrong password or a recorder that never returns as storage ends that recorder's session with
 * an alarm, never blocking other bays.
 */
export class RecorderLinks implements Service {
  readonly name = 'recorder links';
  private watcher: FSWatcher | null = null;
  private readonly active = new Map<string, AbortController>();
  private readonly awaiting = new Map<string, RecorderIdentity & { timer: NodeJS.Timeout }>();
  private readonly claimed = new Map<string, RecorderIdentity>();
  private stopping = false;
  private existTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: StationContext) {
    this.log = deps.log.child({ component: 'recorder-link' });
  }

  async start(): Promise<void> {
    const dir = this.deps.config.dock.serialDir;
    const exists = await fs.stat(dir).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!exists) {
      // /dev/serial/by-id exists only while some serial device is present: look again until it does.
      this.log.info({ serialDir: dir }, 'serial dir absent; waiting for it to appear');
      this.existTimer = setInterval(() => {
        void fs.stat(dir).then(
          (st) => {
            if (!st.isDirectory() || this.stopping || this.watcher) return;
            clearInterval(this.existTimer!);
            void this.watchDir(dir);
          },
          () => {},
        );
      }, 2000);
      return;
    }
    await this.watchDir(dir);
  }

  private async watchDir(dir: string): Promise<void> {
    this.watcher = this.deps.host.watchDir(dir, { depth: 0, ignoreInitial: false, followSymlinks: false });
    this.watcher.on('add', (p) => {
      if (path.dirname(p) === dir) this.linkAppeared(p, null);
    });
    // A link removed and made again within chokidar's atomic window (a quick re-plug) comes as a change, not unlink + add.
    this.watcher.on('change', (p) => {
      if (path.dirname(p) === dir) this.linkAppeared(p, null);
    });
    this.watcher.on('unlink', (p) => {
      this.active.get(p)?.abort();
      // A recorder that failed and was taken away: its tile goes (the alarm stays until its cause clears or an admin acknowledges it).
      if (this.deps.board.recorders.get(this.tileKey(p))?.state === 'error') this.deps.board.removeRecorder(this.tileKey(p));
    });
    this.watcher.on('error', (e) => this.log.error({ err: e }, 'serial dir watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.log.info({ serialDir: dir }, 'watching for recorder control channels');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.existTimer) clearInterval(this.existTimer);
    await this.watcher?.close();
    for (const c of this.active.values()) c.abort();
    for (const a of this.awaiting.values()) clearTimeout(a.timer);
    this.awaiting.clear();
  }

  /** The bay (dock.bays) of a USB port path, or of a control channel by its name in dock.serialDir. */
  bayOf(portPath: string | null, link: string | null = null): string | null {
    const { bays } = this.deps.config.dock;
    const byPort = portPath ? bays.find((b) => b.usbPort === portPath) : undefined;
    const byTty = link ? bays.find((b) => b.tty === path.basename(link)) : undefined;
    return (byPort ?? byTty)?.id ?? null;
  }

  /**
   * The identity for a storage volume that just appeared: paired by USB port path when there is one, else by the
   * volume's name (label) being the recorder's serial. Undefined for a recorder with no control channel.
   */
  claim(volumeName: string, portPath: string | null = null): RecorderIdentity | undefined {
    for (const [serial, a] of this.awaiting) {
      if ((portPath && a.portPath === portPath) || serial === volumeName) {
        clearTimeout(a.timer);
        this.awaiting.delete(serial);
        const { timer: _t, ...identity } = a;
        this.deps.board.removeRecorder(this.tileKey(a.link));
        this.claimed.set(volumeName, identity);
        return identity;
      }
    }
    return this.claimed.get(volumeName);
  }

  release(volumeName: string): void {
    this.claimed.delete(volumeName);
  }

  /**
   * For the wipe gate: when the recorder paired with this volume kept its control channel while its storage is
   * mounted (its tty is still there), a way to open that channel to delete files through it (`BC+DEL`). The channel
   * logs in again and checks the recorder's serial first. Undefined when there is no such channel now.
   */
  deleteChannelFor(volumeName: string): (() => Promise<DeleteChannel>) | undefined {
    const identity = this.claimed.get(volumeName);
    if (!identity || !existsSync(identity.link)) return undefined;
    return () => this.openDeleteChannel(identity);
  }

  private async openDeleteChannel(identity: RecorderIdentity): Promise<DeleteChannel> {
    const { client, close } = await this.openChannel(identity);
    this.log.info({ serial: identity.serial, link: identity.link }, 'control channel open to delete archived recordings');
    return { deleteFile: (rel) => client.deleteFile(rel), close };
  }

  /**
   * For pool assignments: the docked recorder with this serial whose control channel is still there (it kept it while
   * its storage is mounted), and a way to open it (logged in, serial checked). Undefined when no such recorder is docked.
   */
  controlChannelFor(
    serial: string,
  ): { identity: RecorderIdentity; open: () => Promise<{ client: BcClient; close: () => Promise<void> }> } | undefined {
    const identity = [...this.claimed.values()].find((i) => i.serial === serial && existsSync(i.link));
    return identity && { identity, open: () => this.openChannel(identity) };
  }

  private async openChannel(identity: RecorderIdentity): Promise<{ client: BcClient; close: () => Promise<void> }> {
    const { config } = this.deps;
    const transport = await this.deps.host.openTransport(identity.link);
    const client = new BcClient(transport.stream, { timeoutMs: config.dock.commandTimeoutMs, timeZone: this.deps.timeZone });
    const close = async () => {
      client.dispose();
      await transport.close().catch(() => {});
    };
    try {
      const password = config.devices.find((d) => d.serial === identity.serial)?.password ?? config.dock.recorderPassword;
      await reconnect(client, { password, serial: identity.serial, attempts: LOGIN_ATTEMPTS });
    } catch (e) {
      await close();
      throw e;
    }
    return { client, close };
  }

  /** The recorder waiting for this USB storage (by port path, else by USB serial: see pairStorage), without claiming it. */
  claimPreview(portPath: string, usbSerial: string | null = null): RecorderIdentity | undefined {
    return pairStorage(this.awaiting.values(), { portPath, usbSerial });
  }

  /** A control channel appeared (serial dir or USB). */
  linkAppeared(link: string, portPath: string | null, usbSerial: string | null = null): void {
    if (this.stopping || this.active.has(link)) return;
    const controller = new AbortController();
    this.active.set(link, controller);
    void this.dock(link, portPath, controller.signal, usbSerial).finally(() => this.active.delete(link));
  }

  private tileKey(link: string): string {
    return `link:${link}`;
  }

  private async dock(link: string, portPath: string | null, signal: AbortSignal, usbSerial: string | null): Promise<void> {
    const { config, board } = this.deps;
    const bay = this.bayOf(portPath, link);
    const key = this.tileKey(link);
    const name = bay ? `bay ${bay}` : (portPath ?? path.basename(link));
    board.upsertRecorder({
      volume: key,
      name,
      sessionId: 0,
      serial: null,
      officerId: null,
      officerName: null,
      state: 'identifying',
      dockedAt: this.deps.clock.now().toISOString(),
      files: noFiles(),
      bytes: { total: 0, done: 0 },
      current: null,
      safeToUndock: false,
      leftBehind: [],
      error: null,
      bay,
      battery: null,
      driftMs: null,
    });
    let transport: ByteTransport | null = null;
    let result!: HandshakeResult;
    let identity!: RecorderIdentity;
    let waiting: (RecorderIdentity & { timer: NodeJS.Timeout }) | null = null;
    try {
      transport = await this.deps.host.openTransport(link);
      const client = new BcClient(transport.stream, { timeoutMs: config.dock.commandTimeoutMs, timeZone: this.deps.timeZone });
      const guess = config.devices.find((d) => path.basename(link).includes(d.serial));
      const password = guess?.password ?? config.dock.recorderPassword;
      // A tty that has just appeared may drop what is written before the recorder listens on it (opening a tty
      // flushes its queues): a login met by silence is tried again before the recorder counts as not answering.
      for (let attempt = 1; ; attempt++) {
        try {
          result = await handshake(client, { password, now: () => this.deps.clock.now(), massStorage: false });
          break;
        } catch (e) {
          if (attempt >= LOGIN_ATTEMPTS || signal.aborted || !(isBcError(e) && e.code === 'BC_TIMEOUT' && e.step === 'login'))
            throw e;
          this.log.debug({ link, attempt }, 'no answer to the login yet; trying again');
        }
      }
      const known = config.devices.find((d) => d.serial === result.serial);
      if (!known && !config.dock.allowUnknown) {
        this.fail(
          key,
          link,
          result.serial,
          'UNKNOWN_RECORDER',
          `unknown recorder ${result.serial} (officer ${result.officerId}) refused: not in devices and dock.allowUnknown is false`,
        );
        client.dispose();
        return;
      }
      if (known?.password && known.password !== password) {
        // The device names its own password: log in again with it before switching.
        await client.login(known.password);
      }
      identity = {
        serial: result.serial,
        officerId: result.officerId,
        officerName: result.officerName || known?.officerName || null,
        unitNo: result.unitNo || null,
        battery: result.battery,
        driftMs: result.driftMs,
        recorderClock: result.recorderClock.toISOString(),
        portPath,
        usbSerial,
        bay,
        link,
        at: this.deps.clock.now().toISOString(),
      };
      // Wait for the storage before asking for it: the volume can appear before this side has read the acknowledgement.
      waiting = this.awaitStorage(identity, key);
      const seen = await switchToMassStorage(client, transport);
      if (seen !== 'acknowledged') this.log.info({ link, serial: identity.serial, seen }, 'switch to mass storage taken as done');
      client.dispose();
    } catch (e) {
      if (waiting && this.awaiting.get(waiting.serial) === waiting) {
        clearTimeout(waiting.timer);
        this.awaiting.delete(waiting.serial);
      }
      const code = isBcError(e) ? e.code : ((e as { code?: string }).code ?? 'LINK_FAILED');
      const reason = PLAIN_REASON[code] ?? (e as Error).message;
      this.fail(
        key,
        link,
        null,
        code === 'BC_AUTH_FAILED' ? 'WRONG_PASSWORD' : 'RECORDER_HANDSHAKE_FAILED',
        `${name}: ${reason} (${(e as Error).message})`,
      );
      return;
    } finally {
      await transport?.close().catch(() => {});
    }
    this.deps.catalog.audit('recorder.handshake', identity.serial, { ...identity });
    this.log.info(
      { serial: identity.serial, officer: identity.officerId, battery: identity.battery, driftMs: identity.driftMs, bay },
      'recorder identified; switched to mass storage',
    );
    // This recorder (or this port) docked well: earlier handshake alarms about it are over.
    this.deps.board.clear(`link:${identity.serial}`);
    this.deps.board.clear(`link:${link}`);
    if (this.awaiting.get(identity.serial) === waiting) {
      board.patchRecorder(key, {
        serial: identity.serial,
        officerId: identity.officerId,
        officerName: identity.officerName,
        battery: identity.battery,
        driftMs: identity.driftMs,
        state: 'identifying',
        current: 'waiting for storage',
      });
    }
    // The tile for the control channel stays until the volume is claimed (see claim()).
  }

  /**
   * Registers a recorder as waiting for its storage, with the alarm if it never comes. A newer dock of the same
   * recorder replaces an entry whose storage never came (and its timer, which must not end the newer one).
   */
  private awaitStorage(identity: RecorderIdentity, key: string): RecorderIdentity & { timer: NodeJS.Timeout } {
    const { config } = this.deps;
    const previous = this.awaiting.get(identity.serial);
    if (previous) clearTimeout(previous.timer);
    const entry: RecorderIdentity & { timer: NodeJS.Timeout } = {
      ...identity,
      timer: setTimeout(() => {
        if (this.awaiting.get(identity.serial) !== entry) return;
        this.awaiting.delete(identity.serial);
        this.fail(
          key,
          identity.link,
          identity.serial,
          'RECORDER_NO_STORAGE',
          `recorder ${identity.serial} did not return as storage within ${config.dock.storageTimeoutSeconds} s: re-dock it`,
        );
      }, config.dock.storageTimeoutSeconds * 1000),
    };
    this.awaiting.set(identity.serial, entry);
    return entry;
  }

  private fail(
    key: string,
    link: string,
    serial: string | null,
    code: 'UNKNOWN_RECORDER' | 'WRONG_PASSWORD' | 'RECORDER_HANDSHAKE_FAILED' | 'RECORDER_NO_STORAGE',
    message: string,
  ): void {
    this.deps.board.patchRecorder(key, { state: 'error', error: message, ...(serial ? { serial } : {}) });
    this.deps.board.raise(code, `link:${serial ?? link}`, message);
    this.deps.catalog.audit('recorder.refused', serial ?? link, { code, message, link });
    this.log.warn({ link, serial, code }, message);
  }
}
