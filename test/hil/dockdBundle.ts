import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

const REPO = path.resolve(import.meta.dirname, '..', '..');

/**
 * dockd's TypeScript sources bundled into one ES module by esbuild (the transform tsx would otherwise make in the guest,
 * file by file: under TCG that alone takes minutes), npm packages left external. The bundle sits in a tree shaped like
 * the checkout (`package.json`, `config/`, `daemon/http/public/` and `node_modules/` are links to the checkout's), so the paths dockd derives
 * from its own location (PACKAGE_ROOT, the station page's files) resolve as they do from the sources.
 * Returns the entry to run with node: `<dir>/bin/dockd.mjs`.
 */
export async function bundleDockd(dir: string): Promise<string> {
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(path.join(dir, 'daemon'), { recursive: true });
  await fs.mkdir(path.join(dir, 'bin'));
  execFileSync(
    path.join(REPO, 'node_modules', '.bin', 'esbuild'),
    [
      path.join(REPO, 'daemon', 'main.ts'),
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--target=node20',
      '--packages=external',
      '--log-level=warning',
      `--outfile=${path.join(dir, 'daemon', 'main.mjs')}`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  await fs.mkdir(path.join(dir, 'daemon', 'http'));
  for (const [link, target] of [
    ['package.json', 'package.json'], // PACKAGE_ROOT is where package.json is (daemon/packageRoot.ts)
    ['config', 'config'],
    ['node_modules', 'node_modules'],
    [path.join('daemon', 'http', 'public'), path.join('daemon', 'http', 'public')],
  ] as const) {
    await fs.symlink(path.join(REPO, target), path.join(dir, link));
  }
  const entry = path.join(dir, 'bin', 'dockd.mjs');
  // As bin/dockd.js, without tsx.
  await fs.writeFile(
    entry,
    "const { main } = await import('../daemon/main.mjs');\nprocess.exit(await main(process.argv.slice(2)));\n",
  );
  return entry;
}
