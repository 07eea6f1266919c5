import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GuestLink } from './guestLink.ts';
import { QmpClient } from './qmp.ts';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const CACHE = path.join(REPO, 'var', 'hil');

export interface GuestOptions {
  /** Private directory for the sockets, the spec and the console log (under the host tree the guest sees). */
  workDir: string;
  /** Host services offered on the guest's loopback: name → port (the same number on both sides). */
  services: Record<string, number>;
  memoryMb?: number;
  cpus?: number;
  /** How long the boot may take, up to the agent's `ready` (TCG on a busy machine is slow). */
  bootTimeoutMs?: number;
}

/** `tcg` unless HIL_ACCEL=kvm: KVM is not usable nested on these machines (see README, "Hardware in the loop"). */
export function accelerator(): 'kvm' | 'tcg' {
  const wanted = process.env.HIL_ACCEL ?? 'tcg';
  if (wanted !== 'kvm' && wanted !== 'tcg') throw new Error(`HIL_ACCEL must be kvm or tcg, got ${wanted}`);
  if (wanted === 'kvm' && !existsSync('/dev/kvm')) throw new Error('HIL_ACCEL=kvm but there is no /dev/kvm');
  return wanted;
}

/** Builds (or finds cached) the guest kernel and initramfs: scripts/hil/build-initramfs.sh. */
export function guestImages(): { kernel: string; initrd: string; version: string } {
  execFileSync('bash', [path.join(REPO, 'scripts', 'hil', 'build-initramfs.sh'), CACHE], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const version = readFileSync(path.join(CACHE, 'current'), 'utf8').trim();
  return { kernel: path.join(CACHE, `vmlinuz-${version}`), initrd: path.join(CACHE, `initramfs-${version}.img`), version };
}

/**
 * A qemu guest running Debian's kernel, the host tree over 9p under a tmpfs overlay, and the guest agent; driven over
 * QMP (USB devices come and go at run time on its xHCI controller) and the agent's virtio-serial channel.
 */
export class Guest {
  readonly qmp = new QmpClient();
  readonly link: GuestLink;
  readonly consoleLog: string;
  /** Host wall time from starting qemu to the guest agent's `ready`, and the guest's uptime then. */
  bootMs = 0;
  guestUptimeAtReady = 0;
  private qemu: ChildProcess | null = null;
  private exitedEarly: string | null = null;

  constructor(private readonly opts: GuestOptions) {
    this.link = new GuestLink(opts.services);
    this.consoleLog = path.join(opts.workDir, 'console.log');
  }

  async boot(): Promise<void> {
    const { kernel, initrd } = guestImages();
    const w = this.opts.workDir;
    const spec = path.join(w, 'guest-spec.json');
    await fs.writeFile(spec, JSON.stringify({ services: this.opts.services }));
    const accel = accelerator();
    const append = [
      'console=ttyS0',
      'quiet',
      'loglevel=4',
      'panic=-1',
      `hil.node=${process.execPath}`,
      `hil.agent=${path.join(REPO, 'scripts', 'hil', 'guest-agent.mjs')}`,
      `hil.spec=${spec}`,
    ].join(' ');
    const args = [
      '-nodefaults',
      '-no-reboot',
      '-display',
      'none',
      '-machine',
      `q35,accel=${accel}`,
      '-cpu',
      accel === 'kvm' ? 'host' : 'max',
      '-smp',
      String(this.opts.cpus ?? 2),
      '-m',
      String(this.opts.memoryMb ?? 2048),
      '-kernel',
      kernel,
      '-initrd',
      initrd,
      '-append',
      append,
      '-serial',
      `file:${this.consoleLog}`,
      '-qmp',
      `unix:${path.join(w, 'qmp.sock')},server=on,wait=off`,
      '-virtfs',
      'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
      '-device',
      'qemu-xhci,id=xhci,p2=8,p3=0',
      // A second controller whose port 1 is also a USB 3 port: a SuperSpeed storage plugged there comes up on its USB 3
      // bus, not on the USB 2 bus its serial (full speed) was on — the port path changes, as with a real recorder.
      '-device',
      'qemu-xhci,id=xhci3,p2=1,p3=1',
      '-device',
      'virtio-serial-pci,id=vser',
      '-chardev',
      `socket,id=hil,path=${path.join(w, 'hil.sock')},server=on,wait=off`,
      '-device',
      'virtserialport,chardev=hil,name=hil',
    ];
    const t0 = Date.now();
    // setpriv: qemu dies with this process, whatever way it ends (a guest left running would eat a core).
    const qemu = spawn('setpriv', ['--pdeathsig', 'KILL', 'qemu-system-x86_64', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.qemu = qemu;
    let stderr = '';
    qemu.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    qemu.once('exit', (code, signal) => {
      this.exitedEarly = `qemu exited (${signal ?? code}): ${stderr.trim()}`;
    });
    const timeout = this.opts.bootTimeoutMs ?? 240_000;
    try {
      await waitForFile(path.join(w, 'qmp.sock'), 10_000, () => this.exitedEarly);
      await this.qmp.connect(path.join(w, 'qmp.sock'));
      this.guestUptimeAtReady = await this.link.connect(path.join(w, 'hil.sock'), timeout);
    } catch (e) {
      throw new Error(`${(e as Error).message}; ${this.exitedEarly ?? ''}\nguest console:\n${await this.consoleTail()}`);
    }
    this.bootMs = Date.now() - t0;
  }

  async consoleTail(lines = 40): Promise<string> {
    const text = await fs.readFile(this.consoleLog, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    this.link.close();
    const qemu = this.qemu;
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      const exited = new Promise<void>((r) => qemu.once('exit', () => r()));
      await this.qmp.execute('quit').catch(() => qemu.kill('SIGKILL'));
      await Promise.race([exited, new Promise<void>((r) => setTimeout(r, 5000))]);
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
      await exited;
    }
    this.qmp.close();
  }
}

async function waitForFile(file: string, timeoutMs: number, failed: () => string | null): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    const f = failed();
    if (f) throw new Error(f);
    if (Date.now() > until) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
