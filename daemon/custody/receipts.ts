import { Ajv } from 'ajv';
import type { EventBus } from '../events.ts';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import type { Catalog } from '../store/catalog.ts';
import type { ObjectStore } from '../store/objects.ts';
import { fileEvent } from '../ingest/classify.ts';

/** What HQ may send on P/S/receipt. Extra keys are allowed (HQ may add its own references). */
const RECEIPT_SCHEMA = {
  type: 'object',
  required: ['sha256', 'ok'],
  properties: { sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' }, ok: { type: 'boolean' } },
};
const validate = new Ajv({ strict: false }).compile(RECEIPT_SCHEMA);

export type ReceiptOutcome = 'archived' | 'reupload' | 'duplicate' | 'unknown' | 'mismatched' | 'malformed' | 'local-corrupt';

export interface ReceiptDeps { catalog: Catalog; objects: ObjectStore; board: StatusBoard; bus: EventBus; log: Logger; now: () => Date }

/**
 * Applies one receipt from HQ. ok:true for an uploaded file archives it; ok:false (HQ's hash differs) sends it back to
 * be uploaded from scratch with an alarm; anything else (malformed, unknown sha256, a file not uploaded, a repeat) is
 * ignored and audited.
 */
export async function applyReceipt(deps: ReceiptDeps, raw: Buffer | string): Promise<ReceiptOutcome> {
  const { catalog, board, log } = deps;
  const text = raw.toString();
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { doc = undefined; }
  if (doc === undefined || !validate(doc)) {
    const error = doc === undefined ? 'not JSON' : `${validate.errors?.[0]?.instancePath || '/'} ${validate.errors?.[0]?.message}`;
    catalog.audit('receipt.malformed', null, { payload: text.slice(0, 500), error });
    log.warn({ error }, 'malformed receipt from HQ ignored');
    return 'malformed';
  }
  const { ok } = doc as { sha256: string; ok: boolean };
  const sha256 = (doc as { sha256: string }).sha256.toLowerCase();
  const file = catalog.bySha256(sha256);
  const at = deps.now().toISOString();
  if (!file) {
    catalog.audit('receipt.ignored', sha256, { ok, reason: 'no such recording at this station' });
    return 'unknown';
  }
  if (file.state === 'archived' && (ok || file.local_deleted_at)) {
    // A repeat; or HQ doubting a copy whose local object retention has already freed (nothing to send again).
    catalog.audit('receipt.duplicate', sha256, { ok, id: file.id, ...(ok ? {} : { localFreed: file.local_deleted_at }) });
    if (!ok) board.raise('UPLOAD_REFUSED', `receipt:${file.id}`, `HQ now reports a hash mismatch for archived ${file.filename} (${sha256.slice(0, 12)}), whose local copy was freed on ${file.local_deleted_at}`);
    return 'duplicate';
  }
  if (file.state !== 'uploaded' && file.state !== 'uploading' && file.state !== 'archived') {
    catalog.audit('receipt.ignored', sha256, { ok, id: file.id, reason: `recording is ${file.state}, not uploaded` });
    return 'mismatched';
  }
  if (ok && file.state !== 'archived') {
    catalog.transition(file.id, 'archived', { receipt_at: at, archived_at: at, upload_offset: file.size }, {
      from: ['uploaded', 'uploading'], event: fileEvent('file.archived', { ...file, state: 'archived' }),
    });
    log.info({ file: file.id, sha256 }, 'HQ confirmed a verified copy: archived');
    deps.bus.emit('audit.head');
    return 'archived';
  }
  // HQ's copy differs. Our stored object is the reference: check it before sending it again.
  const local = await deps.objects.rehash(sha256).catch(() => null);
  if (!local || local.sha256 !== sha256) {
    catalog.audit('receipt.mismatch', sha256, { id: file.id, localIntact: false });
    board.raise('OBJECT_CORRUPT', `object:${sha256}`, `HQ reports a hash mismatch for ${file.filename} and the local copy no longer matches its hash either: check with dockctl verify`);
    return 'local-corrupt';
  }
  catalog.transition(file.id, 'ready', { upload_url: null, upload_offset: 0, receipt_at: null, archived_at: null, last_error: 'HQ receipt: hash mismatch' }, {
    from: ['uploaded', 'uploading', 'archived'], event: fileEvent('file.reupload', { ...file, state: 'ready' }, { reason: 'HQ receipt reported a hash mismatch' }),
  });
  board.raise('UPLOAD_REFUSED', `receipt:${file.id}`, `HQ's copy of ${file.filename} (${sha256.slice(0, 12)}) does not match; uploading it again from the start`);
  deps.bus.emit('upload.wanted');
  return 'reupload';
}
