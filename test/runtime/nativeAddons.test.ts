/**
 * The runtime this suite runs on (Node 20 here, Node 24 LTS in .ci/node-lts) with dockd's native addons: they load,
 * and a process that used them exits with its own code. better-sqlite3 12 built against Node >= 24.19 headers aborts
 * (SIGABRT, exit 134) when a Statement is collected with no environment entered, which the last GC at exit does as
 * soon as serialport is loaded too: the first case below is that process, and it must exit 0.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../daemon/config.ts';

function runHere(script: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const USE_ADDONS = `
  const Database = require('better-sqlite3');
  const db = new Database(':memory:');
  db.exec('create table t (id integer primary key, v text)');
  for (let i = 0; i < 2000; i++) db.prepare('insert into t (v) values (?)').run('x' + i); // statements left to the GC
  const n = db.prepare('select count(*) n from t').get().n;
  require('serialport');
  const { usb } = require('usb');
  console.log(JSON.stringify({ n, node: process.version, abi: process.versions.modules, usb: typeof usb.getDeviceList }));
`;

describe(`native addons on Node ${process.version}`, () => {
  it('better-sqlite3, serialport and usb load, and the process exits 0 after using them', () => {
    const r = runHere(USE_ADDONS);
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ n: 2000, node: process.version, abi: process.versions.modules, usb: 'function' });
  });

  it('an uncaught error still ends the process with exit 1 and its message, never an abort in a destructor', () => {
    const r = runHere(`${USE_ADDONS}; setTimeout(() => { throw new Error('on purpose'); }, 10);`);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Error: on purpose');
    expect(r.stderr).not.toContain('Assertion failed');
  });

  it('an idle GC with statements to collect does not abort the process', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        `${USE_ADDONS}
      setTimeout(() => { global.gc(); setTimeout(() => { global.gc(); console.log('alive'); }, 50); }, 50);`,
      ],
      { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe('alive');
  });
});
