import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PACKAGE_ROOT } from '../packageRoot.ts';

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
    // First where npm puts it, the package's own node_modules: the nearest node_modules above these modules and the
    // bundles, so what resolving the package finds there too, without its ≈ 0.7 ms of lookups at every dockctl command.
    const release = (pkg: string) =>
      ['Release', 'Debug'].map((b) => path.join(pkg, 'build', b, 'better_sqlite3.node')).find((f) => existsSync(f));
    addon = release(path.join(PACKAGE_ROOT, 'node_modules', 'better-sqlite3'));
    if (addon === undefined)
      try {
        // its main module is lib/index.js: the package is the directory above
        addon = release(path.dirname(path.dirname(createRequire(import.meta.url).resolve('better-sqlite3'))));
      } catch {
        // not resolvable from here: better-sqlite3's own search
      }
  }
  return addon;
}
