// `npm run build`: compiles dockd (daemon/, drivers/) to JavaScript in dist/, with the config schema's validator
// generated once (Ajv standalone code), and bundles the daemon and dockctl into one file each (dist/bundle/), so that
// they start without a compiler at run time. bin/load.js uses dist/ only while dist/.built is newer than every source.
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
// The same options as daemon/configValidator.ts (AJV_OPTIONS), plus code generation. CommonJS: configValidator.ts
// loads it with require (no top-level await, so that dockd can be bundled as CommonJS below).
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true, code: { source: true } });
const validator = standaloneCode(ajv, ajv.compile(schema));
const schemaSha = createHash('sha256').update(JSON.stringify(schema)).digest('hex');
mkdirSync(path.join(dist, 'config'), { recursive: true });
rmSync(path.join(dist, 'config/validateConfig.js'), { force: true }); // the ES module of earlier builds
writeFileSync(
  path.join(dist, 'config/validateConfig.cjs'),
  `${validator}\nmodule.exports.schemaSha = ${JSON.stringify(schemaSha)};\n`,
);
rmSync(path.join(dist, 'vendor'), { recursive: true, force: true }); // yaml alone, as earlier builds made it

// dockd and dockctl each as one CommonJS file (dist/bundle/, with yaml, fastify, pino, the MQTT and tus code …):
// loading ~900 modules one by one was most of the daemon's start and of `dockctl status`. CommonJS so that bin/load.js
// can compile it with a V8 code cache (vm.Script; Node 20 has none for ES modules). Left outside: the native addons
// and what finds its files at run time. The last line carries the bundle's SHA-256, which names its code cache.
// esbuild comes with tsx; without it dockd runs from the plain build in dist/.
const bundleDir = path.join(dist, 'bundle');
// daemon/builtValidator.ts is replaced by a module requiring the validator generated above: the daemon's bundle holds
// it, so that it is compiled from its code cache; dockctl's requires it from dist/config/ (validatorOutside). Built
// together, they need no check of the schema's digest. builtValidatorId() gives the digest of the validator's code:
// dockctl's parse cache keeps a config as this validator checked it (daemon/parsedConfigCache.ts).
const validatorId = createHash('sha256').update(validator).digest('hex');
const withBuiltValidator = {
  name: 'built-validator',
  setup(b) {
    b.onLoad({ filter: /[\\/]daemon[\\/]builtValidator\.ts$/ }, () => ({
      contents:
        "export function builtValidator() { return { default: require('./validateConfig.cjs').default, schemaSha: null }; }\n" +
        `export function builtValidatorId() { return ${JSON.stringify(validatorId)}; }`,
      resolveDir: path.join(dist, 'config'),
      loader: 'js',
    }));
  },
};
// dockctl's bundle requires the validator from dist/config/ when a config is not in its parse cache: in the bundle it
// was 155 KB of 350 to read, and of the code cache to load, at every command.
const validatorOutside = {
  name: 'validator-outside',
  setup(b) {
    b.onResolve({ filter: /^\.\/validateConfig\.cjs$/ }, () => ({ path: '../config/validateConfig.cjs', external: true }));
  },
};
// yaml's package.json into dockctl's bundle, though yaml is external there (esbuild makes a package's subpaths external
// with it): the parse cache compares the parser's version at every command.
const yamlVersionBundled = {
  name: 'yaml-version-bundled',
  setup(b) {
    b.onResolve({ filter: /^yaml\/package\.json$/ }, () => ({ path: path.join(root, 'node_modules/yaml/package.json') }));
  },
};
rmSync(bundleDir, { recursive: true, force: true });
try {
  const { build } = await import('esbuild');
  const options = {
    outdir: bundleDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // mqtt too: it parses the broker URL with url.parse(), which Node 24 warns about (DEP0169) unless the caller is in
    // node_modules/; bundled, the daemon printed that warning at every start (test/runtime/cleanStart.test.ts).
    // better-sqlite3's JavaScript is bundled; its addon is loaded by path (daemon/store/sqliteAddon.ts).
    external: ['usb', 'serialport', '@serialport/*', 'mqtt'],
    // import.meta.url as the sources mean it: the file that runs (dist/bundle/*.cjs, one level below dist/ as
    // dist/daemon/ is, so '../config/validateConfig.cjs' and PACKAGE_ROOT resolve the same).
    define: { 'import.meta.url': '__dockdModuleUrl' },
    banner: { js: "var __dockdModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
    // import('usb') as require: the addons are CommonJS, and a vm.Script has no module loader of its own.
    supported: { 'dynamic-import': false },
    logLevel: 'warning',
    plugins: [withBuiltValidator],
    absWorkingDir: root,
    metafile: true, // its inputs: the source files bin/load.js checks before it runs the bundle
  };
  const inputs = {};
  const dockd = await build({ ...options, entryPoints: { dockd: path.join(root, 'daemon/main.ts') } });
  inputs['dockd.cjs'] = dockd.metafile.inputs;
  // dockctl without comments or indentation: a third less to read and deserialise at each start, and ASCII only.
  // esbuild escapes what is not ASCII in strings but leaves it in comments and regular expressions; one character
  // outside ASCII makes V8 hold the whole source as a two-byte string. Reading the bundle, compiling it with its code
  // cache and starting its modules: 37 → 20 ms here (README, Performance, sixth round). The daemon's bundle keeps its
  // lines, so that the stack traces in its log point at one. test/runtime/bundle.test.ts keeps dockctl's ASCII.
  const dockctl = await build({
    ...options,
    // `dockctl status` has a bundle of its own (daemon/cli/statusEntry.ts): half of dockctl's, for the command run most.
    entryPoints: {
      dockctl: path.join(root, 'daemon/cli/dockctl.ts'),
      'dockctl-status': path.join(root, 'daemon/cli/statusEntry.ts'),
    },
    minifyWhitespace: true,
    // yaml (171 KB, a third of the bundle) from node_modules, when a config's parse is not in dockctl's cache: every
    // command read it with the bundle, and most never run it. Its package.json (the parser's version) stays bundled.
    external: [...options.external, 'yaml'],
    plugins: [...options.plugins, yamlVersionBundled, validatorOutside],
  });
  for (const [out, { inputs: from }] of Object.entries(dockctl.metafile.outputs)) inputs[path.basename(out)] = from;
  // The last two lines: the bundle's source files (paths from the root, the schema always among them: the validator
  // generated from it is read from dist/), then the SHA-256 of all above it.
  for (const name of ['dockd.cjs', 'dockctl.cjs', 'dockctl-status.cjs']) {
    const file = path.join(bundleDir, name);
    const sources = Object.keys(inputs[name]).filter((p) => /^(daemon|drivers|config)\//.test(p));
    if (!sources.includes('config/schema.json')) sources.push('config/schema.json');
    if (sources.some((p) => /[,\n]/.test(p))) throw new Error(`a source path with a comma or a newline: ${sources}`);
    const code = `${readFileSync(file, 'utf8')}//# dockd-bundle-inputs=${sources.join(',')}\n`;
    writeFileSync(file, `${code}//# dockd-bundle-sha256=${createHash('sha256').update(code).digest('hex')}\n`);
  }
} catch (e) {
  rmSync(bundleDir, { recursive: true, force: true });
  console.warn(`dockd not bundled (${e.message}); it runs from the plain build in dist/`);
}
writeFileSync(path.join(dist, '.built'), `${new Date().toISOString()}\n`);
console.log(`dockd built into dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
