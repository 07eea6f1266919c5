/**
 * "HQ" of the tests: an Ed25519 key pair made once per test file. makeWorld configures its public key as
 * hq.receiptKey, and the receipt helpers sign with its private key, as a real HQ signs its receipts.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { signReceipt, type SignedReceipt } from '../../daemon/custody/signatures.ts';

export const TEST_HQ = generateKeyPairSync('ed25519');
export const TEST_HQ_PUBLIC_PEM = TEST_HQ.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** A receipt signed by the test HQ (or by `key`, to forge one), dated now unless `at` is given. */
export function signedReceipt(
  stationId: string,
  sha256: string,
  ok: boolean,
  opts: { at?: string; key?: KeyObject } = {},
): SignedReceipt {
  return signReceipt(opts.key ?? TEST_HQ.privateKey, { stationId, sha256, ok, at: opts.at ?? new Date().toISOString() });
}
