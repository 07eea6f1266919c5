/** Read-only looks at a daemon's store dir: object paths, the objects present, catalog columns dockctl does not print. */
import fs from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';

export function objectPath(storeDir: string, sha256: string): string {
  return path.join(storeDir, 'objects', 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
}

/** The sha256 names of every object file in the store. */
export async function storedObjectNames(storeDir: string): Promise<string[]> {
  const root = path.join(storeDir, 'objects', 'sha256');
  const out: string[] = [];
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out.sort();
}

/** Every object file in the store (path relative to objects/sha256), to prove there are no partial or stray objects. */
export async function listObjects(storeDir: string): Promise<string[]> {
  const root = path.join(storeDir, 'objects', 'sha256');
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(root, p));
    }
  }
  await walk(root);
  return out.sort();
}

export interface CatalogFile {
  id: number;
  sha256: string | null;
  sm3: string | null;
  state: string;
  size: number;
  filename: string;
  receipt_at: string | null;
  archived_at: string | null;
  local_deleted_at: string | null;
}

/** Reads the catalog with SQLite itself (read-only), for columns dockctl does not print. */
export function catalogRows(storeDir: string): CatalogFile[] {
  const db = new Database(path.join(storeDir, 'catalog.sqlite'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db
      .prepare(`SELECT id, sha256, sm3, state, size, filename, receipt_at, archived_at, local_deleted_at FROM files ORDER BY id`)
      .all() as CatalogFile[];
  } finally {
    db.close();
  }
}
