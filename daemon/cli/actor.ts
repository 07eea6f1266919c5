import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface RealUser {
  uid: number;
  name: string | null;
  viaSudo: boolean;
}

/**
 * Who runs this process, from what the kernel says rather than what the caller may set: the real uid, and the uid
 * that ran sudo only when this process is root through sudo (real and effective uid 0 and SUDO_UID). $USER,
 * $LOGNAME and $SUDO_USER are never read: anyone can set them.
 */
export function realUser(env: NodeJS.ProcessEnv = process.env): RealUser {
  const uid = process.getuid!();
  const euid = process.geteuid!();
  const sudoUid = env.SUDO_UID;
  if (uid === 0 && euid === 0 && sudoUid && /^\d{1,10}$/.test(sudoUid)) {
    const u = Number(sudoUid);
    return { uid: u, name: userName(u), viaSudo: true };
  }
  return { uid, name: userName(uid), viaSudo: false };
}

/** The account name of `uid` (NSS through getent, else /etc/passwd), or null when it has none. */
export function userName(uid: number): string | null {
  try {
    const line = execFileSync('getent', ['passwd', String(uid)], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const name = line.split(':')[0]?.trim();
    if (name) return name;
  } catch {
    /* no getent, or no such uid: try the file */
  }
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && f[2] === String(uid) && f[0]) return f[0];
    }
  } catch {
    /* unreadable: no name */
  }
  return null;
}

/** The actor written into audit entries by dockctl, e.g. `alice (uid 1000)` or `alice (uid 1000 via sudo)`. */
export function whoIsAsking(env: NodeJS.ProcessEnv = process.env): string {
  const u = realUser(env);
  const id = `uid ${u.uid}${u.viaSudo ? ' via sudo' : ''}`;
  return u.name ? `${u.name} (${id})` : id;
}
