import { describe, expect, it } from 'vitest';
import { pairStorage } from '../../daemon/dock/storagePairing.ts';

const A = { serial: '1234567', portPath: '1-1', usbSerial: 'DSJ-1234567' };
const B = { serial: '7654321', portPath: '1-2', usbSerial: 'DSJ-7654321' };
const NO_USB_SERIAL = { serial: '5555555', portPath: '1-3', usbSerial: null };

describe('pairing a USB storage with the recorder that asked for it', () => {
  it('on the same port path: the recorder there, whatever the storage says its serial is', () => {
    expect(pairStorage([A, B], { portPath: '1-2', usbSerial: null })).toBe(B);
    expect(pairStorage([A, B], { portPath: '1-2', usbSerial: 'DSJ-1234567' })).toBe(B);
  });

  it('a SuperSpeed storage on the USB 3 bus (1-1 → 2-1): paired by the USB serial of its command-mode device', () => {
    expect(pairStorage([A, B], { portPath: '2-1', usbSerial: 'DSJ-1234567' })).toBe(A);
    expect(pairStorage([A, B], { portPath: '2-2', usbSerial: ' DSJ-7654321 ' })).toBe(B);
  });

  it('or by the serial the recorder gave on its control channel, when the storage carries that', () => {
    expect(pairStorage([A, NO_USB_SERIAL], { portPath: '2-3', usbSerial: '5555555' })).toBe(NO_USB_SERIAL);
  });

  it('never guesses: no serial, an unknown one, or two recorders that fit leave it unpaired', () => {
    expect(pairStorage([A, B], { portPath: '2-1', usbSerial: null })).toBeUndefined();
    expect(pairStorage([A, B], { portPath: '2-1', usbSerial: '' })).toBeUndefined();
    expect(pairStorage([A, B], { portPath: '2-1', usbSerial: 'STICK-0001' })).toBeUndefined();
    const twin = { serial: '9999999', portPath: '2-1', usbSerial: 'DSJ-1234567' };
    expect(pairStorage([A, { ...twin, portPath: '3-1' }], { portPath: '2-1', usbSerial: 'DSJ-1234567' })).toBeUndefined();
    expect(pairStorage([], { portPath: '1-1', usbSerial: 'DSJ-1234567' })).toBeUndefined();
  });

  it("only on the twin port: a storage in another bay never takes a waiting recorder's identity, even with its iSerial", () => {
    // Recorders of one model may share one iSerial: the storage at 1-2 (no recorder waits there) is not A's at 1-1.
    expect(pairStorage([A], { portPath: '1-2', usbSerial: 'DSJ-1234567' })).toBeUndefined();
    expect(pairStorage([A], { portPath: '2-2', usbSerial: 'DSJ-1234567' })).toBeUndefined();
    const hub = { serial: '1111111', portPath: '1-1.3', usbSerial: 'DSJ-1111111' };
    expect(pairStorage([hub], { portPath: '2-1.3', usbSerial: 'DSJ-1111111' })).toBe(hub);
    const twinSerial = { serial: '9999999', portPath: '1-4', usbSerial: 'DSJ-1234567' };
    expect(pairStorage([A, twinSerial], { portPath: '2-1', usbSerial: 'DSJ-1234567' })).toBe(A);
  });
});
