import { execFileSync } from 'node:child_process';
import path from 'node:path';
import pino from 'pino';
import { MountHelperServer } from './mountHelperServer.ts';

const USAGE =
  'usage: dockd-mount [--socket PATH] [--runtime-root DIR] [--sysfs-root DIR] [--dev-root DIR] [--owner USER|UID:GID]';
const DEFAULTS = { 'runtime-root': '/run/dockd/mnt', 'sysfs-root': '/sys', 'dev-root': '/dev', owner: 'dockd' };

/**
 * `dockd-mount`: the mount helper (mountHelperServer.ts), as root. It listens on the socket systemd passes
 * (dockd-mount.socket) or, with --socket, on a path it makes itself; runs until SIGTERM/SIGINT (exit 0); a bad
 * argument or a runtime root that others could write stops it at once (exit 2) with one line.
 */
export async function main(argv: string[]): Promise<number> {
  const fail = (line: string) => {
    process.stderr.write(`dockd-mount: ${line}\n`);
    return 2;
  };
  const args: Record<string, string> = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') ?? '';
    if (!['socket', ...Object.keys(DEFAULTS)].includes(key) || !argv[i]!.startsWith('--') || argv[i + 1] === undefined)
      return fail(`unexpected ${argv[i]} (${USAGE})`);
    args[key] = argv[i + 1]!;
  }
  if (process.getuid?.() !== 0) return fail('must run as root: it mounts and unmounts recorder volumes for dockd');
  let owner: { uid: number; gid: number };
  try {
    owner = resolveOwner(args.owner!);
  } catch (e) {
    return fail((e as Error).message);
  }
  const systemdFd = process.env.LISTEN_FDS === '1' && process.env.LISTEN_PID === String(process.pid);
  if (!args.socket && !systemdFd) return fail(`no socket: give --socket PATH or start it from dockd-mount.socket (${USAGE})`);

  const log = pino(
    { base: { svc: 'dockd-mount' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 1, sync: true }),
  );
  const server = new MountHelperServer({
    runtimeRoot: path.resolve(args['runtime-root']!),
    sysfsRoot: path.resolve(args['sysfs-root']!),
    devRoot: path.resolve(args['dev-root']!),
    owner,
    log,
  });
  try {
    await server.start(args.socket ? { path: path.resolve(args.socket) } : { fd: 3 });
  } catch (e) {
    return fail((e as Error).message);
  }
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      process.once(signal, () => {
        log.info({ signal }, 'stopping');
        resolve();
      });
  });
  await server.stop();
  return 0;
}

/** `dockd` (a user name, through getent) or `UID:GID`. */
function resolveOwner(spec: string): { uid: number; gid: number } {
  const numeric = /^(\d+):(\d+)$/.exec(spec);
  if (numeric) return { uid: Number(numeric[1]), gid: Number(numeric[2]) };
  if (!/^[a-z_][a-z0-9_-]*$/.test(spec)) throw new Error(`--owner ${JSON.stringify(spec)}: a user name or UID:GID`);
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', spec], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`--owner ${spec}: no such user (create it: systemd-sysusers systemd/dockd-sysusers.conf)`);
  }
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
