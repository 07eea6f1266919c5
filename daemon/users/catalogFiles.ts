import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.ts';

/**
 * The catalog holds the users' password hashes (an officer's PIN is short: a readable hash is a PIN found offline),
 * so it is not left readable by every local account: dockd takes the "other" permission bits off the database and
 * its WAL files. Its owner and group (dockctl runs as one of them) keep theirs.
 */
export function restrictCatalogFiles(storageDir: string, log: Logger): void {
  for (const name of ['catalog.sqlite', 'catalog.sqlite-wal', 'catalog.sqlite-shm']) {
    const file = path.join(storageDir, name);
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue;
    }
    if (!(mode & 0o007)) continue;
    try {
      chmodSync(file, mode & ~0o007);
      log.info(
        { file, was: mode.toString(8), now: (mode & ~0o007).toString(8) },
        'catalog file no longer readable by other accounts (it holds password hashes)',
      );
    } catch (e) {
      log.warn({ file, err: e }, 'cannot restrict the catalog file: other local accounts can read the password hashes in it');
    }
  }
}
