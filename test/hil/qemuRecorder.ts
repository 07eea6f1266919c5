import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { CommandServer, type EmulatorFaults, type RecorderModel } from '../../drivers/emulator/index.ts';
import type { QmpClient } from './qmp.ts';

export interface QemuRecorderOptions {
  /** Short id for qemu object names. */
  id: string;
  /** The xHCI root port it is plugged into (1…8: the guest sees port path `1-<port>`). */
  port: number;
  model: RecorderModel;
  /** Its storage: a raw disk image (FAT32 or exFAT volume) on the host. */
  image: string;
  /** USB serial string of its storage device: the test config's fingerprint tells recorders from sticks by it. */
  storageSerial: string;
  /** Where the chardev socket goes. */
  workDir: string;
  /** The xHCI controller (qemu id of its bus); default `xhci.0`, whose ports are USB 2 only. */
  bus?: string;
}

/**
 * An emulated recorder on the guest's USB bus. Plugged in, it is a USB serial adapter (qemu's usb-serial, an FTDI
 * 0403:6001: /dev/ttyUSB0 in the guest) whose other end is a chardev socket to this process, where the recorder
 * emulator's command server (drivers/emulator) answers the BC protocol. On `BC+UDISKEN=1` it acknowledges, and then,
 * over QMP, the serial device is removed and a usb-storage device (46f4:0001) holding its volume image is added on the
 * same port: the guest sees a new address on the same port path, as a real recorder changing mode.
 */
export class QemuRecorder {
  faults: EmulatorFaults = {};
  /** Host times (ms) of what happened: serial plugged, storage plugged, storage unplugged. */
  readonly times: { serialPlugged?: number; storagePlugged?: number; storageUnplugged?: number } = {};
  readonly commands: string[] = [];
  private server: net.Server | null = null;
  private session: CommandServer | null = null;
  private switching: Promise<void> | null = null;

  constructor(
    private readonly qmp: QmpClient,
    readonly opts: QemuRecorderOptions,
  ) {}

  get serialDevice(): string {
    return `ser-${this.opts.id}`;
  }
  get storageDevice(): string {
    return `sto-${this.opts.id}`;
  }
  get portPath(): string {
    return `1-${this.opts.port}`;
  }

  /** Plugs it in in command mode. */
  async plugIn(): Promise<void> {
    const sock = path.join(this.opts.workDir, `rec-${this.opts.id}.sock`);
    await fs.rm(sock, { force: true });
    this.server = net.createServer((socket) => {
      socket.on('error', () => {});
      this.session?.detach();
      this.session = new CommandServer(socket, this.opts.model, () => this.faults, {
        onCommand: (line) => this.commands.push(line),
        onMassStorage: () => {
          this.switching = this.switchToStorage();
        },
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(sock, resolve));
    await this.qmp.execute('chardev-add', {
      id: `chr-${this.opts.id}`,
      backend: { type: 'socket', data: { addr: { type: 'unix', data: { path: sock } }, server: false } },
    });
    await this.qmp.execute('device_add', {
      driver: 'usb-serial',
      id: this.serialDevice,
      chardev: `chr-${this.opts.id}`,
      bus: this.opts.bus ?? 'xhci.0',
      port: String(this.opts.port),
      // The same USB serial number in both modes, as a real recorder has (storage pairs by it when its port path changes).
      serial: this.opts.storageSerial,
    });
    this.times.serialPlugged = Date.now();
  }

  /** Resolves once the switch to storage (after `BC+UDISKEN=1`) is done. */
  async storageReady(): Promise<void> {
    while (!this.switching) await new Promise((r) => setTimeout(r, 100));
    await this.switching;
  }

  /** Pulls the storage out (QMP device_del): whatever the guest is reading fails. */
  async unplugStorage(): Promise<void> {
    const since = this.qmp.events.length;
    await this.qmp.execute('device_del', { id: this.storageDevice });
    await this.qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === this.storageDevice, since);
    this.times.storageUnplugged = Date.now();
    await this.qmp.execute('blockdev-del', { 'node-name': `blk-${this.opts.id}` });
  }

  /** Plugs its storage in directly (a re-plug after an unplug: a recorder left in storage mode). */
  async plugStorage(): Promise<void> {
    await this.qmp.execute('blockdev-add', {
      driver: 'raw',
      'node-name': `blk-${this.opts.id}`,
      file: { driver: 'file', filename: this.opts.image },
    });
    await this.qmp.execute('device_add', {
      driver: 'usb-storage',
      id: this.storageDevice,
      drive: `blk-${this.opts.id}`,
      bus: this.opts.bus ?? 'xhci.0',
      port: String(this.opts.port),
      serial: this.opts.storageSerial,
      removable: true,
    });
    this.times.storagePlugged = Date.now();
  }

  async close(): Promise<void> {
    this.session?.detach();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async switchToStorage(): Promise<void> {
    // The acknowledgement is on its way to the guest; give the guest's tty a moment to read it before the device goes.
    await new Promise((r) => setTimeout(r, 300));
    this.session?.detach();
    this.session = null;
    const since = this.qmp.events.length;
    await this.qmp.execute('device_del', { id: this.serialDevice });
    await this.qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === this.serialDevice, since);
    await this.qmp.execute('chardev-remove', { id: `chr-${this.opts.id}` });
    await this.plugStorage();
  }
}
