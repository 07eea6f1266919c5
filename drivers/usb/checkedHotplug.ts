import { EventEmitter } from 'node:events';
import { silentLog, type UsbLog } from './errors.ts';
import type { UsbHotplug, UsbHotplugEvent, UsbHotplugEvents } from './hotplug.ts';

export interface CheckedHotplugOptions {
  /** The source to use while it works (libusb). */
  primary: UsbHotplug;
  /** The source that always works (the sysfs poller): it watches the primary, and replaces it when it misses a change. */
  check: UsbHotplug;
  /** How long the primary may lag behind the check on one change before it counts as missed; default 5 s. */
  graceMs?: number;
  log?: UsbLog;
}

const keyOf = (e: UsbHotplugEvent) => `${e.busNumber}:${e.deviceAddress}`;

/**
 * `usb.hotplug: auto`. libusb's hotplug loads and lists the devices present even where it will never report a change:
 * the `usb` package's libusb listens to udevd, and a system without udevd (an initramfs, a container, a minimal guest)
 * delivers nothing. So the sysfs poller runs beside it until libusb has reported a change the poller also saw (then the
 * poller stops); when libusb misses one by more than `graceMs`, libusb is dropped and the poller's events are used from
 * then on, after reconciling what each had seen (devices libusb missed are attached, those it missed leaving detached).
 */
export class CheckedHotplug extends EventEmitter<UsbHotplugEvents> implements UsbHotplug {
  private mode: 'checking' | 'primary' | 'fallback' | 'stopped' = 'stopped';
  /** Devices present by each source's reports (bus:address → event). */
  private readonly primaryKnown = new Map<string, UsbHotplugEvent>();
  private readonly checkKnown = new Map<string, UsbHotplugEvent>();
  /** Devices the primary reported attached since start (a device may come and go within the grace). */
  private readonly primaryAttached = new Set<string>();
  private readonly primaryDetached = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The check's first poll (the devices present at start) proves nothing about the primary's hotplug. */
  private checkStarted = false;
  private readonly log: UsbLog;

  private readonly onPrimaryAttach = (e: UsbHotplugEvent) => this.primaryEvent('attach', e);
  private readonly onPrimaryDetach = (e: UsbHotplugEvent) => this.primaryEvent('detach', e);
  private readonly onPrimaryError = (e: Error) => this.emit('error', e);
  private readonly onCheckAttach = (e: UsbHotplugEvent) => this.checkEvent('attach', e);
  private readonly onCheckDetach = (e: UsbHotplugEvent) => this.checkEvent('detach', e);
  private readonly onCheckError = (e: Error) => {
    if (this.mode === 'fallback') this.emit('error', e);
    else this.log.debug({ err: e.message }, 'usb: the sysfs check of libusb hotplug failed once');
  };

  constructor(private readonly options: CheckedHotplugOptions) {
    super();
    this.log = options.log ?? silentLog;
  }

  /** Which source reports now: `checking` (libusb, watched), `primary` (libusb, proven), `fallback` (sysfs). */
  get state(): string {
    return this.mode;
  }

  async start(): Promise<void> {
    if (this.mode !== 'stopped') return;
    const { primary, check } = this.options;
    primary.on('attach', this.onPrimaryAttach);
    primary.on('detach', this.onPrimaryDetach);
    primary.on('error', this.onPrimaryError);
    this.mode = 'checking';
    try {
      await primary.start();
    } catch (e) {
      this.mode = 'stopped';
      this.offPrimary();
      throw e;
    }
    check.on('attach', this.onCheckAttach);
    check.on('detach', this.onCheckDetach);
    check.on('error', this.onCheckError);
    this.checkStarted = false;
    await check.start();
    this.checkStarted = true;
  }

  async stop(): Promise<void> {
    const was = this.mode;
    this.mode = 'stopped';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.offPrimary();
    this.offCheck();
    if (was !== 'fallback') await this.options.primary.stop();
    if (was !== 'primary') await this.options.check.stop();
    for (const m of [this.primaryKnown, this.checkKnown, this.primaryAttached, this.primaryDetached]) m.clear();
  }

  private primaryEvent(type: 'attach' | 'detach', e: UsbHotplugEvent): void {
    if (this.mode !== 'checking' && this.mode !== 'primary') return;
    const key = keyOf(e);
    if (type === 'attach') {
      this.primaryKnown.set(key, e);
      this.primaryAttached.add(key);
    } else {
      this.primaryKnown.delete(key);
      this.primaryDetached.add(key);
    }
    this.emit(type, e);
  }

  private checkEvent(type: 'attach' | 'detach', e: UsbHotplugEvent): void {
    if (this.mode === 'fallback') {
      this.emit(type, e);
      return;
    }
    const key = keyOf(e);
    if (type === 'attach') this.checkKnown.set(key, e);
    else this.checkKnown.delete(key);
    if (this.mode !== 'checking' || !this.checkStarted) return;
    const seen = () => (type === 'attach' ? this.primaryAttached : this.primaryDetached).has(key);
    if (seen()) {
      this.proven();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.mode !== 'checking') return;
      if (seen()) this.proven();
      else void this.fallBack(e, type);
    }, this.options.graceMs ?? 5000);
    timer.unref?.();
    this.timers.add(timer);
  }

  /** libusb reported a change: it works here, so the poller stops. */
  private proven(): void {
    if (this.mode !== 'checking') return;
    this.mode = 'primary';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.offCheck();
    this.checkKnown.clear();
    void this.options.check.stop();
    this.log.info({}, 'usb: libusb hotplug delivers events; the sysfs check stops');
  }

  private async fallBack(missed: UsbHotplugEvent, type: 'attach' | 'detach'): Promise<void> {
    this.mode = 'fallback';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.offPrimary();
    this.log.warn(
      { missed: `${type} ${missed.portPath ?? keyOf(missed)}` },
      'libusb hotplug delivers no events (no udevd?): polling sysfs instead',
    );
    // Reconcile: the watcher has what libusb reported; bring it to what sysfs shows now.
    for (const [key, e] of this.primaryKnown) if (!this.checkKnown.has(key)) this.emit('detach', e);
    for (const [key, e] of this.checkKnown) if (!this.primaryKnown.has(key)) this.emit('attach', e);
    this.primaryKnown.clear();
    this.checkKnown.clear();
    await this.options.primary.stop().catch((e: Error) => this.log.debug({ err: e.message }, 'usb: stopping libusb failed'));
  }

  private offPrimary(): void {
    const { primary } = this.options;
    primary.off('attach', this.onPrimaryAttach);
    primary.off('detach', this.onPrimaryDetach);
    primary.off('error', this.onPrimaryError);
  }

  private offCheck(): void {
    const { check } = this.options;
    check.off('attach', this.onCheckAttach);
    check.off('detach', this.onCheckDetach);
    check.off('error', this.onCheckError);
  }
}
