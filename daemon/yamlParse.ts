import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yaml: typeof Yaml | undefined;

/**
 * The yaml package, loaded when first needed: `dockctl` usually finds the config's parse in its cache
 * (daemon/parsedConfigCache.ts) and then never starts yaml's 74 modules. In the bundles (CommonJS) esbuild makes
 * require('yaml') the bundled copy; from the sources and the plain build (ES modules) there is no `require`, and the
 * package is loaded from node_modules.
 */
function yamlLibrary(): typeof Yaml {
  yaml ??= (typeof require === 'function' ? require('yaml') : createRequire(import.meta.url)('yaml')) as typeof Yaml;
  return yaml;
}

/** yaml's `parse`. */
export function parseYaml(text: string): unknown {
  return yamlLibrary().parse(text);
}

/** Which parser `parseYaml` is, for a cache of its results: the yaml package's version (bundled with the parser). */
export function yamlParserId(): string {
  const pkg = (
    typeof require === 'function' ? require('yaml/package.json') : createRequire(import.meta.url)('yaml/package.json')
  ) as { version: string };
  return `yaml ${pkg.version}`;
}
