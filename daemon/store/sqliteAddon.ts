import { createRequire } from 'node:module';

let addon: string | undefined | null = null;

/**
 * The path of better-sqlite3's compiled addon, resolved once like any package file. Given to `new Database` so that
 * better-sqlite3 does not search a dozen places for it with the `bindings` package (≈ 7 ms of every dockctl command), and
 * because in the bundles (scripts/build.mjs) that search would start from dist/bundle/ and miss. undefined when it is not
 * where an npm install puts it: better-sqlite3 then searches as it always did.
 */
export function sqliteAddon(): string | undefined {
  if (addon === null) {
    try {
      addon = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      addon = undefined;
    }
  }
  return addon;
}
