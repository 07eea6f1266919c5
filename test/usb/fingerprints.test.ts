import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsbError } from '../../drivers/usb/errors.ts';
import {
  BUILTIN_FINGERPRINTS,
  fingerprintTable,
  fingerprintsFromConfig,
  matchFingerprint,
  usbId,
  type FingerprintConfig,
} from '../../drivers/usb/fingerprints.ts';
import { Sysfs } from '../../drivers/usb/sysfs.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/sysfs');
const read = async (tree: string, portPath: string) =>
  (await new Sysfs({ root: path.join(FIXTURES, tree) }).readDevice(portPath))!;

describe('fingerprint matching (built-ins, devices from the fixture trees)', () => {
  const table = fingerprintTable();

  it('recognises the recorder in both modes, the maker-specific entry winning', async () => {
    const cmd = matchFingerprint(table, await read('recorder-command', '1-1.2'));
    expect(cmd).toMatchObject({ driver: 'bc-serial', model: 'DSJ-X1', score: 2 });
    const storage = matchFingerprint(table, await read('recorder-storage', '1-1.2'));
    expect(storage).toMatchObject({ driver: 'mass-storage', model: 'DSJ-X1', score: 2 });
  });

  it('falls back to the generic entry for another maker with the same ids', async () => {
    const generic = matchFingerprint(table, await read('hub-recorders', '1-1.4'));
    expect(generic).toMatchObject({ driver: 'bc-serial', model: 'BC recorder', score: 1 });
    expect(matchFingerprint(table, { vendorId: 0x2e3c, productId: 0x5741 })).toMatchObject({ model: 'BC recorder' });
  });

  it('a USB stick is not a recorder, nor is the hub', async () => {
    expect(matchFingerprint(table, await read('usb-stick', '1-1.3'))).toBeNull();
    expect(matchFingerprint(table, await read('hub-recorders', '1-1'))).toBeNull();
    expect(matchFingerprint(table, { vendorId: 0x2e3c, productId: 0x5742 })).toBeNull();
  });

  it('is pure: same answer twice, table untouched', async () => {
    const dev = await read('hub-recorders', '1-1.1');
    const before = JSON.stringify(BUILTIN_FINGERPRINTS, (_, v) => (v instanceof RegExp ? String(v) : v));
    expect(matchFingerprint(table, dev)).toEqual(matchFingerprint(table, dev));
    expect(JSON.stringify(BUILTIN_FINGERPRINTS, (_, v) => (v instanceof RegExp ? String(v) : v))).toBe(before);
  });
});

describe('fingerprints from config', () => {
  it('adds a recorder family the built-ins do not know', () => {
    const table = fingerprintTable([{ vendorId: '1a2b', productId: '0x00c1', driver: 'mass-storage', model: 'ZF-9' }]);
    expect(matchFingerprint(table, { vendorId: 0x1a2b, productId: 0xc1 })).toMatchObject({
      driver: 'mass-storage',
      model: 'ZF-9',
      score: 1,
    });
    expect(usbId({ vendorId: 0x1a2b, productId: 0xc1 })).toBe('1a2b:00c1');
  });

  it('overrides a built-in at equal specificity; a more specific built-in still wins where it fits', async () => {
    const table = fingerprintTable([{ vendorId: '2e3c', productId: '5740', driver: 'bc-serial', model: 'station override' }]);
    expect(matchFingerprint(table, await read('hub-recorders', '1-1.4'))).toMatchObject({ model: 'station override', score: 1 });
    expect(matchFingerprint(table, await read('hub-recorders', '1-1.1'))).toMatchObject({ model: 'DSJ-X1', score: 2 });
  });

  it('a serial pattern narrows an entry to some units', async () => {
    const table = fingerprintTable([
      { vendorId: 0x2e3c, productId: 0x5740, serial: '^345', driver: 'bc-serial', model: 'batch 345' },
    ]);
    expect(matchFingerprint(table, await read('hub-recorders', '1-1.4'))).toMatchObject({ model: 'batch 345', score: 2 });
    expect(matchFingerprint(table, await read('hub-recorders', '1-1.1'))).toMatchObject({ model: 'DSJ-X1' }); // serial 2345678
    expect(matchFingerprint(table, { vendorId: 0x2e3c, productId: 0x5740 })).toMatchObject({ model: 'BC recorder' }); // no serial
  });

  it('manufacturer patterns are case-insensitive; all patterns of an entry must match', () => {
    const table = fingerprintTable([
      { vendorId: '2e3c', productId: '5740', manufacturer: '^acme', product: 'mk ?2', driver: 'bc-serial', model: 'Acme Mk2' },
    ]);
    expect(
      matchFingerprint(table, { vendorId: 0x2e3c, productId: 0x5740, manufacturer: 'ACME Ltd', product: 'Cam MK2' }),
    ).toMatchObject({ model: 'Acme Mk2', score: 3 });
    expect(
      matchFingerprint(table, { vendorId: 0x2e3c, productId: 0x5740, manufacturer: 'ACME Ltd', product: 'Cam MK3' }),
    ).toMatchObject({ model: 'BC recorder', score: 1 });
  });

  it('rejects a bad entry, naming it and the key', () => {
    const bad = (e: Partial<FingerprintConfig>) => {
      try {
        fingerprintsFromConfig([
          { vendorId: '2e3c', productId: '5740', driver: 'bc-serial', model: 'x', ...e } as FingerprintConfig,
        ]);
      } catch (err) {
        expect(err).toBeInstanceOf(UsbError);
        expect((err as UsbError).code).toBe('BAD_FINGERPRINT');
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ vendorId: 'zz' })).toMatch(/^usb\.fingerprints\[0\]\.vendorId: /);
    expect(bad({ productId: 0x10000 })).toMatch(/productId/);
    expect(bad({ driver: 'hid' as never })).toMatch(/driver: expected one of bc-serial, mass-storage/);
    expect(bad({ serial: '(' })).toMatch(/serial: invalid regular expression/);
    expect(bad({ model: '' })).toMatch(/model/);
  });
});
