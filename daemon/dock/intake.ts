import path from 'node:path';
import { MountRootWatcher } from '../../drivers/mounts/mountRootWatcher.ts';
import { ChannelVolume, DirectoryVolume, type RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import type { Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import type { RecorderIdentity, RecorderLinks } from './recorderLinks.ts';
import type { UsbDocking } from './usbDocking.ts';

/**
 * Where the three intake paths meet: volumes under the mount roots, recorders that identified themselves on a control
 * channel (serial dir or USB tty), and USB storage dockd mounted itself. It owns the pairing of a volume with its
 * recorder (by USB port path, else by the volume's name being the serial) and announces docks and undocks on the bus
 * (`volume.docked`, `volume.undocked`) for the dock service.
 */
export class Intake implements Service {
  readonly name = 'intake';
  private watcher: MountRootWatcher | null = null;
  /** Mount point → USB port path, for volumes dockd mounted itself. */
  private readonly usbPorts = new Map<string, string>();
  private offs: (() => void)[] = [];
  private readonly log: Logger;

  constructor(
    private readonly ctx: StationContext,
    private readonly peers: { links: RecorderLinks; usb: UsbDocking | null },
  ) {
    this.log = ctx.log.child({ component: 'dock' });
  }

  async start(): Promise<void> {
    const { bus, config, host } = this.ctx;
    this.offs.push(
      bus.on('usb.mounted', (mountPoint, portPath) => {
        this.usbPorts.set(mountPoint, portPath);
        bus.emit('volume.docked', mountPoint);
      }),
      bus.on('usb.unmounted', (mountPoint) => this.undocked(mountPoint)),
    );
    this.watcher = new MountRootWatcher(config.dock.mountRoots, host.watchDir);
    this.watcher.on('docked', (v) => bus.emit('volume.docked', v));
    this.watcher.on('undocked', (v) => this.undocked(v));
    this.watcher.on('error', (e) => this.log.error({ err: e }, 'mount root watcher error'));
    await this.watcher.start();
    this.log.info({ mountRoots: config.dock.mountRoots }, 'watching mount roots');
  }

  async stop(): Promise<void> {
    await this.watcher?.stop();
    for (const off of this.offs.splice(0)) off();
  }

  /** Who a volume belongs to, when its recorder identified itself on a control channel. */
  identityFor(volume: string): RecorderIdentity | undefined {
    return this.peers.links.claim(path.basename(volume), this.usbPorts.get(volume) ?? null);
  }

  /** Where a volume dockd mounted itself sits: its bay (dock.bays) and port path. */
  placeFor(volume: string): { bay: string | null; portPath: string } | undefined {
    const port = this.usbPorts.get(volume);
    return port ? { bay: this.peers.links.bayOf(port), portPath: port } : undefined;
  }

  /**
   * Wipe gate: through the recorder's control channel when it kept one, else a read-write remount of storage dockd
   * mounted itself, else the directory.
   */
  volumeFor(volume: string): RecorderVolume {
    const channel = this.peers.links.deleteChannelFor(path.basename(volume));
    return channel ? new ChannelVolume(volume, channel) : (this.peers.usb?.wipeVolumeFor(volume) ?? new DirectoryVolume(volume));
  }

  /** The dock service ends the volume's session (synchronously, on the bus) before its pairing is forgotten. */
  private undocked(volume: string): void {
    this.ctx.bus.emit('volume.undocked', volume);
    this.peers.links.release(path.basename(volume));
    this.usbPorts.delete(volume);
  }
}
