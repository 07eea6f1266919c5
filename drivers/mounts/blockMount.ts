import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '../errors.ts';

/**
 * Mounts a recorder's block device read-only under a runtime mount root owned by dockd (`/run/dockd/mnt/<bay>`) and
 * unmounts it again, through an injected command runner (`mount`, `umount`, `blkid`).
 *
 * The mount is `ro,nosuid,nodev,noexec`; ext4 also gets `noload` (a dirty journal is not replayed onto the device);
 * vfat/exfat get `uid=`/`gid=` of dockd so it can read (and, for the wipe, delete) them, and vfat gets `utf8` so
 * Chinese long names come through. The only write ever made is the wipe gate's: `remount(mp, 'rw')` just for it,
 * then `remount(mp, 'ro')` (see drivers/volumes/recorderVolume.ts, RemountedVolume).
 *
 * Privileges: util-linux `mount` refuses any non-root real uid ("restricted" mode), even with CAP_SYS_ADMIN. On a
 * station, the mount helper (drivers/mounts/mountHelperServer.ts, systemd/dockd-mount.service) runs this as root and
 * dockd holds no capability at all (usb.mountHelper). Without a helper, dockd mounts itself: as root, or as its own
 * user with CAP_SYS_ADMIN and CAP_SETUID, starting the commands as uid 0 (`asRoot`) with its own gid so they can
 * traverse its 0750 runtime root.
 */

export interface RunOptions {
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}
export interface RunResult {
  stdout: string;
  stderr: string;
}
/** Runs a program without a shell; rejects with CommandError when it cannot start or exits non-zero. */
export type CommandRunner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The real runner: child_process.execFile with the system PATH (blkid lives in /usr/sbin). */
export const execFileRunner: CommandRunner = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      {
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${SYSTEM_PATH}`, LC_ALL: 'C' },
        ...(options.uid !== undefined ? { uid: options.uid } : {}),
        ...(options.gid !== undefined ? { gid: options.gid } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        const exitCode = typeof e.code === 'number' ? e.code : null;
        const why = exitCode !== null ? `exit ${exitCode}` : e.killed ? 'timed out' : String(e.code ?? e.message);
        reject(
          new CommandError(
            `${file} ${args.join(' ')}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`,
            exitCode,
            stderr ?? '',
            typeof e.code === 'string' ? e.code : undefined,
          ),
        );
      },
    );
  });

export type MountErrorCode =
  | 'BAD_NAME' // the mount point name is not one safe path component
  | 'DEVICE_GONE' // the device node is not there (unplugged), or the kernel says it has no medium / device
  | 'FS_UNKNOWN' // blkid finds no filesystem
  | 'FS_UNSUPPORTED' // a filesystem other than vfat / exfat / ext4
  | 'ALREADY_MOUNTED' // something is mounted on the mount point already
  | 'MOUNT_FAILED'
  | 'UMOUNT_FAILED'
  | 'NOT_MOUNTED' // remount: nothing of ours is mounted there
  | 'REMOUNT_REFUSED' // remount rw: an ext4 whose journal needs recovery (writing past it would corrupt the volume)
  | 'REMOUNT_FAILED'
  // through the mount helper (drivers/mounts/mountHelperServer.ts):
  | 'NOT_USB_STORAGE' // sysfs does not name the device as a block device of that USB port's mass-storage interface
  | 'BAD_REQUEST' // the helper refused a malformed request
  | 'HELPER_UNAVAILABLE'; // the helper's socket cannot be reached

export class MountError extends CodedError<MountErrorCode> {
  constructor(code: MountErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'MountError';
  }
}

/** Mount point names: a bay id, a recorder serial or a port path; never `.`/`..`, a hidden name or a separator. */
export const MOUNT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export const SUPPORTED_FS = ['vfat', 'exfat', 'ext4'] as const;
export type SupportedFs = (typeof SUPPORTED_FS)[number];

export interface MountedVolume {
  device: string;
  mountPoint: string;
  fsType: SupportedFs;
  options: string[];
}

/** What the USB docking needs of whoever mounts: this class as it is, or the mount helper's client. */
export interface VolumeMounter {
  /** `usbPort`: the recorder's port path, for the helper's check that the device is that port's USB storage. */
  mount(device: string, name: string, opts?: { usbPort?: string }): Promise<MountedVolume>;
  unmount(mountPoint: string): Promise<{ wasMounted: boolean; lazy: boolean }>;
  remount(mountPoint: string, mode: 'rw' | 'ro'): Promise<void>;
}

export interface BlockMounterOptions {
  /** The runtime mount root owned by dockd, e.g. /run/dockd/mnt; created when missing. */
  runtimeRoot: string;
  run?: CommandRunner;
  /** Start mount/umount/blkid as uid 0 (needs CAP_SETUID); default: when this process is not root. */
  asRoot?: boolean;
  /** Owner given to vfat/exfat files; default this process's uid/gid. */
  ownerUid?: number;
  ownerGid?: number;
  /** The mount table to consult; default /proc/self/mounts. */
  procMounts?: string;
  /** Per command; default 30 s. */
  timeoutMs?: number;
  /**
   * The mounts are used in another mount namespace that receives them by propagation (dockd.service's, from the
   * helper's): a propagated copy keeps the per-mount flags it was made with, and a later remount never reaches it. So
   * each volume is mounted on a staging point, its mount made writable there while the filesystem stays read-only, and
   * bind-mounted into place: every copy is then writable exactly when the filesystem is, which remount() switches.
   */
  propagated?: boolean;
}

/** The options a recorder volume is mounted with (pure). */
export function mountOptions(fsType: SupportedFs, owner: { uid: number; gid: number }): string[] {
  const base = ['ro', 'nosuid', 'nodev', 'noexec'];
  if (fsType === 'ext4') return [...base, 'noload'];
  const ids = [`uid=${owner.uid}`, `gid=${owner.gid}`, 'fmask=0133', 'dmask=0022'];
  return fsType === 'vfat' ? [...base, ...ids, 'utf8', 'shortname=mixed'] : [...base, ...ids, 'iocharset=utf8'];
}

export class BlockMounter implements VolumeMounter {
  private readonly run: CommandRunner;
  private readonly privileged: RunOptions;

  constructor(private readonly options: BlockMounterOptions) {
    this.run = options.run ?? execFileRunner;
    const asRoot = options.asRoot ?? process.getuid?.() !== 0;
    // uid 0 only: the gid stays dockd's, so the commands can traverse the dockd-owned 0750 runtime root.
    this.privileged = { ...(asRoot ? { uid: 0 } : {}), timeoutMs: options.timeoutMs ?? 30_000 };
  }

  /** The filesystem type blkid finds on the device (low-level probe, no cache), or null when it finds none. */
  async detectFsType(device: string): Promise<string | null> {
    await this.requireDevice(device);
    try {
      const { stdout } = await this.run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device], this.privileged);
      return stdout.trim() || null;
    } catch (e) {
      if (e instanceof CommandError && e.exitCode === 2) return null; // blkid: nothing identified
      await this.requireDevice(device);
      throw new MountError('MOUNT_FAILED', `cannot probe ${device}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Mounts `device` read-only at `<runtimeRoot>/<name>` (name: a bay id or a port path). */
  async mount(device: string, name: string, opts: { fsType?: SupportedFs; usbPort?: string } = {}): Promise<MountedVolume> {
    if (!MOUNT_NAME_RE.test(name) || name.includes('..')) {
      throw new MountError('BAD_NAME', `mount point name ${JSON.stringify(name)} must be one path component of [A-Za-z0-9._:-]`);
    }
    const found = opts.fsType ?? (await this.detectFsType(device));
    if (!found) throw new MountError('FS_UNKNOWN', `no filesystem found on ${device}`);
    if (!(SUPPORTED_FS as readonly string[]).includes(found)) {
      throw new MountError('FS_UNSUPPORTED', `${device} holds ${found}; recorder volumes are ${SUPPORTED_FS.join(', ')}`);
    }
    const fsType = found as SupportedFs;
    await fs.mkdir(this.options.runtimeRoot, { recursive: true, mode: 0o750 });
    const mountPoint = path.join(await fs.realpath(this.options.runtimeRoot), name);
    await fs.mkdir(mountPoint, { recursive: true, mode: 0o750 });
    if (await this.isMounted(mountPoint)) throw new MountError('ALREADY_MOUNTED', `${mountPoint} is already a mount point`);
    const options = mountOptions(fsType, {
      uid: this.options.ownerUid ?? process.getuid?.() ?? 0,
      gid: this.options.ownerGid ?? process.getgid?.() ?? 0,
    });
    try {
      if (this.options.propagated) await this.mountStaged(device, fsType, options, mountPoint, name);
      else await this.run('mount', ['-o', options.join(','), '-t', fsType, device, mountPoint], this.privileged);
    } catch (e) {
      await fs.rmdir(mountPoint).catch(() => {});
      const stderr = e instanceof CommandError ? e.stderr : '';
      const gone =
        /does not exist|No such device|No medium found|can't read superblock|not a block device/i.test(stderr) ||
        !(await exists(device));
      throw new MountError(
        gone ? 'DEVICE_GONE' : 'MOUNT_FAILED',
        `mounting ${device} on ${mountPoint}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return { device, mountPoint, fsType, options };
  }

  /** See `propagated`: mount on `<root>/.staging/<name>`, make that mount writable (not the filesystem), bind it into place. */
  private async mountStaged(
    device: string,
    fsType: SupportedFs,
    options: string[],
    mountPoint: string,
    name: string,
  ): Promise<void> {
    const stagingRoot = path.join(path.dirname(mountPoint), '.staging');
    await fs.mkdir(stagingRoot, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    const stage = path.join(stagingRoot, name);
    await fs.mkdir(stage, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    if (await this.isMounted(stage)) await this.run('umount', ['-l', stage], this.privileged); // left by a crash
    await this.run('mount', ['-o', options.join(','), '-t', fsType, device, stage], this.privileged);
    try {
      await this.run('mount', ['-o', 'remount,bind,rw,nosuid,nodev,noexec', stage], this.privileged);
      await this.run('mount', ['--bind', stage, mountPoint], this.privileged);
    } finally {
      await this.run('umount', ['-l', stage], this.privileged).catch(() => {});
      await fs.rmdir(stage).catch(() => {});
    }
    const placed = await this.mountEntry(mountPoint);
    if (!placed || !['ro', 'nosuid', 'nodev', 'noexec'].every((o) => placed.options.includes(o))) {
      await this.run('umount', ['-l', mountPoint], this.privileged).catch(() => {});
      throw new MountError(
        'MOUNT_FAILED',
        `${mountPoint} was not read-only, nosuid, nodev, noexec once in place (${placed?.options.join(',') ?? 'not mounted'})`,
      );
    }
  }

  /**
   * Unmounts and removes the mount point directory. A busy mount (EBUSY) or a device that has gone (EIO, ENODEV) is
   * detached lazily (`umount -l`): it disappears from the tree at once and is released when the last file closes.
   */
  async unmount(mountPoint: string): Promise<{ wasMounted: boolean; lazy: boolean }> {
    const mp = path.resolve(mountPoint);
    let lazy = false;
    const wasMounted = await this.isMounted(mp);
    if (wasMounted) {
      try {
        await this.run('umount', [mp], this.privileged);
      } catch (e) {
        const stderr = e instanceof CommandError ? e.stderr : '';
        if (/not mounted|mountpoint not found|no mount point specified/i.test(stderr) && !(await this.isMounted(mp))) {
          // someone else unmounted it meanwhile
        } else if (/busy|Input\/output error|No such device|Stale/i.test(stderr)) {
          lazy = true;
          try {
            await this.run('umount', ['-l', mp], this.privileged);
          } catch (e2) {
            throw new MountError('UMOUNT_FAILED', `lazy unmount of ${mp}: ${(e2 as Error).message}`, { cause: e2 });
          }
        } else {
          throw new MountError('UMOUNT_FAILED', `unmounting ${mp}: ${(e as Error).message}`, { cause: e });
        }
      }
    }
    await fs.rmdir(mp).catch(() => {}); // leaves a non-empty directory (never ours to delete) alone
    return { wasMounted, lazy };
  }

  /** Whether something is mounted exactly at this path, per the mount table. */
  async isMounted(mountPoint: string): Promise<boolean> {
    return (await this.mountEntry(mountPoint)) !== null;
  }

  /** The mount table's entry for this mount point (the last one: what is visible there), or null. */
  async mountEntry(mountPoint: string): Promise<{ device: string; fsType: string; options: string[] } | null> {
    const table = await fs.readFile(this.options.procMounts ?? '/proc/self/mounts', 'utf8');
    const want = path.resolve(mountPoint);
    const lines = table
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length >= 4 && unescapeMountField(f[1]) === want);
    const last = lines.at(-1);
    return last ? { device: unescapeMountField(last[0]), fsType: last[2], options: last[3].split(',') } : null;
  }

  /**
   * Makes a volume this mounter mounted writable (`rw`), for the wipe gate only, or read-only again (`ro`, which also
   * flushes it to the device). Only mount points under the runtime root are touched. An ext4 whose journal needs
   * recovery is never made writable: it is mounted `noload`, and writing past an unreplayed journal corrupts it.
   */
  async remount(mountPoint: string, mode: 'rw' | 'ro'): Promise<void> {
    const mp = path.resolve(mountPoint);
    const root = await fs.realpath(this.options.runtimeRoot).catch(() => path.resolve(this.options.runtimeRoot));
    const entry = mp.startsWith(root + path.sep) ? await this.mountEntry(mp) : null;
    if (!entry) throw new MountError('NOT_MOUNTED', `${mp} is not a recorder volume mounted by dockd`);
    if (mode === 'rw' && entry.fsType === 'ext4') {
      const features = await this.ext4Features(entry.device);
      if (features.includes('needs_recovery'))
        throw new MountError(
          'REMOUNT_REFUSED',
          `${entry.device} has a journal that needs recovery: it is not made writable (check it with e2fsck elsewhere)`,
        );
    }
    try {
      await this.run('mount', ['-o', `remount,${mode}`, mp], this.privileged);
    } catch (e) {
      throw new MountError(
        'REMOUNT_FAILED',
        `remounting ${mp} ${mode === 'rw' ? 'read-write' : 'read-only'}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const after = await this.mountEntry(mp);
    if (!after?.options.includes(mode))
      throw new MountError('REMOUNT_FAILED', `${mp} is still ${after ? after.options[0] : 'unmounted'} after remount,${mode}`);
  }

  private async ext4Features(device: string): Promise<string[]> {
    try {
      const { stdout } = await this.run('dumpe2fs', ['-h', device], this.privileged);
      return /^Filesystem features:\s*(.*)$/m.exec(stdout)?.[1]?.trim().split(/\s+/) ?? [];
    } catch (e) {
      throw new MountError(
        'REMOUNT_REFUSED',
        `cannot read the ext4 superblock of ${device} (dumpe2fs, from e2fsprogs): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  private async requireDevice(device: string): Promise<void> {
    if (!(await exists(device))) throw new MountError('DEVICE_GONE', `${device} is not there (unplugged?)`);
  }
}

/** /proc/mounts escapes space, tab, newline and backslash as \ooo. */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}
