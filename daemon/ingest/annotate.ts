import type { Catalog, FileRow, FileState } from '../store/catalog.ts';
import { parseCapturedAt } from '../media/capturedAt.ts';
import { fieldTextProblem } from './fieldText.ts';
import { describeMissing, missingFields, type RequiredField } from './metadata.ts';

/** Only recordings still at the station can be annotated: what has gone to HQ is not changed. */
export const ANNOTATABLE_STATES: FileState[] = ['needs-annotation', 'ready'];

/** The longest value a metadata field may hold (as for sidecars). */
export const MAX_ANNOTATION_FIELD = 500;

export interface AnnotationInput {
  caseNo?: string;
  purpose?: string;
  place?: string;
  collector?: string;
  /** 采集时间, only for a recording whose name and container carry none: ISO 8601 with a zone offset. */
  capturedAt?: string;
}

export type AnnotateErrorCode = 'INVALID' | 'NOT_FOUND' | 'NOT_ANNOTATABLE' | 'CONFLICT';

export type AnnotateResult =
  | { ok: true; file: FileRow; state: FileState; missing: RequiredField[]; reason: string | null }
  | { ok: false; code: AnnotateErrorCode; message: string };

/**
 * Completes a recording's metadata (案件编号 and 证明对象 required; 采集地点 and 采集人 kept when not given): the
 * recording becomes `ready` when all five required fields are present, else stays `needs-annotation` with the reason.
 * One transaction with its history line and the `file.annotated` event (so also the audit trail). Used by
 * `dockctl annotate` and the station page alike.
 */
export function annotateRecording(catalog: Catalog, idOrPrefix: string, v: AnnotationInput, by: string): AnnotateResult {
  const caseNo = v.caseNo?.trim();
  const purpose = v.purpose?.trim();
  if (!caseNo || !purpose)
    return { ok: false, code: 'INVALID', message: 'case no. (案件编号) and purpose (证明对象) are required' };
  for (const [k, value] of Object.entries(v)) {
    if (typeof value === 'string' && value.trim().length > MAX_ANNOTATION_FIELD)
      return { ok: false, code: 'INVALID', message: `${k} is longer than ${MAX_ANNOTATION_FIELD} characters` };
    const bad = typeof value === 'string' ? fieldTextProblem(k, value) : null;
    if (bad) return { ok: false, code: 'INVALID', message: bad };
  }
  const capturedAt = v.capturedAt?.trim();
  if (capturedAt) {
    const parsed = parseCapturedAt(capturedAt);
    if (!parsed.ok) return { ok: false, code: 'INVALID', message: parsed.message };
  }
  const { file, error } = catalog.resolve(idOrPrefix);
  if (!file) return { ok: false, code: 'NOT_FOUND', message: error! };
  if (!ANNOTATABLE_STATES.includes(file.state)) {
    return {
      ok: false,
      code: 'NOT_ANNOTATABLE',
      message: `recording #${file.id} is ${file.state}; only ${ANNOTATABLE_STATES.join(' or ')} recordings can be annotated`,
    };
  }
  if (capturedAt) {
    if (file.captured_at)
      return {
        ok: false,
        code: 'INVALID',
        message: `recording #${file.id} already has a capture time (${file.captured_at}, from its ${file.captured_at_source}); it is not changed`,
      };
  }
  const next = {
    case_no: caseNo,
    purpose,
    place: v.place?.trim() || file.place,
    collector: v.collector?.trim() || file.collector,
    ...(capturedAt ? { captured_at: capturedAt, captured_at_source: 'annotation' } : {}),
  };
  const missing = missingFields({
    caseNo: next.case_no,
    purpose: next.purpose,
    place: next.place,
    collector: next.collector,
    capturedAt: capturedAt || file.captured_at,
  });
  const to: FileState = missing.length ? 'needs-annotation' : 'ready';
  const reason = missing.length ? describeMissing(missing) : null;
  const old = {
    caseNo: file.case_no,
    purpose: file.purpose,
    place: file.place,
    collector: file.collector,
    ...(capturedAt ? { capturedAt: null } : {}),
  };
  const changed = catalog.transition(
    file.id,
    to,
    { ...next, reason },
    {
      from: ANNOTATABLE_STATES,
      detail: `annotated by ${by}`,
      event: {
        type: 'file.annotated',
        id: file.id,
        sha256: file.sha256,
        state: to,
        by,
        old,
        new: {
          caseNo: next.case_no,
          purpose: next.purpose,
          place: next.place,
          collector: next.collector,
          ...(capturedAt ? { capturedAt } : {}),
        },
        missing,
      },
    },
  );
  if (!changed) return { ok: false, code: 'CONFLICT', message: `recording #${file.id} changed state meanwhile; try again` };
  return { ok: true, file: catalog.get(file.id)!, state: to, missing, reason };
}
