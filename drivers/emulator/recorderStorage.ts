/**
 * The emulated recorder's own storage (its volume directory) as `BC+DEL` changes it: one regular file, named by its
 * `/`-separated path inside the storage, is deleted — never a link, a directory, or anything outside. When the storage
 * is exposed (mass storage), the exposed copy loses the file too, as the station would see it on a real device.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { deletePathProblem, type BcReply } from '../protocols/bc/messages.ts';

async function realParentInside(root: string, rel: string): Promise<string | null> {
  const realRoot = await fs.realpath(root);
  const parent = await fs.realpath(path.dirname(path.join(root, ...rel.split('/')))).catch(() => null);
  return parent && (parent === realRoot || parent.startsWith(realRoot + path.sep)) ? parent : null;
}

/** Deletes `rel` from the storage at `volumeDir` (and from `exposed`, its mounted copy, when given); the reply to send. */
export async function deleteFromStorage(volumeDir: string, exposed: string | null, rel: string): Promise<BcReply> {
  if (deletePathProblem(rel)) return { kind: 'del-refused', reason: 'bad path' };
  const parent = await realParentInside(volumeDir, rel);
  if (!parent) return { kind: 'del-refused', reason: 'no such file' };
  const abs = path.join(parent, path.basename(rel));
  let st;
  try {
    st = await fs.lstat(abs);
  } catch {
    return { kind: 'del-refused', reason: 'no such file' };
  }
  if (!st.isFile()) return { kind: 'del-refused', reason: 'not a file' };
  try {
    await fs.unlink(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      kind: 'del-refused',
      reason: code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? 'read-only' : `io error ${code ?? ''}`.trim(),
    };
  }
  if (exposed) {
    const shown = await realParentInside(exposed, rel);
    if (shown) await fs.unlink(path.join(shown, path.basename(rel))).catch(() => {});
  }
  return { kind: 'del-ok' };
}
