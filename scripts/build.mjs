// `npm run build`: compiles dockd (daemon/, drivers/) to JavaScript in dist/, with the config schema's validator
// generated once (Ajv standalone code), so that the daemon and dockctl start without a compiler at run time.
// bin/load.js uses dist/ only while dist/.built is newer than every source file.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const started = Date.now();
rmSync(path.join(dist, '.built'), { force: true });
execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});

const schema = JSON.parse(readFileSync(path.join(root, 'config/schema.json'), 'utf8'));
// The same options as daemon/configValidator.ts (AJV_OPTIONS), plus code generation.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true, code: { source: true, esm: true } });
const validator = standaloneCode(ajv, ajv.compile(schema));
const schemaSha = createHash('sha256').update(JSON.stringify(schema)).digest('hex');
mkdirSync(path.join(dist, 'config'), { recursive: true });
const requireShim = "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n";
writeFileSync(
  path.join(dist, 'config/validateConfig.js'),
  `${requireShim}${validator}\nexport const schemaSha = ${JSON.stringify(schemaSha)};\n`,
);
// yaml as one file (daemon/yamlParse.ts loads it): its 74 modules cost dockctl a third of its start. esbuild comes with
// tsx; without it the daemon loads the package as it is.
try {
  const { buildSync } = await import('esbuild');
  buildSync({
    entryPoints: [path.join(root, 'node_modules/yaml/dist/index.js')],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    outfile: path.join(dist, 'vendor/yaml.cjs'),
    logLevel: 'warning',
  });
} catch (e) {
  rmSync(path.join(dist, 'vendor/yaml.cjs'), { force: true });
  console.warn(`yaml not bundled (${e.message}); dockd loads the package itself`);
}
writeFileSync(path.join(dist, '.built'), `${new Date().toISOString()}\n`);
console.log(`dockd built into dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
