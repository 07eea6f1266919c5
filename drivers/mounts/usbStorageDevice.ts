import fs from 'node:fs/promises';
import path from 'node:path';
import { MountError } from './blockMount.ts';

/**
 * The mount helper's check of a device the daemon names: sysfs must show it as a disk (or a partition of one) behind
 * a mass-storage interface (bInterfaceClass 08: usb-storage or uas) of the USB device at that port, and the node in
 * the device root must be a block device with the same major:minor as sysfs gives it (`dev`). Anything else — an
 * internal disk, a loop device, a node replaced by something else — is refused with NOT_USB_STORAGE.
 */
export async function checkUsbStorageDevice(o: { sysfsRoot: string; device: string; usbPort: string }): Promise<void> {
  const refuse = (why: string): never => {
    throw new MountError('NOT_USB_STORAGE', `${o.device} on USB ${o.usbPort}: ${why}`);
  };
  let deviceDir: string;
  try {
    deviceDir = await fs.realpath(path.join(o.sysfsRoot, 'bus', 'usb', 'devices', o.usbPort));
  } catch {
    return refuse('no such USB device in sysfs');
  }
  const name = path.basename(o.device);
  const interfaceRe = new RegExp(`^${o.usbPort.replace(/\./g, '\\.')}:\\d+\\.\\d+$`);
  let blockDir: string | null = null;
  for (const iface of await realSubdirs(deviceDir, (n) => interfaceRe.test(n))) {
    if ((await attr(iface, 'bInterfaceClass')) !== '08') continue;
    for (const host of await realSubdirs(iface, (n) => /^host\d+$/.test(n))) {
      for (const target of await realSubdirs(host, (n) => /^target[\d:]+$/.test(n))) {
        for (const lun of await realSubdirs(target, (n) => /^\d+:\d+:\d+:\d+$/.test(n))) {
          for (const disk of await realSubdirs(path.join(lun, 'block'), () => true)) {
            if (path.basename(disk) === name) blockDir = disk;
            for (const part of await realSubdirs(disk, (n) => n === name)) if (await attr(part, 'partition')) blockDir = part;
          }
        }
      }
    }
  }
  if (!blockDir) return refuse('sysfs has no such block device behind a mass-storage interface of that USB device');
  const dev = await attr(blockDir, 'dev');
  if (!dev || !/^\d+:\d+$/.test(dev)) return refuse(`sysfs gives no device number (${blockDir}/dev)`);
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(o.device);
  } catch {
    throw new MountError('DEVICE_GONE', `${o.device} is not there (unplugged?)`);
  }
  if (!st.isBlockDevice()) return refuse('not a block device');
  const [major, minor] = dev.split(':').map(Number);
  if (majorOf(st.rdev) !== major || minorOf(st.rdev) !== minor) {
    return refuse(`the node is ${majorOf(st.rdev)}:${minorOf(st.rdev)}, sysfs says ${dev}`);
  }
}

/** Linux dev_t, as glibc encodes it (major: bits 8–19 and 32–43; minor: bits 0–7 and 20–31, the rest unused here). */
export const majorOf = (rdev: number): number => ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & 0xfffff000);
export const minorOf = (rdev: number): number => (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);

async function attr(dir: string, name: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(dir, name), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Real subdirectories (never symlinks: sysfs is full of loops) whose names pass the filter. */
async function realSubdirs(dir: string, filter: (name: string) => boolean): Promise<string[]> {
  try {
    return (await fs.readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && filter(e.name))
      .map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}
