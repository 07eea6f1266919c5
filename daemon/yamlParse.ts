import { createRequire } from 'node:module';
import type { parse } from 'yaml';

/**
 * yaml's `parse`. The build (scripts/build.mjs) bundles the package into one file, dist/vendor/yaml.cjs, which loads in
 * a third of the time its 74 modules take (most of what `dockctl status` spent before it read anything); from the
 * sources, or when the bundle is missing, the package itself.
 */
async function loadParse(): Promise<typeof parse> {
  try {
    return createRequire(import.meta.url)('../vendor/yaml.cjs').parse;
  } catch {
    return (await import('yaml')).parse;
  }
}

export const parseYaml = await loadParse();
