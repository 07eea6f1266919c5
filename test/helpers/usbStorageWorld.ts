import fs from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import type { DaemonProcess } from './daemon.ts';
import { PORT, sh } from './mountHelperWorld.ts';
import { waitFor } from './ports.ts';
import type { TusTestServer } from './tusServer.ts';

const FIXTURES = path.join(PACKAGE_ROOT, 'fixtures/sysfs');
/** The bay of the recorder's USB port, in every USB test station. */
export const BAY = 'B2';
const devicesOf = (root: string) => path.join(root, 'bus/usb/devices');

export interface RecorderClip {
  name: string;
  /** Its path on the recorder's volume. */
  rel: string;
  sha256: string;
  size: number;
}

/**
 * A recorder's files under `content`: one GA/T 947 named clip of officer 012345 on recorder 1234567 per variant, with a
 * complete sidecar, in DCIM/100MEDIA, recorded ten minutes apart from the full `hour` (yyyyMMddHH); and a duty note
 * at the top when asked for.
 */
export async function recorderContent(
  content: string,
  o: { variants: number[]; seconds: number; hour: string; caseNo: string; note?: boolean },
): Promise<RecorderClip[]> {
  const media = path.join(content, 'DCIM', '100MEDIA');
  await fs.mkdir(media, { recursive: true });
  const clips: RecorderClip[] = [];
  for (const [i, variant] of o.variants.entries()) {
    const source = await sampleMedia('video', o.seconds, variant);
    const name = recordingName({
      officerId: '012345',
      serial: '1234567',
      at: `${o.hour}${String(i * 10).padStart(2, '0')}00`,
      seq: i + 1,
    });
    await fs.copyFile(source, path.join(media, name));
    await fs.writeFile(
      path.join(media, name.replace(/\.mp4$/, '.meta.json')),
      JSON.stringify({ caseNo: `${o.caseNo}-${i + 1}`, purpose: '现场执法', place: '幸福路12号' }),
    );
    clips.push({ name, rel: `DCIM/100MEDIA/${name}`, sha256: await sha256OfFile(source), size: (await fs.stat(source)).size });
  }
  if (o.note) await fs.writeFile(path.join(content, 'notes.txt'), '值班记录 duty notes\n');
  return clips;
}

/** An ext4 image of `content` (a directory), as its files are, on a loop device. */
export async function ext4LoopDevice(content: string, image: string, sizeMiB: number): Promise<string> {
  await fs.writeFile(image, '');
  await fs.truncate(image, sizeMiB * 1024 * 1024);
  sh('mkfs.ext4', ['-q', '-F', '-d', content, image]);
  try {
    return sh('losetup', ['--find', '--show', image]);
  } catch (e) {
    throw new Error(`losetup failed (no loop devices in this container?): ${(e as Error).message}`);
  }
}

export interface UsbStorageWorld {
  sysfsRoot: string;
  devRoot: string;
  runtimeMountRoot: string;
  /** A device appears: its directory is built beside the tree and renamed in, so it appears at once (as in sysfs). */
  plug(fromTree?: string, portPath?: string): Promise<void>;
  unplug(portPath?: string): Promise<void>;
}

/**
 * What the daemon's sysfs poller and mounter look at, for a daemon that mounts as root: a copy of the
 * fixtures/sysfs/recorder-storage tree with the hub but without the recorder, `<dev>/sdb1` a link to `loop`, and an
 * empty runtime mount root.
 */
export async function usbStorageWorld(dir: string, loop: string): Promise<UsbStorageWorld> {
  const devRoot = path.join(dir, 'dev');
  await fs.mkdir(devRoot);
  await fs.symlink(loop, path.join(devRoot, 'sdb1'));
  const sysfsRoot = path.join(dir, 'sys');
  await fs.cp(path.join(FIXTURES, 'recorder-storage'), sysfsRoot, { recursive: true });
  await fs.rm(path.join(devicesOf(sysfsRoot), PORT), { recursive: true });
  const runtimeMountRoot = path.join(dir, 'run', 'mnt');
  await fs.mkdir(runtimeMountRoot, { recursive: true });
  return {
    sysfsRoot,
    devRoot,
    runtimeMountRoot,
    async plug(fromTree = 'recorder-storage', portPath = PORT) {
      const staging = path.join(sysfsRoot, `.staging-${portPath}`);
      await fs.cp(path.join(devicesOf(path.join(FIXTURES, fromTree)), portPath), staging, { recursive: true });
      await fs.rename(staging, path.join(devicesOf(sysfsRoot), portPath));
    },
    unplug: (portPath = PORT) => fs.rm(path.join(devicesOf(sysfsRoot), portPath), { recursive: true }),
  };
}

/**
 * The `dock` and `usb` config sections of a station whose bay B2 is the recorder's USB port, polling sysfs (every
 * second) at the paths given: the world's, and the mount helper's socket when dockd mounts through it.
 */
export function usbBayConfig(
  dir: string,
  paths: { sysfsRoot: string; devRoot: string; runtimeMountRoot: string; mountHelper?: string },
  wipe?: 'after-archive',
): Record<string, unknown> {
  return {
    dock: {
      mountRoots: [path.join(dir, 'dock')],
      settleMs: 100,
      rescanSeconds: 1,
      bays: [{ id: BAY, usbPort: PORT }],
      ...(wipe ? { wipe } : {}),
    },
    usb: {
      enabled: true,
      hotplug: 'sysfs',
      sysfsRoot: paths.sysfsRoot,
      devRoot: paths.devRoot,
      runtimeMountRoot: paths.runtimeMountRoot,
      ...(paths.mountHelper ? { mountHelper: paths.mountHelper } : {}),
    },
  };
}

/** A check to call inside every wait: throws with dockd's stderr once the daemon has exited, so a crash fails at once. */
export function daemonAlive(daemon: DaemonProcess): () => void {
  return () => {
    if (daemon.proc?.exitCode !== null && daemon.proc?.exitCode !== undefined)
      throw new Error(`dockd exited ${daemon.proc.exitCode}: ${daemon.stderr}`);
  };
}

/** Waits until the tus server has received (and re-hashed) every clip, failing at once if dockd exits. */
export async function waitForClipsAtTus(tus: TusTestServer, clips: RecorderClip[], alive: () => void): Promise<void> {
  await waitFor(
    `${clips.length} clips verified by the tus server`,
    () => {
      alive();
      return clips.every((c) => tus.finished.some((u) => u.sha256 === c.sha256));
    },
    120_000,
    200,
  );
}
