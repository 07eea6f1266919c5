import { nodeCrypto } from '../nodeCrypto.ts';

/** A password as dockd keeps it: a scrypt hash with its own salt (the plain text is not kept). */
export interface PasswordHash {
  salt: Buffer;
  hash: Buffer;
  N: number;
  r: number;
  p: number;
}

const PARAMS = { N: 16384, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

/** The longest password or PIN dockd hashes: anything longer is refused before scrypt ever sees it. */
export const MAX_PASSWORD_LENGTH = 1024;

export function hashPassword(plain: string): PasswordHash {
  const salt = nodeCrypto().randomBytes(16);
  return { salt, hash: nodeCrypto().scryptSync(plain.normalize('NFC'), salt, KEY_LENGTH, PARAMS), ...PARAMS };
}

/** Compares in constant time (scrypt of the candidate, then timingSafeEqual). */
export function verifyPassword(candidate: string, h: PasswordHash): Promise<boolean> {
  return new Promise((resolve, reject) => {
    nodeCrypto().scrypt(candidate.normalize('NFC'), h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p }, (err, key) => {
      if (err) reject(err);
      else resolve(nodeCrypto().timingSafeEqual(key, h.hash));
    });
  });
}

/** The text form kept in the catalog: `scrypt$N$r$p$<salt base64>$<key base64>`. */
export function encodeHash(h: PasswordHash): string {
  return ['scrypt', h.N, h.r, h.p, h.salt.toString('base64'), h.hash.toString('base64')].join('$');
}

export function decodeHash(text: string): PasswordHash {
  const [kind, N, r, p, salt, hash] = text.split('$');
  const n = [N, r, p].map(Number);
  if (kind !== 'scrypt' || n.some((v) => !Number.isInteger(v) || v < 1) || !salt || !hash)
    throw new Error('not a dockd password hash');
  return { N: n[0], r: n[1], p: n[2], salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
}

/** A hash no password matches, compared against when a login names no known user (so both take as long). */
export const NO_USER_HASH: PasswordHash = { salt: Buffer.alloc(16), hash: Buffer.alloc(KEY_LENGTH, 0xff), ...PARAMS };

export type Role = 'officer' | 'admin';

/**
 * What dockd accepts as a new password: an officer's PIN (typed on the station's touch screen) at least 6
 * characters, an admin's password at least 10; never control characters, never longer than MAX_PASSWORD_LENGTH.
 * Returns the problem, or null.
 */
export function passwordProblem(role: Role, plain: string): string | null {
  const min = role === 'officer' ? 6 : 10;
  const what = role === 'officer' ? 'a PIN' : 'a password';
  if ([...plain].length < min) return `${what} needs at least ${min} characters`;
  if (plain.length > MAX_PASSWORD_LENGTH) return `${what} may have at most ${MAX_PASSWORD_LENGTH} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
  if (/[\u0000-\u001f\u007f]/.test(plain)) return `${what} must not contain control characters`;
  return null;
}
