import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SdNotify, SdNotifyError, startWatchdog, watchdogIntervalMs } from '../../drivers/systemd/sdNotify.ts';

/**
 * A real AF_UNIX datagram socket stands in for systemd's notify socket. Node cannot open one, and socat keeps the file
 * descriptor systemd-notify passes with BARRIER=1 (so the barrier would time out), so the receiver is a few lines of
 * perl (perl-base is Essential in Debian): plain recv() drops passed descriptors, which completes the barrier just as
 * the service manager does.
 */
const RECEIVER = `
use strict; use Socket; $| = 1;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!";
print "LISTENING\\n";
while (1) { my $m; defined(recv($s, $m, 65536, 0)) or die "recv: $!"; $m =~ s/\\\\/\\\\\\\\/g; $m =~ s/\\n/\\\\n/g; print "MSG $m\\n"; }
`;

class NotifySocket {
  readonly messages: string[] = [];
  private waiters: Array<() => void> = [];
  private constructor(
    readonly path: string,
    private readonly child: ChildProcess,
  ) {}

  static async open(dir: string): Promise<NotifySocket> {
    const p = path.join(dir, 'notify.sock');
    const child = spawn('perl', ['-e', RECEIVER, p], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sock = new NotifySocket(p, child);
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`notify socket receiver exited (${code})`)));
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === 'LISTENING') resolve();
          else if (line.startsWith('MSG ')) {
            sock.messages.push(line.slice(4).replace(/\\(n|\\)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')));
            for (const w of sock.waiters.splice(0)) w();
          }
        }
      });
    });
    return sock;
  }

  /** Messages other than systemd-notify's own BARRIER=1. */
  get notes(): string[] {
    return this.messages.filter((m) => m !== 'BARRIER=1');
  }

  async until(fits: (notes: string[]) => boolean): Promise<string[]> {
    while (!fits(this.notes)) await new Promise<void>((r) => this.waiters.push(r));
    return this.notes;
  }

  close(): void {
    this.child.kill('SIGTERM');
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function notifySocket(): Promise<NotifySocket> {
  if (spawnSync('sh', ['-c', 'command -v systemd-notify && command -v perl']).status !== 0) {
    throw new Error('sd_notify tests need systemd-notify (Debian package systemd) and perl; .ci/run installs systemd');
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-notify-'));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  const sock = await NotifySocket.open(dir);
  cleanups.push(() => sock.close());
  return sock;
}

describe('SdNotify through systemd-notify to a real AF_UNIX datagram socket', () => {
  it('sends READY=1 with a status, STATUS=, WATCHDOG=1 and STOPPING=1, in order', async () => {
    const sock = await notifySocket();
    const n = new SdNotify({ env: { ...process.env, NOTIFY_SOCKET: sock.path } });
    expect(n.enabled).toBe(true);
    expect(await n.ready('3 bays, 0 docked')).toBe(true);
    expect(await n.status('bay 1: copying 12/40\nsecond line')).toBe(true);
    expect(await n.watchdog()).toBe(true);
    expect(await n.stopping()).toBe(true);
    const notes = await sock.until((m) => m.length >= 4);
    expect(notes).toEqual([
      'READY=1\nSTATUS=3 bays, 0 docked',
      'STATUS=bay 1: copying 12/40 second line',
      'WATCHDOG=1',
      'STOPPING=1',
    ]);
    expect(sock.messages).toContain('BARRIER=1'); // systemd-notify waited for the receiver each time
  });

  it('is a no-op without NOTIFY_SOCKET (nothing is spawned)', async () => {
    const n = new SdNotify({ env: { PATH: process.env.PATH }, binary: '/nonexistent/systemd-notify' });
    expect(n.enabled).toBe(false);
    expect(await n.ready()).toBe(false);
    expect(await n.watchdog()).toBe(false);
  });

  it('rejects with SdNotifyError when the message cannot be delivered or is malformed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-notify-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const n = new SdNotify({ env: { ...process.env, NOTIFY_SOCKET: path.join(dir, 'nobody-listens.sock') } });
    const err = await n.ready().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SdNotifyError);
    expect((err as SdNotifyError).exitCode).not.toBe(0);
    await expect(n.notify({ 'READY=1\nX': '1' })).rejects.toThrow(/bad variable name/);
    const missing = new SdNotify({ env: { NOTIFY_SOCKET: path.join(dir, 's') }, binary: '/nonexistent/systemd-notify' });
    await expect(missing.ready()).rejects.toThrow(/cannot run systemd-notify/);
  });
});

describe('watchdog', () => {
  it('asks for a ping at half of WATCHDOG_USEC, for this process only', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42)).toBeNull();
    expect(watchdogIntervalMs({}, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42)).toBeNull();
  });

  it('pings WATCHDOG=1 repeatedly until stopped; nothing without a socket', async () => {
    const sock = await notifySocket();
    const env = { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) };
    let asked = 0;
    const wd = startWatchdog(new SdNotify({ env }), {
      env,
      healthy: () => {
        asked++;
        return true;
      },
    });
    cleanups.push(() => wd.stop());
    expect(wd.intervalMs).toBe(50);
    const notes = await sock.until((m) => m.filter((x) => x === 'WATCHDOG=1').length >= 3);
    wd.stop();
    expect(notes.every((x) => x === 'WATCHDOG=1')).toBe(true);
    expect(asked).toBeGreaterThanOrEqual(3);
    const none = startWatchdog(new SdNotify({ env: { WATCHDOG_USEC: '100000' } }), { env: { WATCHDOG_USEC: '100000' } });
    expect(none.intervalMs).toBeNull();
  });
});
