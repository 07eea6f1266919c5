import { EventEmitter } from 'node:events';
import { UsbError, silentLog, type UsbLog } from './errors.ts';
import { matchFingerprint, usbId, type Fingerprint, type RecorderDriver } from './fingerprints.ts';
import type { UsbHotplug, UsbHotplugEvent } from './hotplug.ts';
import { hex4, type BlockDevice, type Sysfs, type UsbDeviceInfo } from './sysfs.ts';

/**
 * Turns raw USB hotplug into recorder events: each attached device is read from sysfs, matched against the
 * fingerprint table, and — for a recorder — announced once what its driver needs has appeared: the tty of a
 * command-mode recorder (`bc-serial`), the block devices of one in storage mode (`mass-storage`).
 *
 * State is kept per USB port path, not per address: a recorder that switches to mass storage leaves and returns on the
 * same port with a new address; its `recorder-attached` then carries `reenumeratedFrom` (what was on that port just
 * before), so the dock can hand the storage to the session that asked for it. Events about an address that is no
 * longer the one on its port (late detach of the old address, say) are ignored. Unknown devices are ignored and
 * logged once per VID:PID:serial; hubs are ignored silently.
 */
export interface RecorderAttached {
  portPath: string;
  busNumber: number;
  deviceAddress: number;
  driver: RecorderDriver;
  model: string;
  /** The fingerprint match (driver, model, score, entry). */
  fingerprint: { driver: RecorderDriver; model: string; score: number; origin: Fingerprint['origin'] };
  device: UsbDeviceInfo;
  /** `bc-serial`: the control channel, e.g. /dev/ttyACM0. */
  tty?: string;
  /** `mass-storage`: the disks with their partitions. */
  blockDevices?: BlockDevice[];
  /** The recorder that left this port within `reenumerateWindowMs` before this one came (a mode switch). */
  reenumeratedFrom?: { driver: RecorderDriver; model: string; deviceAddress: number; serial?: string };
}

export interface RecorderDetached {
  portPath: string;
  busNumber: number;
  deviceAddress: number;
  driver: RecorderDriver;
  model: string;
}

export interface RecorderFailed {
  portPath: string;
  driver?: RecorderDriver;
  model?: string;
  device?: UsbDeviceInfo;
  /** TIMEOUT (no tty / block device appeared), BAD_DEVICE, … */
  error: UsbError;
}

export interface DeviceIgnored {
  portPath: string;
  reason: 'unknown' | 'hub';
  vendorId: string;
  productId: string;
  manufacturer?: string;
  product?: string;
}

export interface UsbWatcherEvents {
  'recorder-attached': [RecorderAttached];
  'recorder-detached': [RecorderDetached];
  'recorder-failed': [RecorderFailed];
  'device-ignored': [DeviceIgnored];
  /** The hotplug source reported a failure (it keeps running). */
  'hotplug-error': [Error];
}

export interface UsbWatcherHost {
  hotplug: UsbHotplug;
  sysfs: Sysfs;
  fingerprints: readonly Fingerprint[];
  log?: UsbLog;
  now?: () => number;
}

export interface UsbWatcherOptions {
  /** How long to wait for a device's attributes, tty or block devices; default 15 s. */
  waitTimeoutMs?: number;
  /** sysfs poll interval while waiting; default 100 ms. */
  pollMs?: number;
  /** A recorder arriving on a port this soon after one left it is a re-enumeration; default 60 s. */
  reenumerateWindowMs?: number;
}

interface PortState {
  busNumber: number;
  deviceAddress: number;
  abort: AbortController;
  attached: RecorderAttached | null;
}

export class UsbWatcher extends EventEmitter<UsbWatcherEvents> {
  private readonly ports = new Map<string, PortState>();
  private readonly lastLeft = new Map<string, { at: number; from: NonNullable<RecorderAttached['reenumeratedFrom']> }>();
  private readonly loggedUnknown = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly log: UsbLog;
  private readonly now: () => number;
  private running = false;
  private readonly onAttach = (ev: UsbHotplugEvent) => this.track(this.attach(ev));
  private readonly onDetach = (ev: UsbHotplugEvent) => this.track(this.detach(ev));
  private readonly onError = (e: Error) => this.safeEmit('hotplug-error', e);

  constructor(
    private readonly host: UsbWatcherHost,
    private readonly options: UsbWatcherOptions = {},
  ) {
    super();
    this.log = host.log ?? silentLog;
    this.now = host.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.host.hotplug.on('attach', this.onAttach);
    this.host.hotplug.on('detach', this.onDetach);
    this.host.hotplug.on('error', this.onError);
    try {
      await this.host.hotplug.start();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.host.hotplug.off('attach', this.onAttach);
    this.host.hotplug.off('detach', this.onDetach);
    this.host.hotplug.off('error', this.onError);
    for (const s of this.ports.values()) s.abort.abort(new Error('usb watcher stopping'));
    await this.host.hotplug.stop();
    await Promise.allSettled([...this.inflight]);
    this.ports.clear();
  }

  /** The recorders attached (and announced) now. */
  recorders(): RecorderAttached[] {
    return [...this.ports.values()].flatMap((s) => (s.attached ? [s.attached] : []));
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async attach(ev: UsbHotplugEvent): Promise<void> {
    const portPath = ev.portPath ?? (await this.host.sysfs.findByAddress(ev.busNumber, ev.deviceAddress).catch(() => null));
    if (!portPath || !this.running) return;
    const prev = this.ports.get(portPath);
    if (prev && prev.busNumber === ev.busNumber && prev.deviceAddress === ev.deviceAddress) return; // already known
    if (prev) this.leave(portPath, prev); // its detach was missed: the port has a new device now
    const state: PortState = {
      busNumber: ev.busNumber,
      deviceAddress: ev.deviceAddress,
      abort: new AbortController(),
      attached: null,
    };
    this.ports.set(portPath, state);
    const current = () => this.running && this.ports.get(portPath) === state;
    const wait = {
      timeoutMs: this.options.waitTimeoutMs ?? 15_000,
      intervalMs: this.options.pollMs ?? 100,
      signal: state.abort.signal,
    };
    let device: UsbDeviceInfo | undefined;
    let match: ReturnType<typeof matchFingerprint> = null;
    try {
      device = await this.host.sysfs.waitForDevice(portPath, ev.deviceAddress, wait);
      if (!current()) return;
      if (device.deviceClass === 0x09) {
        this.ignored(device, 'hub');
        return;
      }
      match = matchFingerprint(this.host.fingerprints, device);
      if (!match) {
        this.ignored(device, 'unknown');
        return;
      }
      const found =
        match.driver === 'bc-serial'
          ? { tty: await this.host.sysfs.waitForTty(portPath, wait) }
          : { blockDevices: await this.host.sysfs.waitForBlockDevices(portPath, wait) };
      if (!current()) return;
      const left = this.lastLeft.get(portPath);
      this.lastLeft.delete(portPath);
      const reenumerated = left && this.now() - left.at <= (this.options.reenumerateWindowMs ?? 60_000);
      const fp = match.fingerprint;
      state.attached = {
        portPath,
        busNumber: device.busNumber,
        deviceAddress: device.deviceAddress,
        driver: match.driver,
        model: match.model,
        fingerprint: { driver: match.driver, model: match.model, score: match.score, origin: fp.origin },
        device,
        ...found,
        ...(reenumerated ? { reenumeratedFrom: left.from } : {}),
      };
      this.log.info(
        { portPath, usbId: usbId(device), driver: match.driver, model: match.model, ...found },
        'usb: recorder attached',
      );
      this.safeEmit('recorder-attached', state.attached);
    } catch (e) {
      if (!current()) return; // detached or stopping meanwhile: the detach says what there is to say
      const error =
        e instanceof UsbError ? e : new UsbError('BAD_DEVICE', `USB ${portPath}: ${(e as Error).message}`, { cause: e });
      this.log.warn({ portPath, code: error.code, err: error }, 'usb: recorder not usable');
      this.safeEmit('recorder-failed', {
        portPath,
        error,
        ...(device ? { device } : {}),
        ...(match ? { driver: match.driver, model: match.model } : {}),
      });
    }
  }

  private async detach(ev: UsbHotplugEvent): Promise<void> {
    const portPath =
      ev.portPath ?? [...this.ports].find(([, s]) => s.busNumber === ev.busNumber && s.deviceAddress === ev.deviceAddress)?.[0];
    if (!portPath) return;
    const state = this.ports.get(portPath);
    if (!state || state.busNumber !== ev.busNumber || state.deviceAddress !== ev.deviceAddress) return; // stale address
    this.leave(portPath, state);
  }

  private leave(portPath: string, state: PortState): void {
    this.ports.delete(portPath);
    state.abort.abort(new Error(`USB ${portPath} detached`));
    const a = state.attached;
    if (!a) return;
    this.lastLeft.set(portPath, {
      at: this.now(),
      from: {
        driver: a.driver,
        model: a.model,
        deviceAddress: a.deviceAddress,
        ...(a.device.serial ? { serial: a.device.serial } : {}),
      },
    });
    this.log.info({ portPath, driver: a.driver, model: a.model }, 'usb: recorder detached');
    this.safeEmit('recorder-detached', {
      portPath,
      busNumber: a.busNumber,
      deviceAddress: a.deviceAddress,
      driver: a.driver,
      model: a.model,
    });
  }

  private ignored(device: UsbDeviceInfo, reason: DeviceIgnored['reason']): void {
    const key = `${usbId(device)}:${device.serial ?? ''}`;
    if (reason === 'unknown' && !this.loggedUnknown.has(key)) {
      this.loggedUnknown.add(key);
      this.log.info(
        { portPath: device.portPath, usbId: usbId(device), manufacturer: device.manufacturer, product: device.product },
        'usb: device ignored, not a known recorder (logged once)',
      );
    }
    this.safeEmit('device-ignored', {
      portPath: device.portPath,
      reason,
      vendorId: hex4(device.vendorId),
      productId: hex4(device.productId),
      ...(device.manufacturer ? { manufacturer: device.manufacturer } : {}),
      ...(device.product ? { product: device.product } : {}),
    });
  }

  /** A throwing listener is logged, not allowed to break the watcher. */
  private safeEmit<K extends keyof UsbWatcherEvents>(event: K, ...args: UsbWatcherEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: UsbWatcherEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      this.log.warn({ event, err: e }, 'usb: event listener failed');
    }
  }
}
