import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UsbError } from './errors.ts';

/**
 * Reads USB devices from sysfs: the device directory `<root>/bus/usb/devices/<bus>-<port.port…>` (the "port path",
 * stable across re-enumeration), its descriptor attributes, and what the kernel made of its interfaces: block devices
 * (`<dev>:<cfg>.<if>/host*\/target*\/*\/block/sdX`, partitions `sdX/sdXN`) and ttys (`<dev>:<cfg>.<if>/tty/ttyACMn`, or
 * the usb-serial layout `<dev>:<cfg>.<if>/ttyUSBn/tty/ttyUSBn`).
 *
 * The root is injected (default `/sys`); tests hand in a directory tree shaped like /sys (fixtures/sysfs/). On a real
 * /sys the entries of bus/usb/devices are symlinks into /sys/devices; they are resolved once, and the walk below the
 * device never follows a symlink (sysfs is full of loops).
 */

/** A port path: `<bus>-<port>[.<port>…]`, e.g. `1-1.2`. Root hubs (`usb1`) and interfaces (`1-1.2:1.0`) are not. */
export const PORT_PATH_RE = /^(\d+)-(\d+(?:\.\d+)*)$/;

export function portPathOf(busNumber: number, portNumbers: readonly number[]): string | null {
  if (!Number.isInteger(busNumber) || busNumber < 1 || portNumbers.length === 0) return null;
  return `${busNumber}-${portNumbers.join('.')}`;
}

export function parsePortPath(portPath: string): { busNumber: number; portNumbers: number[] } | null {
  const m = PORT_PATH_RE.exec(portPath);
  if (!m) return null;
  return { busNumber: Number(m[1]), portNumbers: m[2]!.split('.').map(Number) };
}

export interface UsbDeviceInfo {
  portPath: string;
  /** The device directory as found (under bus/usb/devices, symlinks resolved). */
  sysfsPath: string;
  busNumber: number;
  deviceAddress: number;
  /** idVendor / idProduct as numbers (print with `hex4`). */
  vendorId: number;
  productId: number;
  deviceClass: number;
  manufacturer?: string;
  product?: string;
  serial?: string;
}

export interface BlockPartition {
  name: string;
  devPath: string;
  number: number;
  sizeBytes: number;
}
export interface BlockDevice {
  name: string; // sdb
  devPath: string; // /dev/sdb
  sizeBytes: number; // 0: no medium
  removable: boolean;
  readOnly: boolean;
  partitions: BlockPartition[];
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

export interface SysfsOptions {
  /** sysfs mount point; default `/sys`. */
  root?: string;
  /** Where device nodes live; default `/dev`. */
  devRoot?: string;
}

export const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

const INTERFACE_RE = (portPath: string) => new RegExp(`^${portPath.replace(/\./g, '\\.')}:\\d+\\.\\d+$`);
const TTY_RE = /^tty(ACM|USB)\d+$/;
const SECTOR = 512;

export class Sysfs {
  readonly root: string;
  readonly devRoot: string;

  constructor(options: SysfsOptions = {}) {
    this.root = options.root ?? '/sys';
    this.devRoot = options.devRoot ?? '/dev';
  }

  get devicesDir(): string {
    return path.join(this.root, 'bus', 'usb', 'devices');
  }

  /** Port paths of the USB devices present now (hubs included; root hubs and interfaces excluded), sorted. */
  async listPortPaths(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.devicesDir);
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
    return names.filter((n) => PORT_PATH_RE.test(n)).sort();
  }

  /** The device at a port path, or null when its directory is not there. Throws BAD_DEVICE when it is unreadable. */
  async readDevice(portPath: string): Promise<UsbDeviceInfo | null> {
    const dir = await this.deviceDir(portPath);
    if (!dir) return null;
    const attr = (name: string) => readAttr(dir, name);
    const [idVendor, idProduct, busnum, devnum, cls, manufacturer, product, serial] = await Promise.all(
      ['idVendor', 'idProduct', 'busnum', 'devnum', 'bDeviceClass', 'manufacturer', 'product', 'serial'].map(attr),
    );
    const vendorId = parseHex(idVendor),
      productId = parseHex(idProduct);
    const busNumber = parseDec(busnum),
      deviceAddress = parseDec(devnum);
    if (vendorId === null || productId === null || busNumber === null || deviceAddress === null) {
      throw new UsbError('BAD_DEVICE', `sysfs ${dir}: idVendor/idProduct/busnum/devnum missing or malformed`);
    }
    return {
      portPath,
      sysfsPath: dir,
      busNumber,
      deviceAddress,
      vendorId,
      productId,
      deviceClass: parseHex(cls) ?? 0,
      ...(manufacturer ? { manufacturer } : {}),
      ...(product ? { product } : {}),
      ...(serial ? { serial } : {}),
    };
  }

  /** The port path of the device with this bus number and address (scans the device directories). */
  async findByAddress(busNumber: number, deviceAddress: number): Promise<string | null> {
    for (const portPath of await this.listPortPaths()) {
      if (!portPath.startsWith(`${busNumber}-`)) continue;
      const dir = path.join(this.devicesDir, portPath);
      if (parseDec(await readAttr(dir, 'devnum')) === deviceAddress) return portPath;
    }
    return null;
  }

  /** Block devices (SCSI disks behind usb-storage/uas) of the device, with their partitions, sorted by name. */
  async blockDevices(portPath: string): Promise<BlockDevice[]> {
    const out: BlockDevice[] = [];
    for (const ifDir of await this.interfaceDirs(portPath)) {
      for (const host of await subdirs(ifDir, (n) => /^host\d+$/.test(n))) {
        for (const target of await subdirs(host, (n) => /^target[\d:]+$/.test(n))) {
          for (const lun of await subdirs(target, (n) => /^\d+:\d+:\d+:\d+$/.test(n))) {
            for (const disk of await subdirs(path.join(lun, 'block'), () => true)) out.push(await this.readBlock(disk));
          }
        }
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Device nodes of the ttys (CDC-ACM or usb-serial) of the device, in interface order. */
  async ttys(portPath: string): Promise<string[]> {
    const out: string[] = [];
    for (const ifDir of await this.interfaceDirs(portPath)) {
      // cdc_acm: <if>/tty/ttyACM0
      for (const t of await subdirs(path.join(ifDir, 'tty'), (n) => TTY_RE.test(n))) out.push(path.basename(t));
      // usb-serial (and some older kernels): <if>/ttyACM0/tty/ttyACM0
      for (const t of await subdirs(ifDir, (n) => TTY_RE.test(n))) {
        for (const inner of await subdirs(path.join(t, 'tty'), (n) => TTY_RE.test(n))) out.push(path.basename(inner));
      }
    }
    return [...new Set(out)].map((n) => path.join(this.devRoot, n));
  }

  /**
   * Resolves with the device once its directory is there with readable attributes (and, when given, at this address).
   * A device is announced a moment before its attributes can be read; this rides that out.
   */
  async waitForDevice(portPath: string, deviceAddress?: number, options: WaitOptions = {}): Promise<UsbDeviceInfo> {
    const read = () =>
      this.readDevice(portPath).catch((e: unknown) => {
        if (e instanceof UsbError && e.code === 'BAD_DEVICE') return null;
        throw e;
      });
    const found = await this.waitFor(
      portPath,
      'its attributes',
      read,
      (d) => d !== null && (deviceAddress === undefined || d.deviceAddress === deviceAddress),
      { ...options, whileGone: true },
    );
    return found!;
  }

  /** Resolves with the first tty of the device once it appears. TIMEOUT / ABORTED / DEVICE_GONE otherwise. */
  async waitForTty(portPath: string, options: WaitOptions = {}): Promise<string> {
    const ttys = await this.waitFor(
      portPath,
      'a tty',
      () => this.ttys(portPath),
      (t) => t.length > 0,
      options,
    );
    return ttys[0]!;
  }

  /**
   * Resolves with the block devices of the device once at least one has a medium (size > 0) and the set of disks and
   * partitions read the same in two consecutive polls (the partition scan follows the disk by a moment).
   */
  async waitForBlockDevices(portPath: string, options: WaitOptions = {}): Promise<BlockDevice[]> {
    let last = '';
    return this.waitFor(
      portPath,
      'a block device',
      () => this.blockDevices(portPath),
      (blocks) => {
        const key = JSON.stringify(blocks.map((b) => [b.name, b.sizeBytes, b.partitions.map((p) => p.name)]));
        const stable = key === last;
        last = key;
        return stable && blocks.some((b) => b.sizeBytes > 0);
      },
      options,
    );
  }

  private async waitFor<T>(
    portPath: string,
    what: string,
    read: () => Promise<T>,
    done: (v: T) => boolean,
    { timeoutMs = 15_000, intervalMs = 100, signal, whileGone = false }: WaitOptions & { whileGone?: boolean },
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted)
        throw new UsbError('ABORTED', `waiting for ${what} on USB ${portPath}: aborted`, { cause: signal.reason });
      if (!whileGone && !(await this.deviceDir(portPath)))
        throw new UsbError('DEVICE_GONE', `USB ${portPath} left while waiting for ${what}`);
      const value = await read();
      if (done(value)) return value;
      if (Date.now() >= deadline) throw new UsbError('TIMEOUT', `USB ${portPath}: no ${what} appeared within ${timeoutMs} ms`);
      try {
        await sleep(Math.min(intervalMs, Math.max(1, deadline - Date.now())), undefined, { signal });
      } catch (e) {
        throw new UsbError('ABORTED', `waiting for ${what} on USB ${portPath}: aborted`, { cause: e });
      }
    }
  }

  /** The device directory with symlinks resolved, or null. */
  private async deviceDir(portPath: string): Promise<string | null> {
    if (!PORT_PATH_RE.test(portPath)) throw new UsbError('BAD_DEVICE', `not a USB port path: ${JSON.stringify(portPath)}`);
    try {
      const dir = await fs.realpath(path.join(this.devicesDir, portPath));
      return (await fs.stat(dir)).isDirectory() ? dir : null;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  private async interfaceDirs(portPath: string): Promise<string[]> {
    const dir = await this.deviceDir(portPath);
    if (!dir) return [];
    const re = INTERFACE_RE(portPath);
    return (await subdirs(dir, (n) => re.test(n))).sort();
  }

  private async readBlock(dir: string): Promise<BlockDevice> {
    const name = path.basename(dir);
    const partitions: BlockPartition[] = [];
    for (const p of await subdirs(dir, (n) => n.startsWith(name))) {
      const number = parseDec(await readAttr(p, 'partition'));
      if (number === null) continue;
      const pn = path.basename(p);
      partitions.push({
        name: pn,
        devPath: path.join(this.devRoot, pn),
        number,
        sizeBytes: (parseDec(await readAttr(p, 'size')) ?? 0) * SECTOR,
      });
    }
    partitions.sort((a, b) => a.number - b.number);
    return {
      name,
      devPath: path.join(this.devRoot, name),
      sizeBytes: (parseDec(await readAttr(dir, 'size')) ?? 0) * SECTOR,
      removable: (await readAttr(dir, 'removable')) === '1',
      readOnly: (await readAttr(dir, 'ro')) === '1',
      partitions,
    };
  }
}

/** What to mount of a recorder's storage: its first partition, else the whole disk (superfloppy), else null. */
export function volumeToMount(blocks: readonly BlockDevice[]): string | null {
  const disk = blocks.find((b) => b.sizeBytes > 0);
  if (!disk) return null;
  return disk.partitions[0]?.devPath ?? disk.devPath;
}

async function readAttr(dir: string, name: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(dir, name), 'utf8')).trim();
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw e;
  }
}

/** Real subdirectories (not symlinks) of dir whose names pass the filter; [] when dir is missing. */
async function subdirs(dir: string, filter: (name: string) => boolean): Promise<string[]> {
  try {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && filter(e.name)).map((e) => path.join(dir, e.name));
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

function parseHex(s: string | undefined): number | null {
  return s !== undefined && /^[0-9a-fA-F]{1,4}$/.test(s) ? parseInt(s, 16) : null;
}
function parseDec(s: string | undefined): number | null {
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : null;
}
function isNotFound(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENODEV';
}
