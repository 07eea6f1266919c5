import { MountError, type VolumeMounter } from '../../drivers/mounts/blockMount.ts';
import { MountHelperClient } from '../../drivers/mounts/mountHelperClient.ts';
import { RemountedVolume, type RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import { fingerprintTable, type FingerprintConfig } from '../../drivers/usb/fingerprints.ts';
import { CheckedHotplug } from '../../drivers/usb/checkedHotplug.ts';
import type { UsbHotplug } from '../../drivers/usb/hotplug.ts';
import { volumeToMount } from '../../drivers/usb/sysfs.ts';
import { UsbWatcher, type RecorderAttached, type RecorderDetached } from '../../drivers/usb/watcher.ts';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { RecorderLinks } from './recorderLinks.ts';

/**
 * Recorders on the USB bus: a recorder in command mode (CDC-ACM tty) goes to the control-channel handshake; the same
 * recorder back as mass storage (paired by port path) is mounted read-only under the runtime mount root and handed to
 * the ingest (`usb.mounted` on the bus, for the intake); a detach undocks it (`usb.unmounted`) and unmounts (lazily
 * when busy or gone). Unknown devices are ignored. Hotplug, sysfs and the mounter come from the host.
 */
export class UsbDocking implements Service {
  readonly name = 'usb';
  private watcher: UsbWatcher | null = null;
  private hotplug: UsbHotplug | null = null;
  private readonly mounts = new Map<string, string>(); // port path → mount point
  private readonly mounter: VolumeMounter;
  private readonly log: Logger;

  private readonly deps: StationContext & { links: RecorderLinks };

  constructor(ctx: StationContext, extra: { links: RecorderLinks }) {
    this.deps = { ...ctx, links: extra.links };
    this.log = ctx.log.child({ component: 'usb' });
    const { runtimeMountRoot, mountHelper } = ctx.config.usb;
    this.mounter = ctx.host.usb.mounter({ runtimeRoot: runtimeMountRoot, mountHelper });
  }

  async start(): Promise<void> {
    const { config, host } = this.deps;
    const sysfs = host.usb.sysfs({ root: config.usb.sysfsRoot, devRoot: config.usb.devRoot });
    const kind = config.usb.hotplug;
    this.hotplug =
      kind === 'auto'
        ? new CheckedHotplug({
            primary: host.usb.hotplug('libusb', { sysfs, log: this.log }),
            check: host.usb.hotplug('sysfs', { sysfs, log: this.log }),
            log: this.log,
          })
        : host.usb.hotplug(kind, { sysfs, log: this.log });
    try {
      await this.hotplug.start();
    } catch (e) {
      if (config.usb.hotplug === 'libusb') throw e;
      this.log.warn({ err: e }, 'libusb hotplug unavailable: polling sysfs instead');
      this.hotplug = host.usb.hotplug('sysfs', { sysfs, log: this.log });
      await this.hotplug.start();
    }
    this.watcher = new UsbWatcher({
      hotplug: this.hotplug,
      sysfs,
      fingerprints: fingerprintTable(config.usb.fingerprints as unknown as FingerprintConfig[]),
      log: this.log,
    });
    this.watcher.on('recorder-attached', (r) => void this.attached(r));
    this.watcher.on('recorder-detached', (r) => void this.detached(r));
    this.watcher.on('recorder-failed', (f) => {
      const bay = this.deps.links.bayOf(f.portPath);
      this.deps.board.raise(
        'RECORDER_HANDSHAKE_FAILED',
        `usb:${f.portPath}`,
        `${bay ? `bay ${bay}` : f.portPath}: recorder did not come up (${f.error.message})`,
      );
    });
    await this.watcher.start();
    if (this.mounter instanceof MountHelperClient) {
      await this.mounter.ping().then(
        () => this.log.info({ socket: config.usb.mountHelper }, 'mount helper answers'),
        (e: Error) =>
          this.log.warn(
            { socket: config.usb.mountHelper, err: e },
            'mount helper does not answer yet: recorder storage cannot be mounted until it does',
          ),
      );
    }
    this.log.info(
      { sysfs: config.usb.sysfsRoot, mountRoot: config.usb.runtimeMountRoot, mountHelper: config.usb.mountHelper || null },
      'watching USB for recorders',
    );
  }

  async stop(): Promise<void> {
    await this.watcher?.stop();
    for (const [port, mp] of this.mounts) {
      this.deps.bus.emit('usb.unmounted', mp);
      await this.mounter.unmount(mp).catch((e) => this.log.error({ port, err: e }, 'unmount failed'));
    }
    this.mounts.clear();
  }

  /** For the wipe gate: storage dockd mounted itself (read-only) is written through a read-write remount just for it. */
  wipeVolumeFor(mountPoint: string): RecorderVolume | undefined {
    return [...this.mounts.values()].includes(mountPoint) ? new RemountedVolume(mountPoint, this.mounter) : undefined;
  }

  private async attached(r: RecorderAttached): Promise<void> {
    this.deps.board.clear(`usb:${r.portPath}`);
    if (r.driver === 'bc-serial' && r.tty) {
      this.deps.links.linkAppeared(r.tty, r.portPath, r.device.serial ?? null);
      return;
    }
    const device = r.blockDevices ? volumeToMount(r.blockDevices) : null;
    if (!device) {
      this.log.warn({ port: r.portPath }, 'recorder storage without a block device');
      return;
    }
    // Name the mount after the serial the recorder gave on its control channel (or the bay, or the port); the intake
    // pairs the volume with that recorder by this name, also when the storage came back on another port path.
    const awaiting = this.deps.links.claimPreview(r.portPath, r.device.serial ?? null);
    const name = awaiting?.serial ?? this.deps.links.bayOf(r.portPath) ?? r.portPath;
    try {
      const m = await this.mounter.mount(device, name, { usbPort: r.portPath });
      this.mounts.set(r.portPath, m.mountPoint);
      this.log.info(
        { port: r.portPath, device, mountPoint: m.mountPoint, fsType: m.fsType },
        'recorder storage mounted read-only',
      );
      this.deps.bus.emit('usb.mounted', m.mountPoint, r.portPath);
    } catch (e) {
      const msg = e instanceof MountError ? `${e.code}: ${e.message}` : (e as Error).message;
      this.deps.board.raise(
        'MOUNT_FAILED',
        `usb:${r.portPath}`,
        `cannot mount the recorder at ${r.portPath} (${device}): ${msg}`,
      );
    }
  }

  private async detached(r: RecorderDetached): Promise<void> {
    const mp = this.mounts.get(r.portPath);
    if (!mp) return;
    this.mounts.delete(r.portPath);
    this.deps.bus.emit('usb.unmounted', mp);
    try {
      const res = await this.mounter.unmount(mp);
      this.log.info({ port: r.portPath, mountPoint: mp, lazy: res.lazy }, 'recorder storage unmounted');
    } catch (e) {
      this.log.error({ port: r.portPath, err: e }, 'unmount failed');
    }
  }
}
