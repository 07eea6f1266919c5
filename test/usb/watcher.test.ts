import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { UsbLog } from '../../drivers/usb/errors.ts';
import { fingerprintTable } from '../../drivers/usb/fingerprints.ts';
import { SysfsPoller, type UsbHotplug, type UsbHotplugEvent, type UsbHotplugEvents } from '../../drivers/usb/hotplug.ts';
import { Sysfs } from '../../drivers/usb/sysfs.ts';
import { UsbWatcher, type UsbWatcherEvents } from '../../drivers/usb/watcher.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const devicesOf = (root: string) => path.join(root, 'bus/usb/devices');

/** Records every watcher event; `next` resolves with the first not yet taken event of a type that fits. */
class Recorder {
  readonly all: Array<{ type: keyof UsbWatcherEvents; payload: any }> = [];
  private taken = new Set<number>();
  private waiters: Array<() => void> = [];
  constructor(w: UsbWatcher) {
    for (const type of [
      'recorder-attached',
      'recorder-detached',
      'recorder-failed',
      'device-ignored',
      'hotplug-error',
    ] as const) {
      w.on(type, (payload: unknown) => {
        this.all.push({ type, payload });
        for (const f of this.waiters.splice(0)) f();
      });
    }
  }
  async next(type: keyof UsbWatcherEvents, fits: (p: any) => boolean = () => true): Promise<any> {
    for (;;) {
      const i = this.all.findIndex((e, k) => !this.taken.has(k) && e.type === type && fits(e.payload));
      if (i >= 0) {
        this.taken.add(i);
        return this.all[i]!.payload;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  count(type: keyof UsbWatcherEvents): number {
    return this.all.filter((e) => e.type === type).length;
  }
}

class LogLines implements UsbLog {
  readonly lines: Array<{ level: string; obj: object; msg: string }> = [];
  debug(obj: object, msg: string) {
    this.lines.push({ level: 'debug', obj, msg });
  }
  info(obj: object, msg: string) {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg: string) {
    this.lines.push({ level: 'warn', obj, msg });
  }
}

/** A hotplug source the test drives by hand (the substitute for libusb, as the pty is for a serial port). */
class ManualHotplug extends EventEmitter<UsbHotplugEvents> implements UsbHotplug {
  async start() {}
  async stop() {}
  attach(ev: UsbHotplugEvent) {
    this.emit('attach', ev);
  }
  detach(ev: UsbHotplugEvent) {
    this.emit('detach', ev);
  }
}

const temps: string[] = [];
const watchers: UsbWatcher[] = [];
afterEach(async () => {
  for (const w of watchers.splice(0)) await w.stop();
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function tempRoot(from: string, without: string[] = []): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-usbwatch-'));
  temps.push(root);
  await fs.cp(path.join(FIXTURES, from), root, { recursive: true });
  for (const p of without) await fs.rm(path.join(devicesOf(root), p), { recursive: true });
  return root;
}

/** Plugs a device in: its directory is built beside the tree and renamed in, so it appears at once (as in sysfs). */
async function plug(root: string, fromTree: string, portPath: string, prepare?: (dir: string) => Promise<void>): Promise<void> {
  const staging = path.join(root, `.staging-${portPath}`);
  await fs.cp(path.join(devicesOf(path.join(FIXTURES, fromTree)), portPath), staging, { recursive: true });
  await prepare?.(staging);
  await fs.rename(staging, path.join(devicesOf(root), portPath));
}
const unplug = (root: string, portPath: string) => fs.rm(path.join(devicesOf(root), portPath), { recursive: true });

function startWatcher(root: string, host: { hotplug?: UsbHotplug; log?: UsbLog } = {}, waitTimeoutMs = 60_000) {
  const sysfs = new Sysfs({ root });
  const poller = new SysfsPoller({ sysfs, intervalMs: 20 });
  const hotplug = host.hotplug ?? poller;
  const w = new UsbWatcher(
    { hotplug, sysfs, fingerprints: fingerprintTable(), ...(host.log ? { log: host.log } : {}) },
    { pollMs: 10, waitTimeoutMs },
  );
  watchers.push(w);
  return { w, poller, events: new Recorder(w) };
}

describe('UsbWatcher over the SysfsPoller on a changing /sys-shaped tree', () => {
  it('attach in command mode → switch to storage (paired by port path) → stick ignored → detach', async () => {
    const root = await tempRoot('recorder-command', ['1-1.2']);
    const log = new LogLines();
    const { w, poller, events } = startWatcher(root, { log });
    await w.start();
    expect(await events.next('device-ignored')).toMatchObject({ portPath: '1-1', reason: 'hub' });

    // docked in command mode
    await plug(root, 'recorder-command', '1-1.2');
    const cmd = await events.next('recorder-attached');
    expect(cmd).toMatchObject({ portPath: '1-1.2', deviceAddress: 5, driver: 'bc-serial', model: 'DSJ-X1', tty: '/dev/ttyACM0' });
    expect(cmd.device.serial).toBe('1234567');
    expect(cmd.reenumeratedFrom).toBeUndefined();
    expect(cmd.blockDevices).toBeUndefined();

    // BC+UDISKEN=1: it leaves and comes back as mass storage on the same port; its disk shows up a moment later
    await unplug(root, '1-1.2');
    let diskAdded = false;
    await plug(root, 'recorder-storage', '1-1.2', async (dir) => {
      await fs.rename(path.join(dir, '1-1.2:1.0/host6'), path.join(root, '.host6'));
    });
    expect(await events.next('recorder-detached')).toEqual({
      portPath: '1-1.2',
      busNumber: 1,
      deviceAddress: 5,
      driver: 'bc-serial',
      model: 'DSJ-X1',
    });
    const attachedLater = events.next('recorder-attached').then((p) => ({ p, diskAdded }));
    await new Promise((r) => setTimeout(r, 100)); // let a few polls see the device without its disk
    diskAdded = true;
    await fs.rename(path.join(root, '.host6'), path.join(devicesOf(root), '1-1.2/1-1.2:1.0/host6'));
    const { p: storage, diskAdded: afterDisk } = await attachedLater;
    expect(afterDisk).toBe(true);
    expect(storage).toMatchObject({ portPath: '1-1.2', deviceAddress: 6, driver: 'mass-storage', model: 'DSJ-X1' });
    expect(storage.blockDevices.map((b: any) => [b.devPath, b.partitions.map((p: any) => p.devPath)])).toEqual([
      ['/dev/sdb', ['/dev/sdb1']],
    ]);
    expect(storage.tty).toBeUndefined();
    expect(w.recorders().map((r) => [r.portPath, r.driver])).toEqual([['1-1.2', 'mass-storage']]);

    // an unrelated stick, plugged twice: ignored each time, logged once
    for (let i = 0; i < 2; i++) {
      await plug(root, 'usb-stick', '1-1.3');
      expect(await events.next('device-ignored', (p) => p.portPath === '1-1.3')).toEqual({
        portPath: '1-1.3',
        reason: 'unknown',
        vendorId: '0781',
        productId: '5583',
        manufacturer: 'SanDisk',
        product: 'Ultra Fit',
      });
      await unplug(root, '1-1.3');
      await poller.pollOnce(); // the poller has seen it gone (same address next time: only a gap tells them apart)
    }
    expect(log.lines.filter((l) => /not a known recorder/.test(l.msg))).toHaveLength(1);

    // undocked
    await unplug(root, '1-1.2');
    expect(await events.next('recorder-detached')).toMatchObject({ portPath: '1-1.2', deviceAddress: 6, driver: 'mass-storage' });
    expect(w.recorders()).toEqual([]);
    expect(events.count('recorder-attached')).toBe(2);
    expect(events.count('recorder-failed')).toBe(0);
  });

  it('a hub with several recorders: each announced under its own port path', async () => {
    const root = await tempRoot('hub-recorders');
    const { w, events } = startWatcher(root);
    await w.start();
    const seen = await Promise.all(
      ['1-1.1', '1-1.2', '1-1.4'].map((p) => events.next('recorder-attached', (e) => e.portPath === p)),
    );
    expect(seen.map((e) => [e.portPath, e.driver, e.model, e.tty ?? e.blockDevices[0].partitions[0].devPath])).toEqual([
      ['1-1.1', 'bc-serial', 'DSJ-X1', '/dev/ttyACM0'],
      ['1-1.2', 'mass-storage', 'DSJ-X1', '/dev/sdb1'],
      ['1-1.4', 'bc-serial', 'BC recorder', '/dev/ttyACM1'],
    ]);
    expect(await events.next('device-ignored')).toMatchObject({ portPath: '1-1', reason: 'hub' });
    await unplug(root, '1-1.1');
    expect(await events.next('recorder-detached')).toMatchObject({ portPath: '1-1.1' });
    expect(
      w
        .recorders()
        .map((r) => r.portPath)
        .sort(),
    ).toEqual(['1-1.2', '1-1.4']);
  });

  it('a recorder whose tty never appears fails with TIMEOUT, and the failure does not stop the others', async () => {
    const root = await tempRoot('recorder-command', ['1-1.2']);
    const { w, events } = startWatcher(root, {}, 200);
    await w.start();
    await plug(root, 'recorder-command', '1-1.2', (dir) => fs.rm(path.join(dir, '1-1.2:1.0/tty'), { recursive: true }));
    const failed = await events.next('recorder-failed');
    expect(failed).toMatchObject({ portPath: '1-1.2', driver: 'bc-serial', model: 'DSJ-X1' });
    expect(failed.error.code).toBe('TIMEOUT');
    await plug(root, 'hub-recorders', '1-1.4');
    expect(await events.next('recorder-attached')).toMatchObject({ portPath: '1-1.4', tty: '/dev/ttyACM1' });
  });
});

describe('UsbWatcher pairing by port path, not address (hotplug events driven by hand)', () => {
  it('a new address on a port replaces the old one; a late detach of the old address is ignored', async () => {
    const root = await tempRoot('recorder-command');
    const hotplug = new ManualHotplug();
    const { w, events } = startWatcher(root, { hotplug });
    await w.start();
    hotplug.attach({ busNumber: 1, deviceAddress: 5, portPath: '1-1.2' });
    expect(await events.next('recorder-attached')).toMatchObject({ deviceAddress: 5, driver: 'bc-serial' });
    hotplug.attach({ busNumber: 1, deviceAddress: 5, portPath: '1-1.2' }); // duplicate: nothing new

    // re-enumerated as storage, announced before the old address's detach (libusb gives no order guarantee)
    await unplug(root, '1-1.2');
    await plug(root, 'recorder-storage', '1-1.2');
    hotplug.attach({ busNumber: 1, deviceAddress: 6, portPath: null }); // no port numbers: found through sysfs
    expect(await events.next('recorder-detached')).toMatchObject({ portPath: '1-1.2', deviceAddress: 5 });
    const storage = await events.next('recorder-attached');
    expect(storage).toMatchObject({ portPath: '1-1.2', deviceAddress: 6, driver: 'mass-storage' });
    expect(storage.reenumeratedFrom).toEqual({ driver: 'bc-serial', model: 'DSJ-X1', deviceAddress: 5, serial: '1234567' });

    hotplug.detach({ busNumber: 1, deviceAddress: 5, portPath: '1-1.2' }); // late, stale
    hotplug.detach({ busNumber: 1, deviceAddress: 6, portPath: '1-1.2' });
    expect(await events.next('recorder-detached')).toMatchObject({ deviceAddress: 6, driver: 'mass-storage' });
    expect(events.all.filter((e) => e.type === 'recorder-detached').map((e) => e.payload.deviceAddress)).toEqual([5, 6]);
    expect(events.count('recorder-attached')).toBe(2);
  });

  it('a device that leaves while its tty is awaited is dropped without an event', async () => {
    const root = await tempRoot('recorder-command');
    await fs.rm(path.join(devicesOf(root), '1-1.2/1-1.2:1.0/tty'), { recursive: true });
    const hotplug = new ManualHotplug();
    const log = new LogLines();
    const { w, events } = startWatcher(root, { hotplug, log });
    await w.start();
    hotplug.attach({ busNumber: 1, deviceAddress: 5, portPath: '1-1.2' });
    hotplug.detach({ busNumber: 1, deviceAddress: 5, portPath: '1-1.2' });
    hotplug.attach({ busNumber: 1, deviceAddress: 2, portPath: '1-1' }); // the hub, processed after
    expect(await events.next('device-ignored')).toMatchObject({ portPath: '1-1', reason: 'hub' });
    await w.stop();
    expect(events.count('recorder-attached') + events.count('recorder-detached') + events.count('recorder-failed')).toBe(0);
  });
});
