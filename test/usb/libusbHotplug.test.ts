import { describe, expect, it } from 'vitest';
import { UsbError } from '../../drivers/usb/errors.ts';
import { LibusbHotplug, loadUsbModule, type UsbHotplugEvent } from '../../drivers/usb/hotplug.ts';

/** The native `usb` package (libusb) on this machine: no USB hardware is needed for it to load and listen. */
describe('LibusbHotplug over the real usb package', () => {
  it('loads, listens for attach/detach while started, and lets go on stop', async () => {
    const usb = await loadUsbModule();
    const emitter = usb as unknown as { listenerCount(e: string): number };
    const before = emitter.listenerCount('attach');
    const hotplug = new LibusbHotplug();
    const attached: UsbHotplugEvent[] = [];
    hotplug.on('attach', (e) => attached.push(e));
    await hotplug.start();
    try {
      expect(emitter.listenerCount('attach')).toBe(before + 1);
      expect(emitter.listenerCount('detach')).toBe(before + 1);
      // every device present at start is reported (root hubs excepted), each with a port path
      const present = usb.getDeviceList().filter((d) => (d.portNumbers ?? []).length > 0);
      expect(attached.map((e) => e.portPath).sort()).toEqual(
        present.map((d) => `${d.busNumber}-${d.portNumbers!.join('.')}`).sort(),
      );
    } finally {
      await hotplug.stop();
    }
    expect(emitter.listenerCount('attach')).toBe(before);
    expect(emitter.listenerCount('detach')).toBe(before);
  });

  it('reports a clear LIBUSB_UNAVAILABLE when the native module cannot load, instead of crashing', async () => {
    const hotplug = new LibusbHotplug({
      load: () => loadUsbModule(() => import('usb-native-module-that-is-not-installed' as string)),
    });
    const err = await hotplug.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsbError);
    expect((err as UsbError).code).toBe('LIBUSB_UNAVAILABLE');
    expect((err as Error).message).toMatch(/native 'usb' module could not be loaded .*sysfs poller/);
    await hotplug.stop(); // stopping what never started is harmless
  });

  it('reports LIBUSB_UNAVAILABLE when libusb itself failed to initialise', async () => {
    const err = await loadUsbModule(async () => ({ usb: { INIT_ERROR: -99, getDeviceList: () => [], on() {}, off() {} } })).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as UsbError).code).toBe('LIBUSB_UNAVAILABLE');
    expect((err as Error).message).toMatch(/libusb failed to initialise \(error -99\)/);
  });
});
