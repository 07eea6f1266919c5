import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

let addon: string | undefined | null = null;

/**
 * The path of better-sqlite3's compiled addon (build/Release, else build/Debug, in its package), found once. Given to
 * `new Database` so that better-sqlite3 does not search a dozen places for it with the `bindings` package (≈ 7 ms of
 * every dockctl command), and because in the bundles (scripts/build.mjs) that search would start from dist/bundle/ and
 * miss. undefined when neither is there: better-sqlite3 then searches as it always did.
 */
export function sqliteAddon(): string | undefined {
  if (addon === null) {
    addon = undefined;
    try {
      // its main module is lib/index.js: the package is the directory above
      const pkg = path.dirname(path.dirname(createRequire(import.meta.url).resolve('better-sqlite3')));
      addon = ['Release', 'Debug'].map((b) => path.join(pkg, 'build', b, 'better_sqlite3.node')).find((f) => existsSync(f));
    } catch {
      // not resolvable from here: better-sqlite3's own search
    }
  }
  return addon;
}
