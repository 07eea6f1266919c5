/**
 * `npm run dock-emulated -- [options]`: plugs in N emulated recorders at once. Each speaks the BC command protocol on
 * a pty whose link appears in the serial dir (standing in for /dev/serial/by-id) and, once told `BC+UDISKEN=1`,
 * leaves command mode and returns as mass storage: its volume (sample recordings made with ffmpeg, GA/T 947 names)
 * appears as `<mount root>/<serial>`. Runs until Ctrl-C, then unplugs them all.
 *
 *   --config FILE        dockd config: mount root, serial dir and known devices are taken from it (default config)
 *   --serial-dir DIR     where the pty links appear (default: dock.serialDir of the config, else var/serial/by-id)
 *   --mount-root DIR     where volumes appear (default: the config's first dock.mountRoots)
 *   --count N            how many recorders (default 2); the first ones take the config's devices
 *   --work DIR           where the recorders' own volumes are kept (default var/emulated)
 *   --password PW        login password of every recorder (default 000000)
 *   --clock-offset S     recorder clocks run S seconds ahead (negative: behind) (default 90)
 *   --time-zone TZ       zone of the recorders' wall clocks (default: local)
 *   --sucess             answer +LOGIN:Sucess like some firmware
 *   --fault NAME[=V]     on every recorder: wrongPassword, silence, garbage, slowReplies=MS, neverReturnsAsStorage,
 *                        vanishesBeforeUdiskReply, unplugMidCopy=MS (repeatable)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { configFileFromArgs, loadConfig, PACKAGE_ROOT } from '../daemon/config.ts';
import { EmulatedRecorder, type EmulatorFaults } from '../drivers/emulator/index.ts';
import { recordingName, sampleMedia, type SampleKind } from './media.ts';

function fail(message: string): never {
  console.error(`dock-emulated: ${message}`);
  process.exit(2);
}

function parseFaults(specs: string[]): EmulatorFaults {
  const faults: EmulatorFaults = {};
  for (const spec of specs) {
    const [name, value] = spec.split('=', 2);
    const ms = () => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) fail(`--fault ${name} needs =MS (a whole number of milliseconds)`);
      return n;
    };
    switch (name) {
      case 'wrongPassword':
        faults.wrongPassword = true;
        break;
      case 'silence':
        faults.silence = true;
        break;
      case 'garbage':
        faults.garbage = true;
        break;
      case 'neverReturnsAsStorage':
        faults.neverReturnsAsStorage = true;
        break;
      case 'vanishesBeforeUdiskReply':
        faults.vanishesBeforeUdiskReply = true;
        break;
      case 'slowReplies':
        faults.slowRepliesMs = ms();
        break;
      case 'unplugMidCopy':
        faults.unplugMidCopyMs = ms();
        break;
      default:
        fail(
          `unknown fault ${JSON.stringify(name)} (wrongPassword, silence, garbage, slowReplies=MS, neverReturnsAsStorage, vanishesBeforeUdiskReply, unplugMidCopy=MS)`,
        );
    }
  }
  return faults;
}

/** A small volume: two clips, a photo and an audio file, distinct per recorder; rebuilt on every run. */
async function buildVolume(dir: string, serial: string, officerId: string, index: number): Promise<number> {
  await fs.rm(dir, { recursive: true, force: true });
  const media = path.join(dir, 'DCIM', '100MEDIA');
  await fs.mkdir(media, { recursive: true });
  const items: Array<{ kind: SampleKind; ext: string; at: string; important?: boolean }> = [
    { kind: 'video', ext: 'mp4', at: '20261128083000' },
    { kind: 'video', ext: 'mp4', at: '20261128090500', important: true },
    { kind: 'photo', ext: 'jpg', at: '20261128102000' },
    { kind: 'audio-wav', ext: 'wav', at: '20261128102500' },
  ];
  for (const [seq, item] of items.entries()) {
    const source = await sampleMedia(item.kind, 2, 100 + index * 10 + seq);
    await fs.copyFile(
      source,
      path.join(media, recordingName({ officerId, serial, at: item.at, seq: seq + 1, important: item.important, ext: item.ext })),
    );
  }
  return items.length;
}

const { file, rest } = configFileFromArgs(process.argv.slice(2));
const { values } = parseArgs({
  args: rest,
  options: {
    'serial-dir': { type: 'string' },
    'mount-root': { type: 'string' },
    count: { type: 'string', default: '2' },
    work: { type: 'string' },
    password: { type: 'string', default: '000000' },
    'clock-offset': { type: 'string', default: '90' },
    'time-zone': { type: 'string' },
    sucess: { type: 'boolean', default: false },
    fault: { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});
const { config } = loadConfig(file);
const configuredSerialDir = (config.dock as unknown as Record<string, unknown>).serialDir;
const serialDir = path.resolve(
  values['serial-dir'] ??
    (typeof configuredSerialDir === 'string' ? configuredSerialDir : path.join(PACKAGE_ROOT, 'var', 'serial', 'by-id')),
);
const mountRoot = path.resolve(values['mount-root'] ?? config.dock.mountRoots[0]);
const work = path.resolve(values.work ?? path.join(PACKAGE_ROOT, 'var', 'emulated'));
const count = Number(values.count);
if (!Number.isInteger(count) || count < 1 || count > 99) fail('--count must be 1-99');
const offsetS = Number(values['clock-offset']);
if (!Number.isFinite(offsetS)) fail('--clock-offset must be a number of seconds');
const faults = parseFaults(values.fault);

const recorders: EmulatedRecorder[] = [];
let stopping = false;
async function stopAll(code: number): Promise<never> {
  stopping = true;
  await Promise.allSettled(recorders.map((r) => r.stop()));
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  for (let i = 0; i < count; i++) {
    const known = config.devices[i];
    const serial = known?.serial ?? `EMU${String(i + 1).padStart(4, '0')}`;
    const officerId = known?.officerId ?? `0100${String(i + 1).padStart(2, '0')}`;
    const volumeDir = path.join(work, serial, 'volume');
    const files = await buildVolume(volumeDir, serial, officerId, i);
    const rec = new EmulatedRecorder({
      serial,
      officerId,
      officerName: known?.officerName ?? `警员${i + 1}`,
      unitNo: 'U0001',
      password: values.password,
      loginWord: values.sucess ? 'Sucess' : 'OK',
      battery: 90 - i * 7,
      clockOffsetMs: offsetS * 1000,
      timeZone: values['time-zone'],
      volumeDir,
      mountRoot,
      port: { pty: path.join(serialDir, `usb-BC_Emulated_Recorder_${serial}-if00`) },
      faults,
    });
    const say = (msg: string) => console.log(`[${serial}] ${msg}`);
    rec.on('command', (line) => say(`← ${line}`));
    rec.on('state', (state) => say(`state: ${state}`));
    rec.on('storage', (p) => say(`storage mounted at ${p}`));
    rec.on('unplugged', () => {
      if (!stopping) say('unplugged');
    });
    rec.on('error', (e) => say(`error: ${e.message}`));
    recorders.push(rec);
    await rec.plugIn();
    say(
      `plugged in: tty ${rec.stationPath}, ${files} recordings, officer ${officerId}, clock ${offsetS >= 0 ? '+' : ''}${offsetS} s`,
    );
  }
} catch (e) {
  console.error(`dock-emulated: ${(e as Error).message}`);
  await stopAll(1);
}
console.log(
  `${count} emulated recorder(s) in command mode; serial dir ${serialDir}, mount root ${mountRoot}. Ctrl-C unplugs them.`,
);
