import { sign, verify, type KeyObject } from 'node:crypto';
import { publicKeyBase64, parsePublicKey, type KeyPair } from './keys.ts';

/*
 * The two signed messages between a station and HQ (README, "The HQ contract"). The signed bytes are the UTF-8 of
 * JSON.stringify of an object with exactly the listed keys in the listed order, each value as it appears in the
 * message; `sig` is the base64 of the Ed25519 signature over those bytes.
 */

/** HQ → station on P/S/receipt. */
export interface ReceiptFields {
  stationId: string;
  sha256: string;
  ok: boolean;
  at: string;
}
export type SignedReceipt = ReceiptFields & { sig: string };

/** Station → HQ on P/S/audit (retained); `key` is the station's public key (base64 SPKI DER). */
export interface AuditHeadFields {
  stationId: string;
  seq: number;
  hash: string;
  at: string;
}
export type SignedAuditHead = AuditHeadFields & { key: string; sig: string };

export function receiptSignedBytes(r: ReceiptFields): Buffer {
  return Buffer.from(JSON.stringify({ stationId: r.stationId, sha256: r.sha256, ok: r.ok, at: r.at }), 'utf8');
}

export function auditHeadSignedBytes(h: AuditHeadFields): Buffer {
  return Buffer.from(JSON.stringify({ stationId: h.stationId, seq: h.seq, hash: h.hash, at: h.at }), 'utf8');
}

function signatureValid(bytes: Buffer, key: KeyObject, sig: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) return false;
  try {
    return verify(null, bytes, key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}

/** What HQ does (and the embedded HQ, and tests acting as HQ). */
export function signReceipt(privateKey: KeyObject, r: ReceiptFields): SignedReceipt {
  return {
    stationId: r.stationId,
    sha256: r.sha256,
    ok: r.ok,
    at: r.at,
    sig: sign(null, receiptSignedBytes(r), privateKey).toString('base64'),
  };
}

export function receiptSignatureValid(publicKey: KeyObject, r: ReceiptFields & { sig: string }): boolean {
  return signatureValid(receiptSignedBytes(r), publicKey, r.sig);
}

export function signAuditHead(pair: KeyPair, h: AuditHeadFields): SignedAuditHead {
  const fields = { stationId: h.stationId, seq: h.seq, hash: h.hash, at: h.at };
  return {
    ...fields,
    key: pair.publicKeyBase64,
    sig: sign(null, auditHeadSignedBytes(fields), pair.privateKey).toString('base64'),
  };
}

/**
 * Checks a kept audit head (the JSON of a P/S/audit message): its shape, and its signature by `expectedKey` (the
 * station's key; a head that names another key fails even if it verifies with that one). Returns the head or why not.
 */
export function checkAuditHead(doc: unknown, expectedKey: KeyObject): { head: SignedAuditHead } | { error: string } {
  const d = doc as Partial<SignedAuditHead> | null;
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return { error: 'not a JSON object' };
  if (
    typeof d.stationId !== 'string' ||
    !Number.isInteger(d.seq) ||
    (d.seq as number) < 0 ||
    typeof d.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(d.hash) ||
    typeof d.at !== 'string'
  ) {
    return { error: 'not an audit head: needs stationId, seq (integer), hash (64 hex digits) and at' };
  }
  if (typeof d.sig !== 'string' || !d.sig) return { error: 'the head is not signed (no sig)' };
  if (typeof d.key === 'string') {
    let named: KeyObject;
    try {
      named = parsePublicKey(d.key);
    } catch (e) {
      return { error: `the head's key: ${(e as Error).message}` };
    }
    if (publicKeyBase64(named) !== publicKeyBase64(expectedKey))
      return {
        error: `the head was signed with another key (${d.key.slice(-12)}) than this station's (${publicKeyBase64(expectedKey).slice(-12)})`,
      };
  }
  const head = d as SignedAuditHead;
  if (!signatureValid(auditHeadSignedBytes(head), expectedKey, head.sig))
    return { error: 'bad signature: the head is not the one this station signed' };
  return { head };
}
