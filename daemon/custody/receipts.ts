import type { KeyObject } from 'node:crypto';
import { Ajv } from 'ajv';
import type { Config } from '../config.ts';
import type { EventBus } from '../events.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import { LogThrottle } from '../status/logThrottle.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import { fileEvent } from '../status/stationEvents.ts';
import { uploadComplete } from './hqUpload.ts';
import { parsePublicKey } from './keys.ts';
import { receiptSignatureValid } from './signatures.ts';

/** What HQ may send on P/S/receipt. Extra keys are allowed (HQ may add its own references). */
const RECEIPT_SCHEMA = {
  type: 'object',
  required: ['sha256', 'ok'],
  properties: {
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
    ok: { type: 'boolean' },
    stationId: { type: 'string' },
    at: { type: 'string' },
    sig: { type: 'string' },
  },
};
let compiled: ReturnType<Ajv['compile']> | undefined;
/**
 * The receipt schema's validator, compiled at the first receipt: compiling it (and Ajv's meta-schema) was ≈ 50 ms of
 * the daemon's start.
 */
function receiptValidator(): ReturnType<Ajv['compile']> {
  compiled ??= new Ajv({ strict: false }).compile(RECEIPT_SCHEMA);
  return compiled;
}
/** Every malformed receipt is audited; the journal gets at most one line a minute about them. */
const malformedLog = new LogThrottle();
/** Likewise for receipts not signed by HQ: a flood of forgeries is all in the audit trail, not all in the journal. */
const refusedLog = new LogThrottle();

interface ReceiptDoc {
  sha256: string;
  ok: boolean;
  stationId?: string;
  at?: string;
  sig?: string;
}

export type ReceiptOutcome =
  | 'archived'
  | 'verified'
  | 'reupload'
  | 'duplicate'
  | 'unknown'
  | 'mismatched'
  | 'unconfirmed'
  | 'refused'
  | 'malformed'
  | 'local-corrupt';

export interface ReceiptDeps {
  config: Config;
  catalog: Catalog;
  objects: ObjectStore;
  board: StatusBoard;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

const keys = new Map<string, KeyObject>();

function receiptKey(config: Config): KeyObject | null {
  const pem = config.hq.receiptKey;
  if (!pem) return null;
  if (!keys.has(pem)) keys.set(pem, parsePublicKey(pem));
  return keys.get(pem)!;
}

/**
 * Whether the receipt comes from HQ. With hq.receiptKey it must carry HQ's signature over {stationId, sha256, ok, at}
 * for this station (a receipt for another station, or another sha256, does not verify). Without a key nothing can be
 * told apart: `signed` is false, and such a receipt may archive but never lets anything be deleted.
 */
function authenticate(config: Config, doc: ReceiptDoc): { signed: boolean } | { refused: string } {
  const key = receiptKey(config);
  if (!key) return { signed: false };
  if (doc.sig === undefined) return { refused: "unsigned (hq.receiptKey is set: receipts must carry HQ's signature)" };
  if (doc.stationId === undefined || doc.at === undefined)
    return { refused: 'signed, but without stationId or at (the signature covers {stationId, sha256, ok, at})' };
  if (!receiptSignatureValid(key, { stationId: doc.stationId, sha256: doc.sha256, ok: doc.ok, at: doc.at, sig: doc.sig })) {
    return { refused: 'bad signature (not made with hq.receiptKey over this stationId, sha256, ok and at)' };
  }
  if (doc.stationId !== config.station.id)
    return { refused: `signed by HQ for station ${JSON.stringify(doc.stationId)}, not this one (${config.station.id})` };
  return { signed: true };
}

/**
 * Applies one receipt from HQ. ok:true for a recording whose whole upload HQ holds archives it; ok:false (HQ's hash
 * differs) sends it back to be uploaded from scratch with an alarm. A receipt not from HQ (hq.receiptKey), for a
 * recording still being uploaded, malformed, for an unknown sha256, a file not uploaded or a repeat changes nothing and
 * is audited. Only a signed receipt sets receipt_at, which wiping the recorder and freeing the local copy require.
 */
export async function applyReceipt(deps: ReceiptDeps, raw: Buffer | string): Promise<ReceiptOutcome> {
  const { catalog, board, log } = deps;
  const text = raw.toString();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  const validate = receiptValidator();
  if (doc === undefined || !validate(doc)) {
    const error =
      doc === undefined ? 'not JSON' : `${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message}`;
    catalog.audit('receipt.malformed', null, { payload: text.slice(0, 500), error });
    malformedLog.warn(log, 'malformed', { error }, 'malformed receipt from HQ ignored (audited as receipt.malformed)');
    return 'malformed';
  }
  const receipt = doc as unknown as ReceiptDoc;
  const { ok } = receipt;
  const sha256 = receipt.sha256.toLowerCase();
  const auth = authenticate(deps.config, receipt);
  if ('refused' in auth) {
    catalog.audit('receipt.refused', sha256, { ok, reason: auth.refused, payload: text.slice(0, 500) });
    refusedLog.warn(log, 'refused', { sha256, reason: auth.refused }, 'receipt not from HQ ignored (audited as receipt.refused)');
    return 'refused';
  }
  const { signed } = auth;
  const file = catalog.bySha256(sha256);
  if (!file) {
    catalog.audit('receipt.ignored', sha256, { ok, signed, reason: 'no such recording at this station' });
    return 'unknown';
  }
  if (file.state === 'archived' && ok && signed && !file.receipt_at) {
    // Archived on an unverified receipt earlier (no key then); HQ's signed word now makes it final.
    const at = deps.clock.now().toISOString();
    catalog.receiptVerified(file, at);
    deps.bus.emit('audit.head');
    clearRefusals(board, file.id);
    return 'verified';
  }
  if (file.state === 'archived' && (ok || file.local_deleted_at)) {
    // A repeat; or HQ doubting a copy whose local object retention has already freed (nothing to send again).
    catalog.audit('receipt.duplicate', sha256, { ok, signed, id: file.id, ...(ok ? {} : { localFreed: file.local_deleted_at }) });
    if (!ok)
      board.raise(
        'UPLOAD_REFUSED',
        `receipt:${file.id}`,
        `HQ now reports a hash mismatch for archived ${file.filename} (${sha256.slice(0, 12)}), whose local copy was freed on ${file.local_deleted_at}`,
      );
    else clearRefusals(board, file.id);
    return 'duplicate';
  }
  if (file.state !== 'uploaded' && file.state !== 'uploading' && file.state !== 'archived') {
    catalog.audit('receipt.ignored', sha256, { ok, signed, id: file.id, reason: `recording is ${file.state}, not uploaded` });
    return 'mismatched';
  }
  if (ok) return archive(deps, file, signed);
  return reupload(deps, file);
}

/** ok:true for an uploaded (or uploading) recording: archived once the station knows HQ holds all of it. */
async function archive(deps: ReceiptDeps, file: FileRow, signed: boolean): Promise<ReceiptOutcome> {
  const { catalog, log } = deps;
  const sha256 = file.sha256!;
  const complete = await uploadComplete(file, deps.config.hq.tus.headers);
  if (complete !== true) {
    catalog.audit('receipt.ignored', sha256, { ok: true, signed, id: file.id, reason: `upload not finished: ${complete}` });
    log.warn({ file: file.id, sha256, reason: complete }, 'receipt for an upload this station has not finished: nothing changed');
    return 'unconfirmed';
  }
  const at = deps.clock.now().toISOString();
  const moved = catalog.transition(
    file.id,
    'archived',
    { receipt_at: signed ? at : null, archived_at: at, upload_offset: file.size },
    {
      from: ['uploaded', 'uploading'],
      event: fileEvent('file.archived', { ...file, state: 'archived' }, { signedReceipt: signed }),
    },
  );
  if (!moved) {
    // Changed while HQ was asked (archived by a receipt just before, or sent back): treat as a repeat.
    catalog.audit('receipt.duplicate', sha256, { ok: true, signed, id: file.id, state: catalog.get(file.id)?.state });
    return 'duplicate';
  }
  clearRefusals(deps.board, file.id);
  if (signed) log.info({ file: file.id, sha256 }, 'HQ confirmed a verified copy: archived');
  else
    log.warn(
      { file: file.id, sha256 },
      'archived on an unsigned receipt (no hq.receiptKey): it will not be wiped from the recorder nor freed here',
    );
  deps.bus.emit('audit.head');
  return 'archived';
}

/** HQ holds a verified copy now: alarms about its refusal (uploader) or a mismatching copy (receipt) are over. */
function clearRefusals(board: StatusBoard, id: number): void {
  board.clear(`refused:${id}`);
  board.clear(`receipt:${id}`);
}

/** HQ's copy differs. Our stored object is the reference: check it before sending it again. */
async function reupload(deps: ReceiptDeps, file: FileRow): Promise<ReceiptOutcome> {
  const { catalog, board } = deps;
  const sha256 = file.sha256!;
  const local = await deps.objects.rehash(sha256).catch(() => null);
  if (!local || local.sha256 !== sha256) {
    catalog.audit('receipt.mismatch', sha256, { id: file.id, localIntact: false });
    board.raise(
      'OBJECT_CORRUPT',
      `object:${sha256}`,
      `HQ reports a hash mismatch for ${file.filename} and the local copy no longer matches its hash either: check with dockctl verify`,
    );
    return 'local-corrupt';
  }
  catalog.transition(
    file.id,
    'ready',
    { upload_url: null, upload_offset: 0, receipt_at: null, archived_at: null, last_error: 'HQ receipt: hash mismatch' },
    {
      from: ['uploaded', 'uploading', 'archived'],
      event: fileEvent('file.reupload', { ...file, state: 'ready' }, { reason: 'HQ receipt reported a hash mismatch' }),
    },
  );
  board.raise(
    'UPLOAD_REFUSED',
    `receipt:${file.id}`,
    `HQ's copy of ${file.filename} (${sha256.slice(0, 12)}) does not match; uploading it again from the start`,
  );
  deps.bus.emit('upload.wanted');
  return 'reupload';
}
