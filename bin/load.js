// Loads one of dockd's entry modules from the build (`npm run build`) when it is fresh — the entry's bundle in
// dist/bundle/ when every source file it was built from is at least as old as the build, else the compiled modules in
// dist/ when every source file is — otherwise the TypeScript sources through tsx. A station runs the build (fast
// start, no compiler at run time); a developer who edits a source file never runs a stale build by mistake.
//
// CommonJS (bin/package.json), as are the entries beside it: an ES module entry starts Node's ES module loader, which
// costs `dockctl status` ≈ 10–15 ms before any of dockd runs. The plain build and tsx are still ES modules, loaded by
// import() when there is no bundle.
const { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');
const { pathToFileURL } = require('node:url');

// Node 22.1+ keeps the compiled code of the modules loaded here on disk (in NODE_COMPILE_CACHE, else the temp
// directory): dockctl and the daemon start without compiling them again (dockctl status: 0.19 → 0.15 s CPU on Node 24).
// Node 20 has no compile cache; nothing changes there.
Module.enableCompileCache?.();

const ROOT = path.resolve(__dirname, '..');
const SOURCES = ['daemon', 'drivers', 'config/schema.json'];
const STAMP = path.join(ROOT, 'dist', '.built');

/** Whether `file` changed after `built`; for a directory, whether it or any directory or .ts file below it did. */
function changedSince(file, built) {
  const st = statSync(file);
  if (st.mtimeMs > built) return true; // a removed or renamed file changes its directory's time
  if (!st.isDirectory()) return false;
  // One directory at a time, paths joined by hand: readdirSync's `recursive` and path.join took twice as long (≈ 6 ms).
  for (const d of readdirSync(file, { withFileTypes: true })) {
    const p = `${file}/${d.name}`;
    if (d.isDirectory() ? changedSince(p, built) : d.name.endsWith('.ts') && statSync(p).mtimeMs > built) return true;
  }
  return false;
}

/** When the last build finished (dist/.built), or null when there is none or the sources are asked for. */
function builtAt() {
  if (process.env.DOCKD_FROM_SOURCE === '1') return null;
  try {
    return statSync(STAMP).mtimeMs;
  } catch {
    return null;
  }
}

/**
 * Whether every source file a bundle was built from (its inputs line) is still there and no newer than the build: a
 * source edited, removed or renamed since makes it stale. Only those files: a source the bundle does not hold cannot
 * make it stale (a new import changes the file that imports it). One stat per input costs a third of changedSince's
 * walk (dockctl's bundle: 69 files, against 168 files and 26 directories; 4.5 ms less at each `dockctl` start).
 */
function inputsUnchanged(inputs, built) {
  for (const rel of inputs) {
    const st = statSync(`${ROOT}/${rel}`, { throwIfNoEntry: false });
    if (!st || st.mtimeMs > built) return false;
  }
  return true;
}

// The entries scripts/build.mjs bundles (CommonJS, one file each).
const BUNDLES = {
  'daemon/main.ts': 'dockd.cjs',
  'daemon/cli/dockctl.ts': 'dockctl.cjs',
  'daemon/cli/statusEntry.ts': 'dockctl-status.cjs',
};
const STALE = Symbol('stale');
// The bundle's last two lines (scripts/build.mjs): the source files it was built from, then its SHA-256.
const BUNDLE_TRAILER = /\/\/# dockd-bundle-inputs=([^\n]*)\n\/\/# dockd-bundle-sha256=([0-9a-f]{64})\n$/;

/**
 * Runs a bundle as CommonJS through vm.Script with a V8 code cache beside it (Node 20 has no compile cache): the
 * bytecode of every function the last run compiled, so that this run neither parses nor compiles them (daemon start
 * 0.83 → 0.62 s CPU, `dockctl status` 0.23 → 0.19 s). The cache's name carries the SHA-256 the build wrote into the
 * bundle's last line (V8 itself checks only the source's length), Node's version and the architecture; V8 rejects one
 * made with other flags. A missing or rejected cache is written once the entry has run a while (10 s, or at exit if
 * sooner), to a temporary name then renamed; where the bundle's directory is read-only there is simply none.
 * DOCKD_CODE_CACHE=0 turns the cache off. Returns the bundle's exports; STALE when a source it was built from changed
 * since the build (then the sources run); null when it is missing or carries no trailer (then the plain build may run).
 */
function loadBundle(file, built) {
  let source;
  try {
    source = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const at = source.lastIndexOf('\n//# dockd-bundle-inputs=');
  const trailer = at === -1 ? null : BUNDLE_TRAILER.exec(source.slice(at + 1));
  if (!trailer) return null;
  if (!inputsUnchanged(trailer[1].split(','), built)) return STALE;
  const id = trailer[2];
  const cacheFile = `${file}.${id.slice(0, 16)}.${process.version}-${process.arch}.v8cache`;
  const useCache = process.env.DOCKD_CODE_CACHE !== '0'; // 0: neither read nor written (to measure without)
  let cachedData;
  try {
    if (useCache) cachedData = readFileSync(cacheFile);
  } catch {
    // none yet
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  if (useCache && (!cachedData || script.cachedDataRejected)) {
    let done = false;
    const write = () => {
      if (done) return;
      done = true;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        const fd = openSync(tmp, 'w', 0o644); // before serialising: a read-only directory costs nothing more
        try {
          writeSync(fd, script.createCachedData());
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, cacheFile);
      } catch {
        rmSync(tmp, { force: true });
      }
    };
    setTimeout(write, 10_000).unref();
    process.once('exit', write);
  }
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  return mod.exports;
}

/** Imports `rel` (a path below the project root, ending in .ts) from the build, or from the sources. */
async function loadEntry(rel) {
  const built = builtAt();
  if (built !== null) {
    const bundled = BUNDLES[rel] ? loadBundle(path.join(ROOT, 'dist', 'bundle', BUNDLES[rel]), built) : null;
    if (bundled !== null && bundled !== STALE) return bundled;
    if (bundled === null && !SOURCES.some((s) => changedSince(path.join(ROOT, s), built)))
      return import(pathToFileURL(path.join(ROOT, 'dist', rel.replace(/\.ts$/, '.js'))).href);
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import(pathToFileURL(path.join(ROOT, rel)).href);
}

/**
 * Runs the entry `rel`'s main(argv). The exit code is main's; 1, with the error, when it fails; 13 when it never
 * settles (what an unsettled top-level await exits with: a failure to systemd). `exitAtOnce`: exit as soon as main
 * returns, even with a handle still open (the daemon: a failed start-up must never leave half a daemon running).
 * Otherwise the process exits when main returns, if nothing is left that would keep it running (no handle, request
 * or timer holding the event loop; Node's standard output and error are synchronous on Linux; main awaits its own
 * work): left to itself, Node would first run the garbage collection V8 scheduled and wait for V8's background work,
 * 2–6 ms of every `dockctl` command (on Node 24, from main's return to the `exit` event).
 */
function runEntry(rel, { exitAtOnce = false } = {}) {
  const end = (code) => {
    if (exitAtOnce) process.exit(code);
    process.exitCode = code;
    if (process.getActiveResourcesInfo().length === 0) process.exit();
  };
  process.exitCode = 13;
  loadEntry(rel)
    .then(({ main }) => main(process.argv.slice(2)))
    .then(end, (e) => {
      console.error(e);
      end(1);
    });
}

module.exports = { loadEntry, runEntry };
