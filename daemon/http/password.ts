import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

/** An admin password as dockd keeps it: a scrypt hash with its own salt (the plain text is not kept). */
export interface PasswordHash { salt: Buffer; hash: Buffer; N: number; r: number; p: number }

const PARAMS = { N: 16384, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

export function hashPassword(plain: string): PasswordHash {
  const salt = randomBytes(16);
  return { salt, hash: scryptSync(plain.normalize('NFC'), salt, KEY_LENGTH, PARAMS), ...PARAMS };
}

/** Compares in constant time (scrypt of the candidate, then timingSafeEqual). */
export function verifyPassword(candidate: string, h: PasswordHash): Promise<boolean> {
  return new Promise((resolve, reject) => {
    scrypt(candidate.normalize('NFC'), h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p }, (err, key) => {
      if (err) reject(err);
      else resolve(timingSafeEqual(key, h.hash));
    });
  });
}
