import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { MountError, SUPPORTED_FS, type MountErrorCode, type MountedVolume, type VolumeMounter } from './blockMount.ts';
import type { MountHelperRequest } from './mountHelperProtocol.ts';

/**
 * dockd's side of the mount helper (usb.mountHelper): mounts, remounts and unmounts through its unix socket, so the
 * daemon itself holds no capability. Errors come back as MountError with the helper's code; a helper that cannot be
 * reached is HELPER_UNAVAILABLE.
 */
export class MountHelperClient implements VolumeMounter {
  constructor(private readonly o: { socketPath: string; runtimeRoot: string; timeoutMs?: number }) {}

  async ping(): Promise<void> {
    await this.request({ op: 'ping' });
  }

  async mount(device: string, name: string, opts: { usbPort?: string } = {}): Promise<MountedVolume> {
    if (!opts.usbPort)
      throw new MountError('BAD_REQUEST', `mounting ${device} through the mount helper needs the recorder's USB port`);
    const r = await this.request({ op: 'mount', device, usbPort: opts.usbPort, name });
    const fsType = SUPPORTED_FS.find((f) => f === r.fsType);
    if (typeof r.mountPoint !== 'string' || !fsType || !Array.isArray(r.options))
      throw new MountError('MOUNT_FAILED', `the mount helper answered a mount with ${JSON.stringify(r)}`);
    return { device, mountPoint: r.mountPoint, fsType, options: r.options.map(String) };
  }

  async unmount(mountPoint: string): Promise<{ wasMounted: boolean; lazy: boolean }> {
    const r = await this.request({ op: 'unmount', name: await this.nameOf(mountPoint) });
    return { wasMounted: r.wasMounted === true, lazy: r.lazy === true };
  }

  async remount(mountPoint: string, mode: 'rw' | 'ro'): Promise<void> {
    await this.request({ op: 'remount', name: await this.nameOf(mountPoint), mode });
  }

  /** The helper mounts at `<runtime root>/<name>` and nowhere else: anything else was never mounted by it. */
  private async nameOf(mountPoint: string): Promise<string> {
    const mp = path.resolve(mountPoint);
    const roots = [path.resolve(this.o.runtimeRoot), await fs.realpath(this.o.runtimeRoot).catch(() => null)];
    if (!roots.includes(path.dirname(mp)))
      throw new MountError('NOT_MOUNTED', `${mp} is not a recorder volume mounted by the mount helper`);
    return path.basename(mp);
  }

  private request(req: MountHelperRequest): Promise<Record<string, unknown>> {
    const timeoutMs = this.o.timeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path: this.o.socketPath });
      let buf = '';
      let settled = false;
      const settle = (f: () => void) => {
        if (!settled) {
          settled = true;
          socket.destroy();
          f();
        }
      };
      socket.setTimeout(timeoutMs, () =>
        settle(() =>
          reject(
            new MountError(
              'HELPER_UNAVAILABLE',
              `the mount helper at ${this.o.socketPath} did not answer ${req.op} within ${timeoutMs / 1000} s`,
            ),
          ),
        ),
      );
      socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
      socket.on('data', (d) => {
        buf += d;
        if (buf.length > 64 * 1024)
          settle(() => reject(new MountError('MOUNT_FAILED', 'the mount helper answered more than 64 KiB')));
      });
      socket.on('error', (e: NodeJS.ErrnoException) =>
        settle(() =>
          reject(
            new MountError(
              'HELPER_UNAVAILABLE',
              `the mount helper at ${this.o.socketPath} cannot be reached (${e.code ?? e.message}): is dockd-mount.socket running?`,
              { cause: e },
            ),
          ),
        ),
      );
      socket.on('close', () =>
        settle(() =>
          reject(
            new MountError(
              'HELPER_UNAVAILABLE',
              `the mount helper at ${this.o.socketPath} closed the connection without answering ${req.op}`,
            ),
          ),
        ),
      );
      socket.on('end', () =>
        settle(() => {
          let r: Record<string, unknown>;
          try {
            r = JSON.parse(buf.trim()) as Record<string, unknown>;
          } catch {
            reject(new MountError('MOUNT_FAILED', `the mount helper answered ${req.op} with something that is not JSON`));
            return;
          }
          if (r.ok === true) resolve(r);
          else
            reject(
              new MountError(
                (typeof r.code === 'string' ? r.code : 'MOUNT_FAILED') as MountErrorCode,
                `mount helper: ${String(r.message ?? 'refused')}`,
              ),
            );
        }),
      );
    });
  }
}
