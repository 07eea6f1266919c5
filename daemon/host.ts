import type { StatsFs } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { type ChokidarOptions, type FSWatcher, watch } from 'chokidar';
import { BlockMounter, type VolumeMounter } from '../drivers/mounts/blockMount.ts';
import { MountHelperClient } from '../drivers/mounts/mountHelperClient.ts';
import type { ByteTransport } from '../drivers/transports/index.ts';
import { LibusbHotplug, SysfsPoller, type UsbHotplug } from '../drivers/usb/hotplug.ts';
import { Sysfs } from '../drivers/usb/sysfs.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Logger } from './log.ts';
import { createFfmpegTools, type MediaTools } from './media/ffprobe.ts';
import { type HashThreads, processThreads } from './recorder/copyWorkers.ts';

export { type Clock, systemClock };

/** Opens a recorder's control channel (a tty) as a byte stream. */
export type OpenTransport = (target: string) => Promise<ByteTransport>;

/** Watches directories (chokidar's `watch`): the mount roots, the serial dir. */
export type WatchDir = (paths: string | string[], options: ChokidarOptions) => FSWatcher;

/** Free and total space of the filesystem holding a directory. */
export type StatFs = (dir: string) => Promise<StatsFs>;

/** The USB side: factories, since what they watch and where they mount comes from the config (usb.*). */
export interface UsbBindings {
  sysfs(o: { root: string; devRoot: string }): Sysfs;
  hotplug(kind: 'libusb' | 'sysfs', o: { sysfs: Sysfs; log: Logger }): UsbHotplug;
  /** With a mount helper socket the privileged part lives in another process (dockd-mount) and dockd needs no capability. */
  mounter(o: { runtimeRoot: string; mountHelper: string }): VolumeMounter;
}

/**
 * Every piece of IO the daemon's services reach: they receive it, never construct it, so a test can hand in real
 * substitutes (a pty behind the recorder emulator, a /sys-shaped tree, a clock it moves). Model: zwave-js's `host`.
 */
export interface Host {
  clock: Clock;
  media: MediaTools;
  usb: UsbBindings;
  openTransport: OpenTransport;
  watchDir: WatchDir;
  statfs: StatFs;
  threads: HashThreads;
}

/** The real station: system clock, ffmpeg, libusb or sysfs polling, mount(8) or the mount helper, serial ttys. */
export function defaultHost(): Host {
  return {
    clock: systemClock,
    media: createFfmpegTools(),
    usb: {
      sysfs: (o) => new Sysfs(o),
      hotplug: (kind, o) => (kind === 'sysfs' ? new SysfsPoller({ sysfs: o.sysfs }) : new LibusbHotplug({ log: o.log })),
      mounter: (o) =>
        o.mountHelper
          ? new MountHelperClient({ socketPath: o.mountHelper, runtimeRoot: o.runtimeRoot })
          : new BlockMounter({ runtimeRoot: o.runtimeRoot }),
    },
    // serialport is a native module: loaded at the first open.
    openTransport: async (target) => (await import('../drivers/transports/serial.ts')).openSerial(target),
    watchDir: (paths, options) => watch(paths, options),
    statfs: (dir) => statfs(dir),
    threads: processThreads,
  };
}
