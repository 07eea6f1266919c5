import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UsbError } from '../../drivers/usb/errors.ts';
import { Sysfs, parsePortPath, portPathOf, volumeToMount } from '../../drivers/usb/sysfs.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const fixture = (name: string) => new Sysfs({ root: path.join(FIXTURES, name) });

const temps: string[] = [];
async function tempCopy(name: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-sysfs-'));
  temps.push(dir);
  await fs.cp(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}
afterEach(async () => {
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UsbError);
    return (e as UsbError).code;
  }
  throw new Error('expected a UsbError');
}

describe('port paths', () => {
  it('builds and parses <bus>-<port.port…>', () => {
    expect(portPathOf(1, [1, 2])).toBe('1-1.2');
    expect(portPathOf(3, [4])).toBe('3-4');
    expect(portPathOf(1, [])).toBeNull(); // a root hub has no port path
    expect(parsePortPath('2-1.4.3')).toEqual({ busNumber: 2, portNumbers: [1, 4, 3] });
    expect(parsePortPath('usb1')).toBeNull();
    expect(parsePortPath('1-1.2:1.0')).toBeNull();
  });
});

describe('sysfs mapping on the fixture trees', () => {
  it('recorder in command mode: ids, strings, tty, no block device', async () => {
    const s = fixture('recorder-command');
    expect(await s.listPortPaths()).toEqual(['1-1', '1-1.2']);
    const d = await s.readDevice('1-1.2');
    expect(d).toMatchObject({
      portPath: '1-1.2',
      busNumber: 1,
      deviceAddress: 5,
      vendorId: 0x2e3c,
      productId: 0x5740,
      deviceClass: 0xef,
      manufacturer: 'DSJ Recorder Co.',
      product: 'DSJ-X1 Body Camera',
      serial: '1234567',
    });
    expect(await s.ttys('1-1.2')).toEqual(['/dev/ttyACM0']);
    expect(await s.blockDevices('1-1.2')).toEqual([]);
    expect(await s.findByAddress(1, 5)).toBe('1-1.2');
    expect(await s.findByAddress(1, 6)).toBeNull();
    expect(await s.waitForTty('1-1.2')).toBe('/dev/ttyACM0');
  });

  it('the same recorder as mass storage: same port, new address, sdb with sdb1', async () => {
    const s = fixture('recorder-storage');
    const d = await s.readDevice('1-1.2');
    expect(d).toMatchObject({ portPath: '1-1.2', deviceAddress: 6, vendorId: 0x2e3c, productId: 0x5741, serial: '1234567' });
    const blocks = await s.blockDevices('1-1.2');
    expect(blocks).toEqual([
      {
        name: 'sdb',
        devPath: '/dev/sdb',
        sizeBytes: 62521344 * 512,
        removable: true,
        readOnly: false,
        partitions: [{ name: 'sdb1', devPath: '/dev/sdb1', number: 1, sizeBytes: 62519296 * 512 }],
      },
    ]);
    expect(volumeToMount(blocks)).toBe('/dev/sdb1');
    expect(await s.ttys('1-1.2')).toEqual([]);
    expect((await s.waitForBlockDevices('1-1.2', { intervalMs: 5 }))[0]!.name).toBe('sdb');
  });

  it('an unrelated USB stick reads as what it is', async () => {
    const s = fixture('usb-stick');
    expect(await s.readDevice('1-1.3')).toMatchObject({
      vendorId: 0x0781,
      productId: 0x5583,
      manufacturer: 'SanDisk',
      product: 'Ultra Fit',
    });
    const blocks = await s.blockDevices('1-1.3');
    expect(blocks.map((b) => [b.name, b.partitions.map((p) => p.devPath)])).toEqual([['sdc', ['/dev/sdc1']]]);
  });

  it('a hub with several recorders: each port on its own, both tty layouts', async () => {
    const s = new Sysfs({ root: path.join(FIXTURES, 'hub-recorders'), devRoot: '/devroot' });
    expect(await s.listPortPaths()).toEqual(['1-1', '1-1.1', '1-1.2', '1-1.4']);
    expect((await s.readDevice('1-1'))!.deviceClass).toBe(0x09);
    expect(await s.ttys('1-1.1')).toEqual(['/devroot/ttyACM0']);
    expect(await s.ttys('1-1.4')).toEqual(['/devroot/ttyACM1']); // 1-1.4:1.0/ttyACM1/tty/ttyACM1
    expect(await s.ttys('1-1.2')).toEqual([]);
    expect(volumeToMount(await s.blockDevices('1-1.2'))).toBe('/devroot/sdb1');
    expect(await s.blockDevices('1-1.1')).toEqual([]);
    expect((await s.readDevice('1-1.4'))!.manufacturer).toBe('Generic');
    expect(await s.findByAddress(1, 10)).toBe('1-1.4');
  });

  it('a port with nothing on it, and names that are not port paths', async () => {
    const s = fixture('hub-recorders');
    expect(await s.readDevice('1-1.3')).toBeNull();
    expect(await s.ttys('1-1.3')).toEqual([]);
    expect(await code(s.readDevice('usb1'))).toBe('BAD_DEVICE');
    expect(await code(s.readDevice('../../etc'))).toBe('BAD_DEVICE');
    expect(await new Sysfs({ root: path.join(FIXTURES, 'no-such-tree') }).listPortPaths()).toEqual([]);
  });

  it('reads a real-sysfs shape: symlinked entries, nested hub children, symlink loops below', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-sysfs-real-'));
    temps.push(root);
    const hub = path.join(root, 'devices/pci0000:00/0000:00:14.0/usb1/1-1');
    await fs.mkdir(hub, { recursive: true });
    await fs.cp(path.join(FIXTURES, 'recorder-storage/bus/usb/devices/1-1'), hub, { recursive: true });
    await fs.cp(path.join(FIXTURES, 'recorder-storage/bus/usb/devices/1-1.2'), path.join(hub, '1-1.2'), { recursive: true });
    const ifDir = path.join(hub, '1-1.2/1-1.2:1.0');
    await fs.symlink('../../../../../..', path.join(ifDir, 'subsystem')); // sysfs is full of links like this
    await fs.symlink('../../../../../bus/usb/devices', path.join(hub, '1-1.2', 'port'));
    const links = path.join(root, 'bus/usb/devices');
    await fs.mkdir(links, { recursive: true });
    await fs.symlink('../../../devices/pci0000:00/0000:00:14.0/usb1/1-1', path.join(links, '1-1'));
    await fs.symlink('../../../devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2', path.join(links, '1-1.2'));
    await fs.symlink('../../../devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2/1-1.2:1.0', path.join(links, '1-1.2:1.0'));
    const s = new Sysfs({ root });
    expect(await s.listPortPaths()).toEqual(['1-1', '1-1.2']);
    expect((await s.readDevice('1-1.2'))!.sysfsPath).toBe(await fs.realpath(path.join(hub, '1-1.2')));
    expect(volumeToMount(await s.blockDevices('1-1.2'))).toBe('/dev/sdb1');
    expect(await s.blockDevices('1-1')).toEqual([]); // the hub's nested child is not the hub's own
  });
});

describe('waiting for what a device brings', () => {
  it('waitForBlockDevices resolves once the disk and its partition have appeared', async () => {
    const root = await tempCopy('recorder-storage');
    const ifDir = path.join(root, 'bus/usb/devices/1-1.2/1-1.2:1.0');
    const parked = path.join(root, 'host6.parked');
    await fs.rename(path.join(ifDir, 'host6'), parked);
    const s = new Sysfs({ root });
    let added = false;
    const waiting = s.waitForBlockDevices('1-1.2', { intervalMs: 10, timeoutMs: 60_000 }).then((b) => ({ b, added }));
    expect(await s.blockDevices('1-1.2')).toEqual([]);
    added = true;
    await fs.rename(parked, path.join(ifDir, 'host6'));
    const { b, added: seenAfterAdd } = await waiting;
    expect(seenAfterAdd).toBe(true);
    expect(b[0]!.partitions.map((p) => p.name)).toEqual(['sdb1']);
  });

  it('waitForTty: TIMEOUT when none comes, ABORTED through the signal, DEVICE_GONE when the device leaves', async () => {
    const s = fixture('recorder-storage');
    expect(await code(s.waitForTty('1-1.2', { timeoutMs: 30, intervalMs: 5 }))).toBe('TIMEOUT');
    const ac = new AbortController();
    const aborted = code(s.waitForTty('1-1.2', { timeoutMs: 60_000, intervalMs: 5, signal: ac.signal }));
    ac.abort();
    expect(await aborted).toBe('ABORTED');
    const root = await tempCopy('recorder-storage');
    const t = new Sysfs({ root });
    const gone = code(t.waitForTty('1-1.2', { timeoutMs: 60_000, intervalMs: 5 }));
    await fs.rm(path.join(root, 'bus/usb/devices/1-1.2'), { recursive: true });
    expect(await gone).toBe('DEVICE_GONE');
  });

  it('waitForDevice waits for the device at the expected address', async () => {
    const root = await tempCopy('recorder-command');
    const s = new Sysfs({ root });
    const devnum = path.join(root, 'bus/usb/devices/1-1.2/devnum');
    await fs.writeFile(devnum, '4\n');
    let rewritten = false;
    const waiting = s.waitForDevice('1-1.2', 5, { intervalMs: 5, timeoutMs: 60_000 }).then((d) => ({ d, rewritten }));
    rewritten = true;
    await fs.writeFile(devnum, '5\n');
    const { d, rewritten: after } = await waiting;
    expect(after).toBe(true);
    expect(d.deviceAddress).toBe(5);
  });
});
