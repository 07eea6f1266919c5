import type { KeyObject } from 'node:crypto';
import { nodeCrypto } from '../nodeCrypto.ts';
import fs from 'node:fs';
import path from 'node:path';
import { CodedError } from '../../drivers/errors.ts';

/** The station's Ed25519 key pair, kept in the store: it signs every published audit head. */
export const STATION_KEY_FILE = 'station-key.pem';
export const STATION_PUBLIC_KEY_FILE = 'station-key.pub.pem';

/** A key file that is missing, unreadable, of the wrong kind or too open: `message` names the file and what to do. */
export class KeyError extends CodedError<'KEY_INVALID'> {
  constructor(message: string) {
    super('KEY_INVALID', message);
  }
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as published (audit heads, upload metadata): base64 of its SPKI DER form. */
  publicKeyBase64: string;
}

export function publicKeyBase64(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

/**
 * An Ed25519 public key given as PEM (`-----BEGIN PUBLIC KEY-----`) or as the base64 of its SPKI DER form (what dockd
 * publishes). Throws a plain Error saying what is wrong; callers add which key it was.
 */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  // createPublicKey would quietly derive the public half of a private key: a private key here is a mistake to name.
  if (/PRIVATE KEY-----/.test(trimmed))
    throw new Error('a private key: give the public key only (the private key must stay with its owner)');
  let key: KeyObject;
  try {
    key = trimmed.startsWith('-----BEGIN')
      ? nodeCrypto().createPublicKey(trimmed)
      : nodeCrypto().createPublicKey({ key: Buffer.from(trimmed, 'base64'), format: 'der', type: 'spki' });
  } catch (e) {
    throw new Error(`not a public key (PEM, or base64 of SPKI DER): ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${key.asymmetricKeyType} key, not Ed25519`);
  return key;
}

/**
 * The base64 of an Ed25519 SubjectPublicKeyInfo (RFC 8410): its fixed 12-byte DER header (SEQUENCE, the algorithm
 * 1.3.101.112, BIT STRING), then the 32 bytes of the key.
 */
const ED25519_SPKI_BASE64 = /^MCowBQYDK2VwAyEA[A-Za-z0-9+/]{43}=$/;

/**
 * An Ed25519 public key (PEM, or base64 of its SPKI DER form) as the PEM that crypto's `export()` gives, for the
 * config. A key in the canonical form — `BEGIN PUBLIC KEY` armour (or none) around the 60 characters of its SPKI DER
 * — is checked by its fixed layout, without loading node:crypto (≈ 10 ms and 40 of Node's modules on Node 24, paid
 * by every `dockctl` command): crypto accepts every such key, since any 32 bytes are an Ed25519 public key to OpenSSL.
 * Anything else goes through crypto, which accepts it or says what is wrong (`parsePublicKey`).
 */
export function ed25519PublicKeyPem(text: string): string {
  const trimmed = text.trim();
  const armoured = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=]+)\r?\n-----END PUBLIC KEY-----$/.exec(trimmed);
  const body = armoured ? armoured[1] : trimmed;
  // Canonical base64 only (the unused low bits of the last character zero): crypto's decoder then reads the same bytes.
  if (ED25519_SPKI_BASE64.test(body) && Buffer.from(body, 'base64').toString('base64') === body)
    return `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
  return parsePublicKey(text).export({ type: 'spki', format: 'pem' }).toString();
}

/** Writes `text` to `file` only if it does not exist yet: temp + fsync + link, so a reader never sees half a key. */
function writeOnce(file: string, text: string, mode: number): boolean {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false; // made meanwhile by someone else: keep theirs
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
    const dir = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  }
}

function readPrivateKey(file: string): KeyObject {
  const st = fs.statSync(file);
  // Readable by others, the key proves nothing: refuse rather than sign with it.
  if (st.mode & 0o077)
    throw new KeyError(
      `private key ${file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 it`,
    );
  let key: KeyObject;
  try {
    key = nodeCrypto().createPrivateKey(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KeyError(`private key ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new KeyError(`private key ${file} is an ${key.asymmetricKeyType} key, not Ed25519`);
  return key;
}

/**
 * Opens the Ed25519 key pair in `privateFile` (mode 0600) and `publicFile`, making both the first time. The public
 * file lets readers without access to the private key (dockctl run by an admin) check signatures; it must match.
 */
export function openKeyPair(privateFile: string, publicFile: string): KeyPair {
  fs.mkdirSync(path.dirname(privateFile), { recursive: true });
  if (!fs.existsSync(privateFile)) {
    const { privateKey } = nodeCrypto().generateKeyPairSync('ed25519');
    writeOnce(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  }
  const privateKey = readPrivateKey(privateFile);
  const publicKey = nodeCrypto().createPublicKey(privateKey);
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  if (!writeOnce(publicFile, pem, 0o644)) {
    let stored: KeyObject;
    try {
      stored = parsePublicKey(fs.readFileSync(publicFile, 'utf8'));
    } catch (e) {
      throw new KeyError(`public key ${publicFile}: ${(e as Error).message}`);
    }
    if (publicKeyBase64(stored) !== publicKeyBase64(publicKey)) {
      throw new KeyError(
        `public key ${publicFile} does not belong to the private key ${privateFile}: one of them was replaced; restore both from a backup (or move both away to make a new pair, and tell HQ)`,
      );
    }
  }
  return { privateKey, publicKey, publicKeyBase64: publicKeyBase64(publicKey) };
}

/** The station's key pair in the store, made at the first start. */
export function openStationKey(storeDir: string): KeyPair {
  return openKeyPair(path.join(storeDir, STATION_KEY_FILE), path.join(storeDir, STATION_PUBLIC_KEY_FILE));
}

/** The station's public key from the store (no private key needed), or null when the daemon has not made one yet. */
export function readStationPublicKey(storeDir: string): KeyObject | null {
  const file = path.join(storeDir, STATION_PUBLIC_KEY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new KeyError(`station public key ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return parsePublicKey(text);
  } catch (e) {
    throw new KeyError(`station public key ${file}: ${(e as Error).message}`);
  }
}

const publishedKeys = new Map<string, string | null>();

/** The station's public key as sent in upload metadata (`stationKey`), read once per store. */
export function stationKeyForUpload(storeDir: string): string | undefined {
  if (!publishedKeys.get(storeDir)) {
    const key = readStationPublicKey(storeDir);
    publishedKeys.set(storeDir, key ? publicKeyBase64(key) : null);
  }
  return publishedKeys.get(storeDir) ?? undefined;
}
