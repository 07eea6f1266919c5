import type { FileRow } from '../store/catalog.ts';

/** HQ's answer to a tus HEAD on one upload: the HTTP status and Upload-Offset (null when absent). */
export interface HqUploadState {
  status: number;
  offset: number | null;
}

/** HEAD on an upload URL (tus 1.0.0); throws on a network error or after `timeoutMs`. */
export async function headUpload(url: string, headers: Record<string, string>, timeoutMs = 15_000): Promise<HqUploadState> {
  const res = await fetch(url, {
    method: 'HEAD',
    headers: { 'Tus-Resumable': '1.0.0', ...headers },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const raw = res.headers.get('upload-offset');
  const offset = raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
  return { status: res.status, offset };
}

/**
 * Whether HQ holds every byte of `f`'s upload, as far as this station knows: true when the station finished it
 * (state uploaded with the whole size sent), otherwise asked of HQ with a HEAD. Returns true or the reason why not.
 */
export async function uploadComplete(f: FileRow, headers: Record<string, string>): Promise<true | string> {
  if (f.state === 'uploaded' && f.upload_offset === f.size) return true;
  if (!f.upload_url) return `the upload is ${f.state} and HQ has not even created it yet (offset unknown)`;
  let hq: HqUploadState;
  try {
    hq = await headUpload(f.upload_url, headers);
  } catch (e) {
    return `cannot ask HQ for the upload's offset: ${(e as Error).message}`;
  }
  if (hq.status < 200 || hq.status >= 300) return `HQ answers HTTP ${hq.status} to a HEAD on the upload`;
  if (hq.offset === f.size) return true;
  return `HQ holds ${hq.offset ?? 'an unknown number of'} of ${f.size} bytes`;
}
