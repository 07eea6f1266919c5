#!/usr/bin/env node
// Installs what dockd needs before `npm start` / `npm test` / `npm run bench` / `npm run test:interop` / `npm run
// test:hil`: npm packages
// when node_modules is missing or older than package-lock.json, and Debian packages (ffmpeg; mosquitto and socat for
// tests; rabbitmq-server for the interop tests) with apt-get when running as root. Otherwise it prints the exact
// command to run and exits non-zero. Plain Node, no dependencies.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const purpose = process.argv[2] ?? 'run';
const NEEDS = {
  run: { ffmpeg: 'ffmpeg', ffprobe: 'ffmpeg' },
  test: {
    ffmpeg: 'ffmpeg',
    ffprobe: 'ffmpeg',
    mosquitto: 'mosquitto',
    mosquitto_passwd: 'mosquitto',
    socat: 'socat',
    chromium: 'chromium',
    'systemd-analyze': 'systemd',
    'mkfs.ext4': 'e2fsprogs',
    losetup: 'mount',
    openssl: 'openssl',
    script: 'bsdutils',
    unshare: 'util-linux',
    setpriv: 'util-linux',
    // how much of a file is in the page cache: a large copy is written around it (copyAndHash's direct writes)
    fincore: 'util-linux-extra',
  },
  bench: { ffmpeg: 'ffmpeg', ffprobe: 'ffmpeg', sha256sum: 'coreutils', mosquitto: 'mosquitto' },
  // npm run test:interop: RabbitMQ's MQTT plugin beside mosquitto (the node is started by the tests themselves).
  interop: {
    ffmpeg: 'ffmpeg',
    ffprobe: 'ffmpeg',
    mosquitto: 'mosquitto',
    'rabbitmq-server': 'rabbitmq-server',
    epmd: 'erlang-base',
  },
  // npm run test:hil: a qemu guest (Debian's kernel, fetched by scripts/hil/build-initramfs.sh with apt-get download,
  // never installed here; busybox-static in its initramfs) and the recorder volumes (FAT32 by mtools, exFAT, fsck). udev:
  // the guest runs the host's systemd-udevd (a link to udevadm), whose events libusb's hotplug listens to.
  hil: {
    ffmpeg: 'ffmpeg',
    ffprobe: 'ffmpeg',
    mosquitto: 'mosquitto',
    'qemu-system-x86_64': 'qemu-system-x86',
    busybox: 'busybox-static',
    'mkfs.vfat': 'dosfstools',
    'fsck.vfat': 'dosfstools',
    mcopy: 'mtools',
    'mkfs.exfat': 'exfatprogs',
    setpriv: 'util-linux',
    'dpkg-deb': 'dpkg',
    udevadm: 'udev',
  },
}[purpose];
if (!NEEDS) {
  console.error(`ensure-deps: unknown purpose ${purpose} (run, test, bench, interop, hil)`);
  process.exit(2);
}

function say(msg) {
  process.stderr.write(`dockd setup: ${msg}\n`);
}

// package.json engines: Node 22 and 24 (LTS) are supported; 20 (end of life since April 2026) still runs, for
// development machines that have nothing newer. 24 is what the station's systemd unit runs (README, Runtime).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  say(`Node.js 22 or 24 is needed (20.19 at the least), this is ${process.version}`);
  process.exit(1);
}
if (major === 20) say(`Node.js ${process.version} is past its end of life: stations run Node 24 LTS (README, Runtime)`);
else if (major !== 22 && major !== 24)
  say(`Node.js ${process.version} is not a supported release (22 and 24 LTS are); better-sqlite3 12 may not build on it`);

// npm packages
const modules = path.join(root, 'node_modules');
const lock = path.join(root, 'package-lock.json');
const stamp = path.join(modules, '.package-lock.json');
const stale = !existsSync(stamp) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(stamp).mtimeMs + 1000);
// A work tree whose node_modules links to another checkout's must not reinstall it: npm ci would empty the other one.
const linked = existsSync(modules) && lstatSync(modules).isSymbolicLink();
if (stale && linked) say(`node_modules is a link (${modules}): not reinstalling it; run npm ci where it points if it is stale`);
else if (stale) {
  say('installing npm packages (npm ci)');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    say(`npm ci failed; run it by hand in ${root}`);
    process.exit(1);
  }
}

// Debian packages
const searchPath = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const onPath = (cmd) =>
  spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', env: { ...process.env, PATH: searchPath } }).status === 0;
const missing = [
  ...new Set(
    Object.entries(NEEDS)
      .filter(([cmd]) => !onPath(cmd))
      .map(([, pkg]) => pkg),
  ),
];
if (missing.length) {
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    say(`installing Debian packages: ${missing.join(' ')}`);
    try {
      execFileSync(
        'sh',
        ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd.replace('install -y', 'install -y -q --no-install-recommends')}`],
        { stdio: 'inherit' },
      );
    } catch {
      say(`apt-get failed; run: ${cmd}`);
      process.exit(1);
    }
  } else {
    say(`missing ${missing.join(', ')}; run as root: ${cmd}`);
    process.exit(1);
  }
}
