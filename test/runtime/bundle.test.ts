/**
 * dockctl's bundle (scripts/build.mjs; `npm test` builds before it runs) stays ASCII: one character outside ASCII, in a
 * comment or a regular expression that esbuild leaves as written, makes V8 hold the whole source as a two-byte string,
 * ≈ 8 ms more at every `dockctl` start on the development machine. Write such a character as \uXXXX in a regular
 * expression (comments are dropped from this bundle). And `dockctl status`, on a station's config with its receipt key,
 * loads none of node:crypto (≈ 10 ms and some 40 of Node's modules on Node 24), and once the config is in dockctl's
 * cache, neither yaml nor the schema's validator.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { DOCKCTL_BIN, makeWorld, runDockctl, tempDir } from '../helpers/daemon.ts';

describe("dockctl's bundle", () => {
  it('is ASCII only, and so is the bundle of `dockctl status`', () => {
    for (const name of ['dockctl.cjs', 'dockctl-status.cjs']) {
      const code = readFileSync(path.join(PACKAGE_ROOT, 'dist', 'bundle', name), 'utf8'); // missing: `npm run build`
      const at = code.search(/[\u0080-\uffff]/);
      expect(at === -1 ? null : `${name}: ${code.slice(Math.max(0, at - 80), at + 20)}`).toBeNull();
      expect(code).toMatch(/\/\/# dockd-bundle-sha256=[0-9a-f]{64}\n$/);
    }
  });

  it('runs `dockctl status` from its own entry, which reads the command line as dockctl does', async () => {
    const dir = await tempDir('dockd-status-entry-');
    try {
      const world = await makeWorld(dir, { tusEndpoint: 'http://127.0.0.1:9/files/', mqttUrl: 'mqtt://127.0.0.1:9' });
      Catalog.open(world.storeDir).close();
      const bogus = await runDockctl(world.configFile, ['status', '--bogus']);
      expect(bogus.code).toBe(2);
      expect(bogus.stderr).toMatch(/^dockctl: Unknown option '--bogus'[^\n]*\nusage: dockctl \[--config FILE\] <command>\n/);
      const both = await runDockctl(world.configFile, ['status', '--json', '--watch']);
      expect([both.code, both.stderr]).toEqual([2, 'dockctl: status: --watch and --json do not go together\n']);
      // the config named after the command, and an option another command reads (ignored, as dockctl does)
      const after = await new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(process.execPath, [DOCKCTL_BIN, 'status', '--limit', '5', '--config', world.configFile, '--json'], (e, stdout) =>
          resolve({ code: e ? 1 : 0, stdout }),
        ),
      );
      expect(after.code).toBe(0);
      expect(JSON.parse(after.stdout).stationId).toBe('test-st');
      const missing = await runDockctl(path.join(dir, 'nowhere.yaml'), ['status']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^dockctl: config: cannot read .*nowhere\.yaml: ENOENT\n$/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('runs `dockctl status` without node:crypto (hq.receiptKey set), and from its cache without yaml or the validator', async () => {
    const dir = await tempDir('dockd-status-modules-');
    try {
      const world = await makeWorld(dir, { tusEndpoint: 'http://127.0.0.1:9/files/', mqttUrl: 'mqtt://127.0.0.1:9' });
      expect(world.config.hq).toHaveProperty('receiptKey');
      Catalog.open(world.storeDir).close();
      // Node's own list of the modules it loaded, and the files required, as dockctl exits.
      const preload = path.join(dir, 'modules.cjs');
      const list = path.join(dir, 'modules.txt');
      await fs.writeFile(
        preload,
        `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, [...process.moduleLoadList, ...Object.keys(require.cache)].join('\\n')));`,
      );
      const env = { ...process.env, NODE_OPTIONS: `--require ${preload}`, XDG_CACHE_HOME: path.join(dir, 'cache') };
      const statusLoads = async () => {
        const r = await runDockctl(world.configFile, ['status'], env);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('test-st');
        return (await fs.readFile(list, 'utf8')).split('\n');
      };
      const validatorOrYaml = (m: string) => /dist\/config\/validateConfig\.cjs$|node_modules\/yaml\//.test(m);
      // The config's first use: parsed and checked, with yaml and the validator from dist/config/.
      expect((await statusLoads()).filter(validatorOrYaml).length).toBeGreaterThanOrEqual(2);
      // Then from dockctl's cache: neither.
      const loaded = await statusLoads();
      expect(loaded.filter(validatorOrYaml)).toEqual([]);
      expect(loaded).toContain('NativeModule fs'); // the list is the one Node keeps
      expect(loaded.filter((m) => /^NativeModule (crypto|internal\/crypto\/)/.test(m))).toEqual([]);
      // A bad key is still refused by name.
      await fs.writeFile(world.configFile, (await fs.readFile(world.configFile, 'utf8')).replace(/MCow[A-Za-z0-9+/]+=/, 'MCow'));
      const bad = await runDockctl(world.configFile, ['status']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/hq\.receiptKey: not a public key/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
