import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckedHotplug } from '../../drivers/usb/checkedHotplug.ts';
import type { UsbLog } from '../../drivers/usb/errors.ts';
import { SysfsPoller, type UsbHotplug, type UsbHotplugEvent, type UsbHotplugEvents } from '../../drivers/usb/hotplug.ts';
import { Sysfs } from '../../drivers/usb/sysfs.ts';
import { waitFor } from '../helpers/ports.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const devicesOf = (root: string) => path.join(root, 'bus/usb/devices');
const HUB: UsbHotplugEvent = { busNumber: 1, deviceAddress: 2, portPath: '1-1' };
const RECORDER: UsbHotplugEvent = { busNumber: 1, deviceAddress: 5, portPath: '1-1.2' };

/**
 * The substitute for libusb, driven by hand: at start it lists what it is told is present, as libusb does from sysfs
 * even without udevd; after that it reports only what the test makes it report.
 */
class HandHotplug extends EventEmitter<UsbHotplugEvents> implements UsbHotplug {
  started = false;
  constructor(private readonly present: UsbHotplugEvent[]) {
    super();
  }
  async start() {
    this.started = true;
    for (const e of this.present) this.emit('attach', e);
  }
  async stop() {
    this.started = false;
  }
}

class LogLines implements UsbLog {
  readonly lines: { level: string; msg: string }[] = [];
  debug(_: object, msg: string) {
    this.lines.push({ level: 'debug', msg });
  }
  info(_: object, msg: string) {
    this.lines.push({ level: 'info', msg });
  }
  warn(_: object, msg: string) {
    this.lines.push({ level: 'warn', msg });
  }
}

const temps: string[] = [];
const sources: UsbHotplug[] = [];
afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
  for (const d of temps.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

/** A /sys-shaped tree with the hub on 1-1 and nothing on its port 2. */
async function treeWithHubOnly(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-checkedhotplug-'));
  temps.push(root);
  await fs.cp(path.join(FIXTURES, 'recorder-command'), root, { recursive: true });
  await fs.rename(path.join(devicesOf(root), '1-1.2'), path.join(root, '.recorder'));
  return root;
}
/** Plugs the recorder in (its directory renamed into place: it appears at once, as in sysfs) or pulls it. */
const plug = (root: string) => fs.rename(path.join(root, '.recorder'), path.join(devicesOf(root), '1-1.2'));
const pull = (root: string) => fs.rename(path.join(devicesOf(root), '1-1.2'), path.join(root, '.recorder'));

function checked(root: string, primary: HandHotplug) {
  const log = new LogLines();
  const poller = new SysfsPoller({ sysfs: new Sysfs({ root }), intervalMs: 20 });
  const hotplug = new CheckedHotplug({ primary, check: poller, graceMs: 200, log });
  sources.push(hotplug);
  const events: string[] = [];
  hotplug.on('attach', (e) => events.push(`attach ${e.portPath} ${e.deviceAddress}`));
  hotplug.on('detach', (e) => events.push(`detach ${e.portPath} ${e.deviceAddress}`));
  return { hotplug, poller, log, events };
}

describe('usb.hotplug auto: libusb checked against sysfs', () => {
  it('libusb lists the devices present but reports no change (no udevd): the first change it misses switches to sysfs', async () => {
    const root = await treeWithHubOnly();
    const libusb = new HandHotplug([HUB]);
    const { hotplug, log, events } = checked(root, libusb);
    await hotplug.start();
    expect(events).toEqual(['attach 1-1 2']);
    expect(hotplug.state).toBe('checking');

    // The recorder is plugged in; libusb says nothing. After the grace, sysfs's view is used: the recorder attaches.
    await plug(root);
    await waitFor('the recorder attached through sysfs', () => events.includes('attach 1-1.2 5'), 30_000, 20);
    expect(hotplug.state).toBe('fallback');
    expect(libusb.started).toBe(false);
    expect(libusb.listenerCount('attach')).toBe(0);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'libusb hotplug delivers no events (no udevd?): polling sysfs instead',
    ]);
    // The hub libusb had reported is not reported again; from now on the poller's changes come through.
    expect(events).toEqual(['attach 1-1 2', 'attach 1-1.2 5']);
    await pull(root);
    await waitFor('the recorder detached through sysfs', () => events.includes('detach 1-1.2 5'), 30_000, 20);
    expect(events).toEqual(['attach 1-1 2', 'attach 1-1.2 5', 'detach 1-1.2 5']);
  });

  it('libusb that reports the change keeps the job: the sysfs check stops, and each change is reported once', async () => {
    const root = await treeWithHubOnly();
    const libusb = new HandHotplug([HUB]);
    const { hotplug, poller, log, events } = checked(root, libusb);
    await hotplug.start();

    // libusb reports the recorder before sysfs is even looked at again: it is proven, the poller stops listening.
    libusb.emit('attach', RECORDER);
    await plug(root);
    await waitFor('libusb proven', () => hotplug.state === 'primary', 30_000, 20);
    expect(poller.listenerCount('attach')).toBe(0);
    expect(log.lines.map((l) => l.msg)).toContain('usb: libusb hotplug delivers events; the sysfs check stops');
    libusb.emit('detach', RECORDER);
    await pull(root);
    expect(events).toEqual(['attach 1-1 2', 'attach 1-1.2 5', 'detach 1-1.2 5']);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('a device libusb missed leaving is detached when it falls back', async () => {
    const root = await treeWithHubOnly();
    await plug(root);
    const libusb = new HandHotplug([HUB, RECORDER]);
    const { hotplug, events } = checked(root, libusb);
    await hotplug.start();
    await pull(root);
    await waitFor('the fallback', () => hotplug.state === 'fallback', 30_000, 20);
    expect(events).toEqual(['attach 1-1 2', 'attach 1-1.2 5', 'detach 1-1.2 5']);
  });
});
