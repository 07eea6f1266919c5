import { EventEmitter } from 'node:events';
import { UsbError, silentLog, type UsbLog } from './errors.ts';
import { type Sysfs, portPathOf } from './sysfs.ts';

/**
 * USB hotplug: attach/detach of any USB device, carrying its bus number, address and port path. Two sources:
 * - `LibusbHotplug` over the `usb` npm package (libusb hotplug, or its polling fallback);
 * - `SysfsPoller`, which diffs the listing of `<sysfs>/bus/usb/devices` every interval: works without libusb and
 *   on a directory tree shaped like /sys (tests).
 * Both report the devices present at start as attached, and report a re-enumeration (same port path, new address)
 * as a detach of the old address followed by an attach of the new one.
 */
export interface UsbHotplugEvent {
  busNumber: number;
  deviceAddress: number;
  /** `<bus>-<port.port…>`; null when the platform does not tell (the watcher then asks sysfs). */
  portPath: string | null;
}

export interface UsbHotplugEvents {
  attach: [UsbHotplugEvent];
  detach: [UsbHotplugEvent];
  /** A failure of the source (e.g. sysfs unreadable); the source keeps running. */
  error: [Error];
}

export interface UsbHotplug {
  start(): Promise<void>;
  stop(): Promise<void>;
  on<K extends keyof UsbHotplugEvents>(event: K, listener: (...args: UsbHotplugEvents[K]) => void): this;
  off<K extends keyof UsbHotplugEvents>(event: K, listener: (...args: UsbHotplugEvents[K]) => void): this;
}

/** The part of the `usb` package this uses. */
export interface UsbModule {
  INIT_ERROR?: number;
  getDeviceList(): UsbDeviceLike[];
  on(event: 'attach' | 'detach', listener: (device: UsbDeviceLike) => void): unknown;
  off(event: 'attach' | 'detach', listener: (device: UsbDeviceLike) => void): unknown;
  unrefHotplugEvents?(): void;
}
export interface UsbDeviceLike {
  busNumber: number;
  deviceAddress: number;
  portNumbers?: number[];
}

/** Loads the native `usb` module; rejects with LIBUSB_UNAVAILABLE and the reason when it cannot. */
export async function loadUsbModule(importer: () => Promise<unknown> = () => import('usb')): Promise<UsbModule> {
  let mod: { usb?: UsbModule; default?: { usb?: UsbModule } };
  try {
    mod = (await importer()) as typeof mod;
  } catch (e) {
    throw new UsbError(
      'LIBUSB_UNAVAILABLE',
      `USB hotplug unavailable: the native 'usb' module could not be loaded (${(e as Error).message}); ` +
        'reinstall it (npm ci) or use the sysfs poller',
      { cause: e },
    );
  }
  const usb = mod.usb ?? mod.default?.usb;
  if (!usb || typeof usb.getDeviceList !== 'function') {
    throw new UsbError('LIBUSB_UNAVAILABLE', "USB hotplug unavailable: the 'usb' module has no usb.getDeviceList()");
  }
  if (usb.INIT_ERROR) {
    throw new UsbError(
      'LIBUSB_UNAVAILABLE',
      `USB hotplug unavailable: libusb failed to initialise (error ${usb.INIT_ERROR}); is /dev/bus/usb there?`,
    );
  }
  return usb;
}

export interface LibusbHotplugOptions {
  /** Defaults to `loadUsbModule()`; a test can pass a loader that fails. */
  load?: () => Promise<UsbModule>;
  log?: UsbLog;
}

/** Hotplug through libusb (the `usb` package). `start()` rejects with LIBUSB_UNAVAILABLE when libusb cannot load. */
export class LibusbHotplug extends EventEmitter<UsbHotplugEvents> implements UsbHotplug {
  private usb: UsbModule | null = null;
  /** bus:address → port path, so a detach (whose device may be half gone) still carries its port path. */
  private readonly known = new Map<string, UsbHotplugEvent>();
  private readonly onAttach = (d: UsbDeviceLike) => this.attached(d);
  private readonly onDetach = (d: UsbDeviceLike) => this.detached(d);

  constructor(private readonly options: LibusbHotplugOptions = {}) {
    super();
  }

  async start(): Promise<void> {
    if (this.usb) return;
    const usb = await (this.options.load ?? loadUsbModule)();
    let present: UsbDeviceLike[];
    try {
      present = usb.getDeviceList();
    } catch (e) {
      throw new UsbError('LIBUSB_UNAVAILABLE', `USB hotplug unavailable: listing devices failed (${(e as Error).message})`, {
        cause: e,
      });
    }
    this.usb = usb;
    usb.on('attach', this.onAttach);
    usb.on('detach', this.onDetach);
    usb.unrefHotplugEvents?.();
    for (const d of present) this.attached(d);
  }

  async stop(): Promise<void> {
    if (!this.usb) return;
    this.usb.off('attach', this.onAttach);
    this.usb.off('detach', this.onDetach);
    this.usb = null;
    this.known.clear();
  }

  private attached(d: UsbDeviceLike): void {
    let ports: number[] = [];
    try {
      ports = d.portNumbers ?? [];
    } catch (e) {
      (this.options.log ?? silentLog).debug({ err: e }, 'usb: port numbers unavailable');
    }
    const ev = { busNumber: d.busNumber, deviceAddress: d.deviceAddress, portPath: portPathOf(d.busNumber, ports) };
    if (ev.portPath === null && ports.length === 0 && d.deviceAddress === 1) return; // a root hub
    this.known.set(`${ev.busNumber}:${ev.deviceAddress}`, ev);
    this.emit('attach', ev);
  }

  private detached(d: UsbDeviceLike): void {
    const key = `${d.busNumber}:${d.deviceAddress}`;
    const ev = this.known.get(key);
    if (!ev) return;
    this.known.delete(key);
    this.emit('detach', ev);
  }
}

export interface SysfsPollerOptions {
  sysfs: Sysfs;
  /** Poll interval; default 500 ms. */
  intervalMs?: number;
}

/** Hotplug by diffing `<root>/bus/usb/devices` every interval. Port path + address identify a device. */
export class SysfsPoller extends EventEmitter<UsbHotplugEvents> implements UsbHotplug {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private polling: Promise<void> = Promise.resolve();
  /** port path → the device seen there at the last poll */
  private readonly seen = new Map<string, UsbHotplugEvent>();

  constructor(private readonly options: SysfsPollerOptions) {
    super();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.pollOnce();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.polling;
    this.seen.clear();
  }

  /** One diff of the listing against the last one (also what the timer runs). */
  pollOnce(): Promise<void> {
    this.polling = this.polling
      .then(() => this.diff())
      .catch((e: unknown) => {
        if (this.listenerCount('error') > 0) this.emit('error', e as Error);
      });
    return this.polling;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.pollOnce().then(() => this.schedule());
    }, this.options.intervalMs ?? 500);
    this.timer.unref?.();
  }

  private async diff(): Promise<void> {
    const { sysfs } = this.options;
    const now = new Map<string, UsbHotplugEvent>();
    for (const portPath of await sysfs.listPortPaths()) {
      const ids = await readIds(sysfs, portPath);
      if (ids) now.set(portPath, { ...ids, portPath });
      else if (this.seen.has(portPath)) now.set(portPath, this.seen.get(portPath)!); // half-written: keep as it was
    }
    if (!this.running) return;
    for (const [portPath, old] of this.seen) {
      const cur = now.get(portPath);
      if (!cur || cur.deviceAddress !== old.deviceAddress || cur.busNumber !== old.busNumber) this.emit('detach', old);
    }
    for (const [portPath, cur] of now) {
      const old = this.seen.get(portPath);
      if (!old || cur.deviceAddress !== old.deviceAddress || cur.busNumber !== old.busNumber) this.emit('attach', cur);
    }
    this.seen.clear();
    for (const [k, v] of now) this.seen.set(k, v);
  }
}

/** busnum/devnum of a device directory, or null while they cannot be read (device arriving or leaving). */
async function readIds(sysfs: Sysfs, portPath: string): Promise<{ busNumber: number; deviceAddress: number } | null> {
  try {
    const d = await sysfs.readDevice(portPath);
    return d ? { busNumber: d.busNumber, deviceAddress: d.deviceAddress } : null;
  } catch (e) {
    if (e instanceof UsbError) return null;
    throw e;
  }
}
