/**
 * Start-up is clean on the runtime this suite runs on (Node 24 LTS in .ci/node-lts): a real dockd against a real
 * mosquitto and tus server says nothing on stderr but its one start line (no deprecation or experimental warnings),
 * logs JSON lines to a pipe, and stops with exit 0. On a terminal the log is readable lines instead (a real pty).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';
import { DaemonProcess, makeWorld, tempDir } from '../helpers/daemon.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { TusTestServer } from '../helpers/tusServer.ts';

let dir: string | null = null;
let daemon: DaemonProcess | null = null;
let broker: Mosquitto | null = null;
let tus: TusTestServer | null = null;

afterEach(async () => {
  await daemon?.kill9();
  await tus?.stop().catch(() => {});
  await broker?.stop().catch(() => {});
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  dir = null;
  daemon = null;
  broker = null;
  tus = null;
});

describe(`dockd on Node ${process.version}`, () => {
  it('starts with nothing on stderr but its start line, logs JSON to a pipe, and stops with exit 0', async () => {
    dir = await tempDir('dockd-clean-start-');
    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    const { configFile } = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { log: { level: 'info' } },
    });
    daemon = new DaemonProcess(configFile);
    daemon.start({ env: { NODE_OPTIONS: '' } });
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'connected to broker', 'dockd to reach the broker');
    expect(await daemon.stop()).toBe(0);

    const stderr = daemon.stderr.trim().split('\n');
    expect(stderr, daemon.stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^dockd: station test-st running — /);
    expect(daemon.stderr).not.toMatch(/Warning|DEP\d{4}|FSTDEP|\(node:\d+\)/);
    expect(daemon.logs.length).toBeGreaterThan(3);
    for (const l of daemon.logs) expect(l.level, JSON.stringify(l)).toBeGreaterThan(0); // level 0: a line that was not JSON
    expect(daemon.logs.filter((l) => /deprecat|experimental/i.test(JSON.stringify(l)))).toEqual([]);
  });

  it('writes readable lines to a terminal (a real pty) and JSON to a pipe, escaping control characters', async () => {
    dir = await tempDir('dockd-tty-log-');
    const script = path.join(dir, 'log.mjs');
    await fs.writeFile(
      script,
      `
      import { createLogger } from ${JSON.stringify(path.join(PACKAGE_ROOT, 'daemon/log.ts'))};
      const log = createLogger('info');
      log.child({ component: 'usb' }).info({ port: '1-1.2', name: 'evil\\u001b[2Jname', password: '000000' }, 'recorder storage mounted read-only');
      log.warn({ err: { message: 'boom', stack: 'Error: boom\\n    at here' } }, 'something failed');
    `,
    );
    const node = `${process.execPath} --import tsx ${script}`;
    const env = { ...process.env, NO_COLOR: '1', NODE_OPTIONS: '' };
    const onPty = spawnSync('script', ['-qec', node, '/dev/null'], { cwd: PACKAGE_ROOT, encoding: 'utf8', env, timeout: 60_000 });
    expect(onPty.status, onPty.stderr).toBe(0);
    const lines = onPty.stdout.replace(/\r/g, '').trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3}Z INFO {2}\[usb\] recorder storage mounted read-only {2}port=1-1\.2 name="evil\\u001b\[2Jname" password=\[redacted\]$/,
    );
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3}Z WARN {2}something failed$/);
    expect(lines.slice(2)).toEqual(['    Error: boom', '        at here']);
    expect(onPty.stdout).not.toContain('\x1b');

    const onPipe = spawnSync(process.execPath, ['--import', 'tsx', script], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
      env,
      timeout: 60_000,
    });
    expect(onPipe.status, onPipe.stderr).toBe(0);
    const json = onPipe.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json[0]).toMatchObject({
      level: 30,
      component: 'usb',
      name: 'evil\x1b[2Jname',
      password: '[redacted]',
      msg: 'recorder storage mounted read-only',
    });
    expect(json[1]).toMatchObject({ level: 40, msg: 'something failed' });
  });
});
