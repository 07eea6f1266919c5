import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../daemon/security/password.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import type { UserStore } from '../../daemon/store/users.ts';
import { DOCKCTL_BIN, makeWorld, runDockctl, tempDir } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockctlWithInput } from './stationUsers.ts';

describe('dockctl user add|passwd|disable|enable|list', () => {
  let dir: string;
  let world: Awaited<ReturnType<typeof makeWorld>>;

  beforeEach(async () => {
    dir = await tempDir('dockd-usercli-');
    world = await makeWorld(dir, { tusEndpoint: 'http://127.0.0.1:1/files/', mqttUrl: 'mqtt://127.0.0.1:2' });
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const withStore = <T>(fn: (users: UserStore, catalog: Catalog) => T): T => {
    const catalog = Catalog.open(world.storeDir);
    try {
      return fn(catalog.users, catalog);
    } finally {
      catalog.close();
    }
  };
  const user = (args: string[], input = '') => dockctlWithInput(world.configFile, ['user', ...args], input);

  it('adds officers and admins with hashes only, changes passwords (ending sessions), disables and lists them, and audits each change', async () => {
    expect(await user(['list'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/no catalog at .*start dockd once/) });
    withStore(() => {});
    expect(
      await user(['add', '张三', '--role', 'officer', '--officer-id', '012345', '--password-stdin'], '246810\n'),
    ).toMatchObject({ code: 0, stdout: 'user 张三 added: officer 012345, logs in with the officer id and PIN\n' });
    expect(await user(['add', 'chief', '--role', 'admin', '--password-stdin'], 'chief-pass-2026')).toMatchObject({ code: 0 });

    // Wrong input: a clear line, exit 2 (or 1 when refused), and nothing changes.
    const refusals: [string[], string, number, RegExp][] = [
      [['add', 'x', '--role', 'officer', '--password-stdin'], '123456', 2, /needs --officer-id/],
      [['add', 'x', '--role', 'boss', '--password-stdin'], '123456', 2, /--role admin or --role officer/],
      [
        ['add', 'x', '--role', 'officer', '--officer-id', '777777', '--password-stdin'],
        '12345',
        2,
        /PIN needs at least 6 characters; nothing changed/,
      ],
      [['add', 'y', '--role', 'admin', '--password-stdin'], 'short', 2, /password needs at least 10 characters/],
      [['add', 'y', '--role', 'admin', '--password-stdin'], 'has\u001b[2Jescape', 2, /control characters/],
      [
        ['add', '张三', '--role', 'officer', '--officer-id', '111111', '--password-stdin'],
        '123456',
        1,
        /user 张三 exists already/,
      ],
      [
        ['add', 'wang', '--role', 'officer', '--officer-id', '012345', '--password-stdin'],
        '123456',
        1,
        /already a login of user 张三/,
      ],
      [['add', 'a b', '--role', 'admin', '--password-stdin'], 'long-enough-1', 2, /without spaces/],
      [['add', 'z', '--role', 'admin'], '', 2, /no terminal to ask for the password on: give it on stdin with --password-stdin/],
      [['passwd', 'nobody', '--password-stdin'], '123456', 1, /no user nobody/],
      [['disable'], '', 2, /needs exactly one NAME/],
      [['remove', 'chief'], '', 2, /unknown user command remove/],
      [['add', 'q', '--role', 'admin', '--colour'], '', 2, /Unknown option '--colour'/],
    ];
    for (const [args, input, code, message] of refusals) {
      const r = await user(args, input);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code, stderr: expect.stringMatching(message) });
    }

    const listed = JSON.parse((await user(['list', '--json'])).stdout);
    expect(listed).toEqual([
      {
        id: expect.any(Number),
        name: 'chief',
        role: 'admin',
        officerId: null,
        disabled: false,
        fromConfig: false,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
        openSessions: 0,
      },
      expect.objectContaining({ name: '张三', role: 'officer', officerId: '012345', disabled: false }),
    ]);
    const table = (await user(['list'])).stdout;
    expect(table).toMatch(/^NAME +ROLE +OFFICER-ID +STATE +SESSIONS/);
    expect(table).toMatch(/张三 +officer +012345 +active +0/);

    // Never the plain text: the catalog holds scrypt hashes.
    const raw = await fs.readFile(path.join(world.storeDir, 'catalog.sqlite'));
    expect(raw.includes(Buffer.from('246810'))).toBe(false);
    expect(raw.includes(Buffer.from('chief-pass-2026'))).toBe(false);

    // A new PIN ends the open sessions.
    const token = withStore((u) => u.openSession(u.get('张三')!.id, '127.0.0.1', 3600_000).token);
    expect(await user(['passwd', '张三', '--password-stdin'], '135790\n')).toMatchObject({
      code: 0,
      stdout: 'PIN of 张三 changed; 1 open session(s) ended\n',
    });
    await withStore(async (u) => {
      expect(u.sessionUser(token)).toBeUndefined();
      expect(await verifyPassword('135790', u.forLogin('012345')!.hash)).toBe(true);
    });
    const again = withStore((u) => u.openSession(u.get('chief')!.id, '127.0.0.1', 3600_000).token);
    expect(await user(['disable', 'chief'])).toMatchObject({ code: 0, stdout: 'chief disabled; 1 open session(s) ended\n' });
    expect(await user(['disable', 'chief'])).toMatchObject({ code: 0, stdout: 'chief is already disabled\n' });
    withStore((u) => expect(u.sessionUser(again)).toBeUndefined());
    expect((await user(['list'])).stdout).toMatch(/chief +admin +- +disabled/);
    expect(await user(['enable', 'chief'])).toMatchObject({ code: 0, stdout: 'chief enabled\n' });

    const audit = JSON.parse((await runDockctl(world.configFile, ['audit', '--json'])).stdout) as {
      type: string;
      subject: string;
      data: Record<string, unknown>;
    }[];
    expect(audit.filter((a) => a.type.startsWith('user.')).map((a) => `${a.type} ${a.subject}`)).toEqual([
      'user.added 张三',
      'user.added chief',
      'user.password-changed 张三',
      'user.disabled chief',
      'user.enabled chief',
    ]);
    expect(audit.find((a) => a.type === 'user.added')!.data).toMatchObject({
      user: '张三',
      role: 'officer',
      officerId: '012345',
      by: expect.stringMatching(/uid \d+/),
    });
    expect(JSON.stringify(audit)).not.toMatch(/246810|135790|chief-pass/);
  }, 120_000);

  it('asks for the PIN twice on a terminal, without echo (a real pty through socat)', async () => {
    withStore(() => {});
    const cmd = `${process.execPath} ${DOCKCTL_BIN} --config ${world.configFile} user add 李四 --role officer --officer-id 054321`;
    const p = spawn('socat', ['-', `EXEC:${cmd},pty,setsid,ctty,stderr`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let seen = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      seen += d;
    });
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    await waitFor('the first prompt', () => seen.includes('PIN for 李四: '), 60_000);
    p.stdin.write('13579');
    p.stdin.write('x\u007f1\r');
    await waitFor('the second prompt', () => seen.includes('PIN for 李四 again: '), 30_000);
    p.stdin.write('135791\r');
    await waitFor('the result', () => seen.includes('user 李四 added'), 30_000);
    p.stdin.end();
    expect(await exited).toBe(0);
    expect(seen).not.toContain('13579');
    await withStore(async (u) => expect(await verifyPassword('135791', u.forLogin('054321')!.hash)).toBe(true));
  }, 120_000);
});
