/**
 * yaml's `parse`. The build (scripts/build.mjs) bundles it with the rest of dockd into one file (dist/bundle/), which
 * loads in a fraction of the time the package's 74 modules take; from the sources, the package itself.
 */
export { parse as parseYaml } from 'yaml';
