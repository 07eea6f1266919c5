import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config } from './config.ts';
import { DirectoryProblem, ensureDirectory, errnoWords, fileKind } from './makeDirectory.ts';

/**
 * Checks every path of a loaded config before any service starts, so that a wrong path stops dockd with one line
 * (`config: KEY: PATH problem`) instead of half way through start-up. Directories the services would create anyway
 * (the store, mount roots, the embedded HQ's files, the USB mount root) are created here.
 */
export async function checkConfigPaths(config: Config): Promise<void> {
  await directory('storage.dir', config.storage.dir, { create: true, writable: true });
  if (config.hq.embedded) {
    await directory('hq.embedded', path.join(path.dirname(config.storage.dir), 'hq'), {
      create: true,
      writable: true,
      what: "the embedded HQ's files, beside storage.dir",
    });
  }
  for (const [i, root] of config.dock.mountRoots.entries())
    await directory(`dock.mountRoots.${i}`, root, { create: true, writable: false });
  // /dev/serial/by-id exists only while a serial device is present: it may be absent, but it must be able to appear.
  await directory('dock.serialDir', config.dock.serialDir, { create: false, writable: false });
  if (config.usb.enabled) {
    // With a mount helper the root is root's (the helper refuses one dockd could write): it must be there already.
    const helper = config.usb.mountHelper !== '';
    await directory('usb.runtimeMountRoot', config.usb.runtimeMountRoot, {
      create: !helper,
      mustExist: helper,
      writable: !helper,
    });
    await directory('usb.sysfsRoot', path.resolve(config.usb.sysfsRoot), { create: false, mustExist: true, writable: false });
    await directory('usb.devRoot', path.resolve(config.usb.devRoot), { create: false, mustExist: true, writable: false });
  }
  const tls = config.hq.mqtt.tls;
  if (tls) for (const k of ['ca', 'cert', 'key'] as const) if (tls[k]) await readableFile(`hq.mqtt.tls.${k}`, tls[k]!);
}

interface DirectoryRule {
  /** Create it (and missing parents) when absent; otherwise absent is fine as long as it could appear. */
  create: boolean;
  writable: boolean;
  mustExist?: boolean;
  /** Said after the path, for a path that is not itself a config value. */
  what?: string;
}

async function directory(key: string, dir: string, rule: DirectoryRule): Promise<void> {
  const fail = (problem: string): never => {
    throw new ConfigError(`config: ${key}: ${dir}${rule.what ? ` (${rule.what})` : ''} ${problem}`);
  };
  let exists: boolean;
  try {
    exists = await ensureDirectory(dir, { create: rule.create });
  } catch (e) {
    if (e instanceof DirectoryProblem) return fail(e.problem);
    throw e;
  }
  if (!exists) return rule.mustExist ? fail('does not exist') : undefined;
  try {
    await (await fs.opendir(dir)).close();
  } catch (e) {
    fail(`cannot be read: ${errnoWords(e)}`);
  }
  if (rule.writable) await writeProbe(dir, fail);
}

/** Creates and removes a file: unlike access(2), this also holds for root, ACLs and read-only mounts. */
async function writeProbe(dir: string, fail: (problem: string) => never): Promise<void> {
  const probe = path.join(dir, `.dockd-write-check-${process.pid}`);
  let h: fs.FileHandle;
  try {
    h = await fs.open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (e) {
    return fail(`is not writable: ${errnoWords(e)}`);
  }
  await h.close();
  await fs.unlink(probe).catch((e) => fail(`is not writable (a test file could not be removed): ${errnoWords(e)}`));
}

async function readableFile(key: string, file: string): Promise<void> {
  const fail = (problem: string): never => {
    throw new ConfigError(`config: ${key}: ${file} ${problem}`);
  };
  const st = await fs.stat(file).catch((e) => {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be examined: ${errnoWords(e)}`);
  });
  if (!st.isFile()) fail(`is ${fileKind(st)}, not a regular file`);
  try {
    await (await fs.open(file, 'r')).close();
  } catch (e) {
    fail(`cannot be read: ${errnoWords(e)}`);
  }
}
