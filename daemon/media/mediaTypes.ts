import path from 'node:path';

export type MediaKind = 'video' | 'audio' | 'photo';

const KIND_BY_EXT: Record<string, MediaKind> = {
  '.mp4': 'video',
  '.mov': 'video',
  '.avi': 'video',
  '.ts': 'video',
  '.wav': 'audio',
  '.mp3': 'audio',
  '.aac': 'audio',
  '.amr': 'audio',
  '.m4a': 'audio',
  '.jpg': 'photo',
  '.jpeg': 'photo',
};

const MIME_BY_EXT: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.mov': 'video/quicktime',
  '.avi': 'video/x-msvideo',
  '.ts': 'video/mp2t',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.aac': 'audio/aac',
  '.amr': 'audio/amr',
  '.m4a': 'audio/mp4',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/** The recording kind for a file name, or null when the extension is not a recording. */
export function mediaKind(fileName: string): MediaKind | null {
  return KIND_BY_EXT[path.extname(fileName).toLowerCase()] ?? null;
}

export function mimeType(fileName: string): string {
  return MIME_BY_EXT[path.extname(fileName).toLowerCase()] ?? 'application/octet-stream';
}
