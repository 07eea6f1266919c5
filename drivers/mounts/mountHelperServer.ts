import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { BlockMounter, MountError, type CommandRunner } from './blockMount.ts';
import {
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  RequestError,
  parseRequest,
  type MountHelperRequest,
  type MountHelperResponse,
} from './mountHelperProtocol.ts';
import { checkUsbStorageDevice } from './usbStorageDevice.ts';

/**
 * The mount helper (bin/dockd-mount.js, systemd/dockd-mount.service): a small root process that does nothing but mount
 * recorder volumes read-only (nosuid, nodev, noexec) under the runtime mount root, make one writable for the wipe and
 * read-only again, and unmount them, for dockd, which then needs no capability at all. It listens on a unix socket
 * that only root and the dockd group may open (systemd/dockd-mount.socket), answers the four requests of
 * mountHelperProtocol.ts, one at a time, and refuses everything else.
 *
 * What it trusts nothing of: the device must be a USB mass-storage block device according to sysfs
 * (usbStorageDevice.ts); mount points are `<runtime root>/<name>` only, in a runtime root that only root can write
 * (checked at start and before each mount, up to /), so dockd can never plant a symlink where the helper mounts.
 */

export interface MountHelperOptions {
  runtimeRoot: string;
  sysfsRoot: string;
  devRoot: string;
  /** Owner of FAT/exFAT files, and group of a socket the helper makes itself: dockd's. */
  owner: { uid: number; gid: number };
  log: Logger;
  run?: CommandRunner;
}

const REQUEST_TIMEOUT_MS = 10_000;

export class MountHelperServer {
  private server: net.Server | null = null;
  private readonly mounter: BlockMounter;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: MountHelperOptions) {
    this.mounter = new BlockMounter({
      runtimeRoot: o.runtimeRoot,
      asRoot: false,
      ownerUid: o.owner.uid,
      ownerGid: o.owner.gid,
      propagated: true,
      ...(o.run ? { run: o.run } : {}),
    });
  }

  /** Listens on a socket path (made 0660, group = the owner's gid) or on a listening socket systemd passed as fd 3. */
  async start(listen: { path: string } | { fd: number }): Promise<void> {
    await checkRootOnly(this.o.runtimeRoot);
    const server = net.createServer((socket) => this.serve(socket));
    if ('path' in listen) {
      const st = await fs.lstat(listen.path).catch(() => null);
      if (st?.isSocket()) await fs.unlink(listen.path);
      else if (st) throw new Error(`${listen.path} exists and is not a socket`);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen('path' in listen ? { path: listen.path } : { fd: listen.fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if ('path' in listen) {
      await fs.chmod(listen.path, 0o660);
      await fs.chown(listen.path, 0, this.o.owner.gid);
    }
    this.server = server;
    this.o.log.info(
      { runtimeRoot: this.o.runtimeRoot, socket: 'path' in listen ? listen.path : `fd ${listen.fd}` },
      'mount helper listening',
    );
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.queue.catch(() => {});
  }

  private serve(socket: net.Socket): void {
    let buf = Buffer.alloc(0);
    let answered = false;
    const answer = (r: MountHelperResponse) => {
      if (answered) return;
      answered = true;
      socket.end(`${JSON.stringify(r)}\n`);
    };
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => {
      answer({ ok: false, code: 'BAD_REQUEST', message: 'no request line within 10 s' });
      socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_REQUEST_BYTES)
          answer({ ok: false, code: 'BAD_REQUEST', message: `a request is one line of at most ${MAX_REQUEST_BYTES} bytes` });
        return;
      }
      if (nl > MAX_REQUEST_BYTES) {
        answer({ ok: false, code: 'BAD_REQUEST', message: `a request is one line of at most ${MAX_REQUEST_BYTES} bytes` });
        return;
      }
      socket.setTimeout(0);
      const line = buf.subarray(0, nl).toString('utf8');
      let request: MountHelperRequest;
      try {
        request = parseRequest(line, this.o.devRoot);
      } catch (e) {
        const message = e instanceof RequestError ? e.message : 'malformed request';
        this.o.log.warn({ request: line.slice(0, 200), code: 'BAD_REQUEST', message }, 'request refused');
        answer({ ok: false, code: 'BAD_REQUEST', message });
        return;
      }
      // One operation at a time: a mount, the wipe's remounts and an unmount of the same volume never interleave.
      const done = this.queue.then(() => this.handle(request));
      this.queue = done.catch(() => {});
      void done.then(answer, (e: unknown) => {
        const code = e instanceof MountError ? e.code : 'MOUNT_FAILED';
        const message = (e as Error).message;
        this.o.log.warn({ ...request, code, message }, 'request failed');
        answer({ ok: false, code, message });
      });
    });
  }

  private async handle(r: MountHelperRequest): Promise<MountHelperResponse> {
    if (r.op === 'ping') return { ok: true, protocol: PROTOCOL_VERSION };
    const mountPoint = path.join(await checkRootOnly(this.o.runtimeRoot), r.name);
    if (r.op === 'mount') {
      await checkUsbStorageDevice({ sysfsRoot: this.o.sysfsRoot, device: r.device, usbPort: r.usbPort });
      const m = await this.mounter.mount(r.device, r.name);
      this.o.log.info({ device: r.device, usbPort: r.usbPort, mountPoint: m.mountPoint, fsType: m.fsType }, 'mounted read-only');
      return { ok: true, ...m };
    }
    if (r.op === 'remount') {
      await this.mounter.remount(mountPoint, r.mode);
      this.o.log.info(
        { mountPoint, mode: r.mode },
        r.mode === 'rw' ? 'remounted read-write for the wipe' : 'remounted read-only',
      );
      return { ok: true };
    }
    const res = await this.mounter.unmount(mountPoint);
    this.o.log.info({ mountPoint, ...res }, 'unmounted');
    return { ok: true, ...res };
  }
}

/**
 * The runtime root and every directory above it must be root's and writable by nobody else (a world-writable sticky
 * directory such as /tmp is fine: nobody else can rename root's entries in it). Returns the real path.
 */
export async function checkRootOnly(dir: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch (e) {
    throw new MountError(
      'MOUNT_FAILED',
      `runtime mount root ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  for (let d = real, first = true; ; first = false) {
    const st = await fs.lstat(d);
    const sticky = (st.mode & 0o1000) !== 0;
    if (!st.isDirectory() || st.uid !== 0 || ((st.mode & 0o022) !== 0 && (first || !sticky))) {
      throw new MountError(
        'MOUNT_FAILED',
        `runtime mount root ${real}: ${d} must be a directory of root's that nobody else can write (it is ${(st.mode & 0o7777).toString(8)}, uid ${st.uid})`,
      );
    }
    const up = path.dirname(d);
    if (up === d) return real;
    d = up;
  }
}
