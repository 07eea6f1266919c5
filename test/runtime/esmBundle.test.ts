/**
 * dockd as one ES module bundle with its npm packages outside (how the hardware-in-the-loop guest runs it:
 * test/hil/dockdBundle.ts) reads its config. Such a bundle's `require` is esbuild's stand-in, which throws; the YAML
 * parser must then come from node_modules (daemon/yamlParse.ts). A config with an unknown key is parsed, then refused
 * by validation in one line: the line names the key, not the parser.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/daemon.ts';
import { bundleDockd } from '../hil/dockdBundle.ts';

let dir: string | null = null;

afterEach(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  dir = null;
});

describe('dockd bundled as an ES module', () => {
  it('parses its YAML config (and refuses a bad key by name)', async () => {
    dir = await tempDir('dockd-esm-bundle-');
    const entry = await bundleDockd(path.join(dir, 'bundle'));
    const config = path.join(dir, 'dockd.yaml');
    await fs.writeFile(config, 'station: { id: dock-01 }\nnot-a-key: 1\n');
    const r = spawnSync(process.execPath, [entry, '--config', config], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/not valid YAML/);
    expect(r.stderr).toMatch(/config: .*not-a-key/);
    expect(r.status).toBe(2);
  });
});
