import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yaml: typeof Yaml | undefined;

/**
 * `require(id)` as this module is built: in the daemon's bundle (CommonJS, scripts/build.mjs) esbuild makes both the
 * bundled copies; in dockctl's, yaml is left out and `require('yaml')` loads it from node_modules, while its
 * package.json is bundled; from the sources and the plain build (ES modules) there is no `require`, and the package is
 * loaded from node_modules. An ES module bundle (the hardware-in-the-loop guest's, test/hil/dockdBundle.ts)
 * has a `require` that throws ("Dynamic require of … is not supported"): node_modules then too.
 */
function load<T>(id: 'yaml' | 'yaml/package.json'): T {
  if (typeof require === 'function') {
    try {
      return (id === 'yaml' ? require('yaml') : require('yaml/package.json')) as T;
    } catch {
      // an ES module bundle's stand-in for require
    }
  }
  return createRequire(import.meta.url)(id) as T;
}

/**
 * The yaml package, loaded when first needed: `dockctl` usually finds the config's parse in its cache
 * (daemon/parsedConfigCache.ts) and then never starts yaml's 74 modules.
 */
function yamlLibrary(): typeof Yaml {
  yaml ??= load<typeof Yaml>('yaml');
  return yaml;
}

/** yaml's `parse`. */
export function parseYaml(text: string): unknown {
  return yamlLibrary().parse(text);
}

/**
 * Which parser `parseYaml` is, for a cache of its results: the yaml package's version, as the build found it (dockctl's
 * bundle holds the package.json of the yaml it loads from node_modules: installing another yaml means building again,
 * as `npm start` and `npm test` do).
 */
export function yamlParserId(): string {
  return `yaml ${load<{ version: string }>('yaml/package.json').version}`;
}
