import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import { Catalog } from '../store/catalog.ts';
import { UsageError } from './usage.ts';

export function openCatalog(config: Config, readonly: boolean): Catalog {
  const file = path.join(config.storage.dir, 'catalog.sqlite');
  if (!existsSync(file)) throw new UsageError(`no catalog at ${file}: has dockd run with this config?`);
  return Catalog.open(config.storage.dir, { readonly });
}

export async function withCatalog<T>(config: Config, readonly: boolean, fn: (c: Catalog) => Promise<T> | T): Promise<T> {
  const catalog = openCatalog(config, readonly);
  try {
    return await fn(catalog);
  } finally {
    catalog.close();
  }
}
