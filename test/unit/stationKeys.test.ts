/**
 * Keys on real files: the station's Ed25519 key pair made in the store at the first start (private key 0600, refused
 * when readable by others or when its public half was replaced), hq.receiptKey read like a secret (inline, {file},
 * {env}) and refused when it is not an Ed25519 public key, and the receipt signature over {stationId, sha256, ok, at}.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../daemon/config.ts';
import {
  ed25519PublicKeyPem,
  KeyError,
  openStationKey,
  parsePublicKey,
  publicKeyBase64,
  readStationPublicKey,
  STATION_KEY_FILE,
  STATION_PUBLIC_KEY_FILE,
} from '../../daemon/custody/keys.ts';
import { receiptSignatureValid, receiptSignedBytes, signReceipt } from '../../daemon/custody/signatures.ts';
import { tempDir } from '../helpers/daemon.ts';

const SHA = 'ab'.repeat(32);

function doc(receiptKey?: unknown): Record<string, unknown> {
  return {
    station: { id: 'st-1' },
    storage: { dir: 'store' },
    dock: { mountRoots: ['dock'] },
    hq: {
      tus: { endpoint: 'http://127.0.0.1:1080/files/' },
      mqtt: { url: 'mqtt://127.0.0.1:1883' },
      ...(receiptKey === undefined ? {} : { receiptKey }),
    },
  };
}

describe('the station key pair in the store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('dockd-keys-');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('is made at the first open (private key 0600, public key beside it) and the same pair is opened afterwards', async () => {
    expect(readStationPublicKey(dir)).toBeNull();
    const first = openStationKey(dir);
    expect((await fs.stat(path.join(dir, STATION_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(path.join(dir, STATION_KEY_FILE), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(await fs.readFile(path.join(dir, STATION_PUBLIC_KEY_FILE), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(first.privateKey.asymmetricKeyType).toBe('ed25519');
    expect(first.publicKeyBase64).toMatch(/^MCowBQYDK2VwAyEA[A-Za-z0-9+/]{43}=$/); // SPKI DER of an Ed25519 key
    const again = openStationKey(dir);
    expect(again.publicKeyBase64).toBe(first.publicKeyBase64);
    expect(publicKeyBase64(readStationPublicKey(dir)!)).toBe(first.publicKeyBase64);
    expect((await fs.readdir(dir)).sort()).toEqual([STATION_KEY_FILE, STATION_PUBLIC_KEY_FILE].sort()); // no temp files left
  });

  it('refuses a private key readable by others, naming the file and the fix', async () => {
    openStationKey(dir);
    await fs.chmod(path.join(dir, STATION_KEY_FILE), 0o644);
    expect(() => openStationKey(dir)).toThrow(KeyError);
    expect(() => openStationKey(dir)).toThrow(new RegExp(`${STATION_KEY_FILE}.*readable by others \\(mode 0644\\).*chmod 600`));
  });

  it("refuses a public key that is not the private key's (one of them was replaced), and a damaged one", async () => {
    openStationKey(dir);
    const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await fs.writeFile(path.join(dir, STATION_PUBLIC_KEY_FILE), other);
    expect(() => openStationKey(dir)).toThrow(/does not belong to the private key/);
    await fs.writeFile(path.join(dir, STATION_PUBLIC_KEY_FILE), 'garbage');
    expect(() => openStationKey(dir)).toThrow(/not a public key/);
    expect(() => readStationPublicKey(dir)).toThrow(KeyError);
  });
});

describe('hq.receiptKey', () => {
  let dir: string;
  const hq = generateKeyPairSync('ed25519');
  const pem = hq.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  beforeEach(async () => {
    dir = await tempDir('dockd-receipt-key-');
  });
  afterEach(async () => {
    delete process.env.DOCKD_TEST_RECEIPT_KEY;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('is read inline, from {file} or {env}, as PEM or base64 SPKI DER; absent means none', async () => {
    await fs.writeFile(path.join(dir, 'hq.pub'), pem);
    process.env.DOCKD_TEST_RECEIPT_KEY = publicKeyBase64(hq.publicKey);
    for (const v of [pem, { file: 'hq.pub' }, { env: 'DOCKD_TEST_RECEIPT_KEY' }]) {
      const c = validateConfig(doc(v), dir);
      expect(publicKeyBase64(parsePublicKey(c.hq.receiptKey!))).toBe(publicKeyBase64(hq.publicKey));
    }
    expect(validateConfig(doc(), dir).hq.receiptKey).toBeUndefined();
  });

  it('anything but an Ed25519 public key is one config error naming hq.receiptKey', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const priv = hq.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    for (const [bad, why] of [
      [rsa, /rsa key, not Ed25519/],
      ['not a key', /not a public key/],
      [priv.replace(/PRIVATE/g, 'PUBLIC'), /not a public key/],
      [priv, /a private key: give the public key only/],
    ] as const) {
      let err: unknown;
      try {
        validateConfig(doc(bad), dir);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^config: hq\.receiptKey: /);
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).not.toContain('\n');
    }
    expect(() => validateConfig(doc({ file: 'missing.pub' }), dir)).toThrow(
      /hq\.receiptKey: cannot read secret file missing\.pub: ENOENT/,
    );
  });
});

describe("ed25519PublicKeyPem (the config's receipt key without loading node:crypto when it is canonical)", () => {
  /** What crypto makes of `text`: the key's PEM, or parsePublicKey's error. */
  const outcome = (f: (t: string) => string, text: string) => {
    try {
      return { pem: f(text) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };
  const viaCrypto = (t: string) => parsePublicKey(t).export({ type: 'spki', format: 'pem' }).toString();
  const HEADER = Buffer.from('302a300506032b6570032100', 'hex');
  const armour = (b64: string, eol = '\n') => `-----BEGIN PUBLIC KEY-----${eol}${b64}${eol}-----END PUBLIC KEY-----${eol}`;

  it('gives what crypto gives for every Ed25519 key, in every form a config holds it', () => {
    const keys = [Buffer.alloc(32, 0), Buffer.alloc(32, 0xff), ...Array.from({ length: 200 }, () => randomBytes(32))];
    keys.push(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(12));
    for (const k of keys) {
      const b64 = Buffer.concat([HEADER, k]).toString('base64');
      for (const text of [armour(b64), armour(b64, '\r\n'), `  ${armour(b64)}\n\n`, b64, `${b64}\n`]) {
        const expected = viaCrypto(text);
        expect(expected).toBe(armour(b64)); // the canonical PEM: what the fast path returns without crypto
        expect(ed25519PublicKeyPem(text), text).toBe(expected);
      }
    }
  });

  it('leaves every other text to crypto: the same key or the same error as parsePublicKey', () => {
    const good = Buffer.concat([HEADER, randomBytes(32)]);
    const b64 = good.toString('base64');
    const last = b64.length - 2; // the last character before "=": its two low bits are unused
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const nonCanonical = `${b64.slice(0, last)}${alphabet[alphabet.indexOf(b64[last]) | 1]}=`;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' });
    const ed448 = generateKeyPairSync('ed448').publicKey.export({ type: 'spki', format: 'pem' });
    const priv = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const texts = [
      String(rsa),
      String(ec),
      String(ed448),
      priv,
      'not a key',
      '',
      armour(nonCanonical),
      nonCanonical,
      armour(b64).replace('PUBLIC KEY', 'public key'),
      armour(`${b64.slice(0, 30)}\n${b64.slice(30)}`), // the body over two lines
      armour(b64.replace(/=$/, '')), // no padding
      Buffer.concat([HEADER, randomBytes(31)]).toString('base64'),
      Buffer.concat([HEADER, randomBytes(33)]).toString('base64'),
      Buffer.concat([Buffer.from('302a300506032b6571032100', 'hex'), randomBytes(32)]).toString('base64'), // 1.3.101.113
      `${b64.slice(0, 20)}*${b64.slice(21)}`,
    ];
    for (const text of texts) expect(outcome(ed25519PublicKeyPem, text), text).toEqual(outcome(viaCrypto, text));
    expect(outcome(ed25519PublicKeyPem, nonCanonical)).toEqual({ pem: armour(b64) }); // crypto reads the same key
  });
});

describe('receipt signatures', () => {
  const hq = generateKeyPairSync('ed25519');

  it('sign the exact JSON of {stationId, sha256, ok, at}; any change, another key or garbage fails', () => {
    const r = signReceipt(hq.privateKey, { stationId: 'st-1', sha256: SHA, ok: true, at: '2026-12-01T08:00:00.000Z' });
    expect(receiptSignedBytes(r).toString()).toBe(
      `{"stationId":"st-1","sha256":"${SHA}","ok":true,"at":"2026-12-01T08:00:00.000Z"}`,
    );
    expect(Buffer.from(r.sig, 'base64')).toHaveLength(64);
    expect(receiptSignatureValid(hq.publicKey, r)).toBe(true);
    for (const changed of [
      { stationId: 'st-2' },
      { sha256: SHA.toUpperCase() },
      { sha256: 'cd'.repeat(32) },
      { ok: false },
      { at: '2026-12-01T08:00:00.001Z' },
    ]) {
      expect(receiptSignatureValid(hq.publicKey, { ...r, ...changed }), JSON.stringify(changed)).toBe(false);
    }
    expect(receiptSignatureValid(generateKeyPairSync('ed25519').publicKey, r)).toBe(false);
    for (const sig of ['', 'AAAA', '!!!!', `${r.sig}AA`, r.sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))]) {
      expect(receiptSignatureValid(hq.publicKey, { ...r, sig }), sig).toBe(false);
    }
  });
});
