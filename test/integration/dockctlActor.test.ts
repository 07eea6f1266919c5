/**
 * Who did it, as the kernel says: dockctl writes the real uid of the process that runs it (resolved to its name) into
 * the audit entries, and SUDO_UID only when it runs as root through sudo. $USER, $LOGNAME and $SUDO_USER, which
 * anyone can set, change nothing. dockctl runs as a child process as root and as other uids, on a catalog a real
 * daemon wrote (real mosquitto, real tus server).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DOCKCTL_BIN } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockVolume } from '../helpers/volume.ts';
import { dockctlAudit, dockctlFiles } from '../helpers/dockctlJson.ts';

const NOBODY = 65534;
const NAMELESS = 4242; // a uid with no account

interface As {
  uid: number;
  gid: number;
}

/** dockctl with exactly `env` (plus PATH) and, when given, as another uid. */
function dockctlAs(
  configFile: string,
  args: string[],
  env: Record<string, string>,
  as?: As,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DOCKCTL_BIN, '--config', configFile, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 120_000, ...(as ?? {}) },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('dockctl records the real user, never $USER', () => {
  const station = useStation({
    prefix: 'dockd-actor-',
    precondition: () => {
      if (process.getuid?.() !== 0) throw new Error('this test runs dockctl as other uids and needs root (CI runs as root)');
    },
  });

  it('names the real uid (with SUDO_UID only as root), whatever USER, LOGNAME and SUDO_USER say', async () => {
    const world = await station.world();
    const daemon = await station.startDaemon(world.configFile);
    const clip = await sampleMedia('video', 1, 651);
    await dockVolume(world.mountRoot, 'REC1', async (v) => {
      await fs.copyFile(clip, path.join(v, recordingName({ at: '20261128090000', seq: 1 })));
    });
    const sha = await sha256OfFile(clip);
    await waitFor(
      'the recording held for annotation',
      async () => (await dockctlFiles(world.configFile)).some((f) => f.sha256 === sha && f.state === 'needs-annotation'),
      90_000,
    );
    expect(await daemon.stop()).toBe(0);
    const liar = { USER: 'someoneelse', LOGNAME: 'someoneelse', SUDO_USER: 'mallory' };
    const lastBy = async (type: string) => (await dockctlAudit(world.configFile)).filter((e) => e.type === type).at(-1)!.data.by;

    // Root, claiming to be someone else.
    const annotate = await dockctlAs(
      world.configFile,
      ['annotate', sha.slice(0, 12), '--case-no', 'A-1', '--purpose', '现场执法', '--place', '幸福路12号'],
      liar,
    );
    expect(annotate.code, annotate.stderr).toBe(0);
    expect(await lastBy('file.annotated')).toBe('root (uid 0)');
    const history = (await dockctlFiles(world.configFile)).find((f) => f.sha256 === sha)!;
    expect(history.state).toBe('ready');

    // Root through sudo: the uid that ran sudo (SUDO_UID), not the name SUDO_USER claims.
    const sudo = await dockctlAs(world.configFile, ['verify'], {
      ...liar,
      USER: 'root',
      SUDO_UID: String(NOBODY),
      SUDO_USER: 'mallory',
    });
    expect(sudo.code, sudo.stdout + sudo.stderr).toBe(0);
    expect(await lastBy('verify')).toBe(`nobody (uid ${NOBODY} via sudo)`);
    const badSudo = await dockctlAs(world.configFile, ['verify'], { ...liar, SUDO_UID: '0; rm -rf /' });
    expect(badSudo.code).toBe(0);
    expect(await lastBy('verify')).toBe('root (uid 0)');

    // Another user: SUDO_UID means nothing when the process is not root.
    await fs.chmod(station.dir, 0o755);
    await fs.chown(world.configFile, 0, 0);
    const chownR = async (uid: number) => {
      for (const p of [
        world.storeDir,
        ...(await fs.readdir(world.storeDir, { recursive: true })).map((n) => path.join(world.storeDir, String(n))),
      ])
        await fs.chown(p, uid, uid);
    };
    await chownR(NOBODY);
    const asNobody = await dockctlAs(
      world.configFile,
      ['annotate', String(history.id), '--case-no', 'A-2', '--purpose', '现场执法'],
      { USER: 'root', LOGNAME: 'root', SUDO_USER: 'root', SUDO_UID: '0' },
      { uid: NOBODY, gid: NOBODY },
    );
    expect(asNobody.code, asNobody.stderr).toBe(0);
    expect(await lastBy('file.annotated')).toBe(`nobody (uid ${NOBODY})`);

    // A uid with no account is named by its number.
    await chownR(NAMELESS);
    const nameless = await dockctlAs(world.configFile, ['verify'], { USER: 'admin' }, { uid: NAMELESS, gid: NAMELESS });
    expect(nameless.code, nameless.stdout + nameless.stderr).toBe(0);
    expect(await lastBy('verify')).toBe(`uid ${NAMELESS}`);

    // None of the claimed names made it into the trail.
    const trail = JSON.stringify(await dockctlAudit(world.configFile));
    for (const claimed of ['someoneelse', 'mallory', '"admin']) expect(trail).not.toContain(claimed);
  }, 300_000);
});
