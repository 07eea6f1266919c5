import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import { ConfigError, DEFAULT_CONFIG_FILE, PACKAGE_ROOT, validateConfig } from './config.ts';

/** The upload settings an admin may change from the station page (both reloadable: applied as on SIGHUP). */
export interface UploadSettings {
  /** hq.tus.maxBytesPerSecond (0: no cap). */
  maxBytesPerSecond: number;
  /** hq.tus.windows (empty: any time). */
  windows: string[];
}

/**
 * Writes the upload settings into the config file itself, so that the file stays the one source of truth (a restart or
 * a SIGHUP reads what the page set). Only those two keys change; the other keys, comments and layout are kept. The new
 * text is validated as a whole before anything is written, then replaces the file atomically (temp file in the same
 * directory, fsync, rename, fsync of the directory); the file's mode is kept. Throws ConfigError with one line.
 */
export function writeUploadSettings(file: string, settings: UploadSettings): void {
  const target = realpathSync(file); // a config file that is a symlink keeps being one
  const text = readFileSync(target, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ConfigError(`config: ${file} is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`);
  doc.setIn(['hq', 'tus', 'maxBytesPerSecond'], settings.maxBytesPerSecond);
  doc.setIn(['hq', 'tus', 'windows'], doc.createNode(settings.windows, { flow: true }));
  const next = doc.toString();
  const baseDir = path.resolve(file) === DEFAULT_CONFIG_FILE ? PACKAGE_ROOT : process.cwd();
  validateConfig(parseYaml(next), baseDir);

  const dir = path.dirname(target);
  // A name of its own each time: a temp file a crash left behind must not make every later change fail ('wx').
  const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, 'wx', statSync(target).mode & 0o7777);
    try {
      writeSync(fd, next);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (e) {
    try {
      unlinkSync(temp);
    } catch {
      // not made, or already renamed
    }
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ConfigError(`config: cannot write ${file} (${code}): change it by hand and reload dockd (SIGHUP)`);
  }
  // The file is changed by now: a failed directory sync only means the new name may not yet be durable.
  try {
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // the rename stands; the next sync of the filesystem makes it durable
  }
}
