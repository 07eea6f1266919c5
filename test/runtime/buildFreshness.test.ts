/**
 * Which code `dockctl` runs (bin/load.js), on a copy of the project tree and its build: the bundle while every source
 * file it was built from is no newer than the build; the TypeScript sources as soon as one of those is edited in place
 * (the directory's time unchanged) or removed. A source file the bundle does not hold, added or edited, leaves the
 * bundle in use. Which one ran is told by what only it does: the bundle writes its V8 code cache beside itself; the
 * sources print an edited help text.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { tempDir } from '../helpers/daemon.ts';

const ENTRIES = ['bin', 'dist', 'daemon', 'drivers', 'config', 'package.json'];

/** A copy of the tree with its build, timestamps kept; node_modules linked. */
async function copyTree(dir: string): Promise<string> {
  const root = path.join(dir, `tree-${Math.random().toString(16).slice(2, 8)}`);
  await fs.mkdir(root);
  for (const e of ENTRIES)
    await fs.cp(path.join(PACKAGE_ROOT, e), path.join(root, e), { recursive: true, preserveTimestamps: true });
  await fs.symlink(path.join(PACKAGE_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  for (const f of await fs.readdir(path.join(root, 'dist', 'bundle')))
    if (f.endsWith('.v8cache')) await fs.rm(path.join(root, 'dist', 'bundle', f));
  return root;
}

/** `bin/dockctl.js ARGS` in the tree `root`, as a station runs it (no variable that picks the sources or the cache). */
function dockctlIn(root: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.DOCKD_FROM_SOURCE;
    delete env.DOCKD_CODE_CACHE;
    execFile(process.execPath, [path.join(root, 'bin', 'dockctl.js'), ...args], { env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const dockctlHelp = (root: string) => dockctlIn(root, ['--help']);
/** `dockctl --config <a file that is not there> status`: it fails on the config, after its entry ran. */
const dockctlStatus = (root: string) => dockctlIn(root, ['--config', path.join(root, 'nowhere.yaml'), 'status']);

const codeCaches = async (root: string, bundle = 'dockctl.cjs') =>
  (await fs.readdir(path.join(root, 'dist', 'bundle'))).filter((f) => f.startsWith(`${bundle}.`) && f.endsWith('.v8cache'));

/** Rewrites `file` in place (same inode, so its directory's time does not change), its time now. */
async function editInPlace(file: string, edit: (text: string) => string): Promise<void> {
  const text = await fs.readFile(file, 'utf8');
  const fh = await fs.open(file, 'r+');
  try {
    const out = Buffer.from(edit(text));
    await fh.truncate(0);
    await fh.write(out, 0, out.length, 0);
  } finally {
    await fh.close();
  }
  const later = new Date(Date.now() + 2000);
  await fs.utimes(file, later, later);
}

describe('which build dockctl runs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('dockd-freshness-');
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs the bundle while its sources are unchanged, and a source file it does not hold changes nothing', async () => {
    const root = await copyTree(dir);
    await fs.writeFile(path.join(root, 'daemon', 'notImported.ts'), 'export const x = 1;\n');
    await editInPlace(path.join(root, 'daemon', 'main.ts'), (t) => `${t}\n`); // the daemon's, not dockctl's
    const r = await dockctlHelp(root);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: dockctl/);
    expect(await codeCaches(root)).toHaveLength(1);
  });

  it('runs the sources once a source file of the bundle is edited in place', async () => {
    const root = await copyTree(dir);
    const usage = path.join(root, 'daemon', 'cli', 'usage.ts');
    const dirTime = (await fs.stat(path.dirname(usage))).mtimeMs;
    await editInPlace(usage, (t) => t.replace('usage: dockctl', 'usage (edited): dockctl'));
    expect((await fs.stat(path.dirname(usage))).mtimeMs).toBe(dirTime);
    const r = await dockctlHelp(root);
    expect(r.stdout).toMatch(/^usage \(edited\): dockctl/);
    expect(await codeCaches(root)).toEqual([]);
  });

  it('runs the sources (and fails, naming the file) once a source file of the bundle is removed', async () => {
    const root = await copyTree(dir);
    await fs.rm(path.join(root, 'daemon', 'cli', 'usage.ts'));
    const r = await dockctlHelp(root);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('usage.ts');
    expect(await codeCaches(root)).toEqual([]);
  });

  it('runs `dockctl status` from its own bundle, and from the sources once a source file of that bundle is edited', async () => {
    const root = await copyTree(dir);
    const r = await dockctlStatus(root);
    expect([r.code, r.stderr]).toEqual([2, `dockctl: config: cannot read ${path.join(root, 'nowhere.yaml')}: ENOENT\n`]);
    expect(await codeCaches(root, 'dockctl-status.cjs')).toHaveLength(1);
    expect(await codeCaches(root)).toEqual([]);
    const edited = await copyTree(dir);
    await editInPlace(path.join(edited, 'daemon', 'cli', 'statusView.ts'), (t) => `${t}\n`);
    expect((await dockctlStatus(edited)).code).toBe(2);
    expect(await codeCaches(edited, 'dockctl-status.cjs')).toEqual([]);
  });

  it('runs the sources when the config schema changed (the validator in the bundle is made from it)', async () => {
    const root = await copyTree(dir);
    await editInPlace(path.join(root, 'config', 'schema.json'), (t) => `${t}\n`);
    const r = await dockctlHelp(root);
    expect(r.stdout).toMatch(/^usage: dockctl/);
    expect(await codeCaches(root)).toEqual([]);
  });
});
