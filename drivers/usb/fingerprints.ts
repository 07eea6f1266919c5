import { UsbError } from './errors.ts';
import { hex4 } from './sysfs.ts';

/**
 * Declarative recognition of body-worn recorders: a table of fingerprints (VID:PID, optionally a manufacturer, product
 * or serial pattern) → the driver that handles the device. Matching is a pure function that scores every entry that
 * fits and takes the most specific one; a device nothing fits is not a recorder (a USB stick stays untouched).
 *
 * Drivers:
 * - `bc-serial`: the recorder is in command mode and exposes a CDC-ACM tty speaking the BC+ protocol
 *   (drivers/protocols/bc); it is told to switch to mass storage, re-enumerates, and comes back as `mass-storage`.
 * - `mass-storage`: the recorder's storage (USB mass storage): mount it read-only and ingest it.
 */
export type RecorderDriver = 'bc-serial' | 'mass-storage';
export const RECORDER_DRIVERS: readonly RecorderDriver[] = ['bc-serial', 'mass-storage'];

export interface Fingerprint {
  vendorId: number;
  productId: number;
  /** Tested against the manufacturer string descriptor (case-insensitive unless the RegExp says otherwise). */
  manufacturer?: RegExp;
  product?: RegExp;
  /** Tested against the serial string descriptor. */
  serial?: RegExp;
  driver: RecorderDriver;
  model: string;
  /** Where the entry came from; at equal specificity `config` beats `builtin`. */
  origin: 'builtin' | 'config';
}

/** A fingerprint as written in config (`usb.fingerprints`, say): ids as hex strings ("2e3c") or numbers. */
export interface FingerprintConfig {
  vendorId: string | number;
  productId: string | number;
  manufacturer?: string;
  product?: string;
  serial?: string;
  driver: RecorderDriver;
  model: string;
}

/** What matching looks at: the device's descriptor ids and strings. */
export interface UsbIdentity {
  vendorId: number;
  productId: number;
  manufacturer?: string;
  product?: string;
  serial?: string;
}

export interface FingerprintMatch {
  driver: RecorderDriver;
  model: string;
  /** 1 for VID:PID plus 1 per matching string pattern; higher is more specific. */
  score: number;
  fingerprint: Fingerprint;
}

/**
 * Built-in fingerprints. The 2e3c:5740 / 2e3c:5741 pair is an EXAMPLE (what the recorder emulator and the fixtures
 * under fixtures/sysfs/ use, and what systemd/99-dockd.rules lists): a recorder family whose command mode enumerates
 * as a CDC-ACM device 2e3c:5740 and whose storage mode enumerates as 2e3c:5741. Real stations add their recorders'
 * ids through config; keep systemd/99-dockd.rules in step with the ids in use.
 */
export const BUILTIN_FINGERPRINTS: readonly Fingerprint[] = Object.freeze([
  { vendorId: 0x2e3c, productId: 0x5740, driver: 'bc-serial', model: 'BC recorder', origin: 'builtin' },
  { vendorId: 0x2e3c, productId: 0x5741, driver: 'mass-storage', model: 'BC recorder', origin: 'builtin' },
  { vendorId: 0x2e3c, productId: 0x5740, manufacturer: /^DSJ\b/i, driver: 'bc-serial', model: 'DSJ-X1', origin: 'builtin' },
  { vendorId: 0x2e3c, productId: 0x5741, manufacturer: /^DSJ\b/i, driver: 'mass-storage', model: 'DSJ-X1', origin: 'builtin' },
] satisfies Fingerprint[]);

/** Turns config entries into fingerprints; throws BAD_FINGERPRINT naming the entry and the key. */
export function fingerprintsFromConfig(entries: readonly FingerprintConfig[], key = 'usb.fingerprints'): Fingerprint[] {
  return entries.map((e, i) => {
    const where = `${key}[${i}]`;
    const id = (v: unknown, name: string): number => {
      const n =
        typeof v === 'number'
          ? v
          : typeof v === 'string' && /^(0x)?[0-9a-fA-F]{1,4}$/.test(v)
            ? parseInt(v.replace(/^0x/, ''), 16)
            : NaN;
      if (!Number.isInteger(n) || n < 0 || n > 0xffff)
        throw new UsbError('BAD_FINGERPRINT', `${where}.${name}: expected a 16-bit id such as "2e3c", got ${JSON.stringify(v)}`);
      return n;
    };
    const re = (v: unknown, name: string, flags: string): RegExp | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '')
        throw new UsbError('BAD_FINGERPRINT', `${where}.${name}: expected a regular expression string`);
      try {
        return new RegExp(v, flags);
      } catch (err) {
        throw new UsbError('BAD_FINGERPRINT', `${where}.${name}: invalid regular expression: ${(err as Error).message}`);
      }
    };
    if (!RECORDER_DRIVERS.includes(e.driver)) {
      throw new UsbError(
        'BAD_FINGERPRINT',
        `${where}.driver: expected one of ${RECORDER_DRIVERS.join(', ')}, got ${JSON.stringify(e.driver)}`,
      );
    }
    if (typeof e.model !== 'string' || e.model === '')
      throw new UsbError('BAD_FINGERPRINT', `${where}.model: expected a non-empty string`);
    const manufacturer = re(e.manufacturer, 'manufacturer', 'i');
    const product = re(e.product, 'product', 'i');
    const serial = re(e.serial, 'serial', '');
    return {
      vendorId: id(e.vendorId, 'vendorId'),
      productId: id(e.productId, 'productId'),
      ...(manufacturer ? { manufacturer } : {}),
      ...(product ? { product } : {}),
      ...(serial ? { serial } : {}),
      driver: e.driver,
      model: e.model,
      origin: 'config' as const,
    };
  });
}

/** The table the daemon uses: config entries first, then the built-ins. */
export function fingerprintTable(config: readonly FingerprintConfig[] = []): Fingerprint[] {
  return [...fingerprintsFromConfig(config), ...BUILTIN_FINGERPRINTS];
}

/**
 * The best fingerprint for a device, or null when none fits. An entry fits when VID and PID are equal and every
 * pattern it has matches (a pattern on a string the device lacks does not match). Highest score wins; ties go to
 * config over built-in, then to the earlier entry.
 */
export function matchFingerprint(table: readonly Fingerprint[], device: UsbIdentity): FingerprintMatch | null {
  let best: FingerprintMatch | null = null;
  for (const fp of table) {
    if (fp.vendorId !== device.vendorId || fp.productId !== device.productId) continue;
    let score = 1;
    let fits = true;
    for (const [pattern, value] of [
      [fp.manufacturer, device.manufacturer],
      [fp.product, device.product],
      [fp.serial, device.serial],
    ] as const) {
      if (!pattern) continue;
      if (value === undefined || !pattern.test(value)) {
        fits = false;
        break;
      }
      score += 1;
    }
    if (!fits) continue;
    const better =
      !best || score > best.score || (score === best.score && fp.origin === 'config' && best.fingerprint.origin === 'builtin');
    if (better) best = { driver: fp.driver, model: fp.model, score, fingerprint: fp };
  }
  return best;
}

/** `2e3c:5740`, for logs. */
export function usbId(device: { vendorId: number; productId: number }): string {
  return `${hex4(device.vendorId)}:${hex4(device.productId)}`;
}
