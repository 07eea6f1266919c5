/**
 * `npm run dock-sample [-- --assign OFFICER]`: builds a sample recorder volume with ffmpeg (GA/T 947 names, a
 * sidecar, a clip that needs annotation, an IMP clip, a photo and an audio file) and docks it through the recorder
 * emulator, over the real protocol: its control channel appears in dock.serialDir (as the first bay of dock.bays with
 * a `tty`, else under its own name), dockd logs in, reads the serial and the officer, measures and sets the clock
 * (the recorder runs 90 s ahead), reads the battery and switches it to mass storage; its volume then appears under
 * the first mount root. The recorder keeps its control channel while docked, so it can be assigned to an officer
 * (`dockctl assign`, or `--assign OFFICER` here once it is docked). Runs until Ctrl-C, which unplugs it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runPoolCommand } from '../daemon/cli/poolCommands.ts';
import { configFileFromArgs, loadConfig, PACKAGE_ROOT } from '../daemon/config.ts';
import { sleep } from '../daemon/sleep.ts';
import { EmulatedRecorder } from '../drivers/emulator/index.ts';
import { formatBcTime } from '../drivers/protocols/bc/index.ts';
import { recordingName, sampleMedia } from './media.ts';

const { file, rest } = configFileFromArgs(process.argv.slice(2));
const { values } = parseArgs({ args: rest, options: { assign: { type: 'string' } }, strict: true });
const { config } = loadConfig(file);
const device = config.devices[0];
const serial = device?.serial ?? '1234567';
const officerId = device?.officerId ?? '012345';
const mountRoot = path.resolve(config.dock.mountRoots[0]);
const serialDir = path.resolve(config.dock.serialDir);
const tty = config.dock.bays.find((b) => b.tty)?.tty ?? `usb-BC_Sample_Recorder_${serial}-if00`;
const bay = config.dock.bays.find((b) => b.tty === tty)?.id ?? null;
// The recorder's own storage: rebuilt on every run (what it exposes on the dock is a copy of it).
const volumeDir = path.join(PACKAGE_ROOT, 'var', 'sample-recorder', serial);

await fs.rm(volumeDir, { recursive: true, force: true });
const dir = path.join(volumeDir, 'DCIM', '100MEDIA');
await fs.mkdir(dir, { recursive: true });
await fs.mkdir(serialDir, { recursive: true });
await fs.mkdir(mountRoot, { recursive: true });
const rec = new EmulatedRecorder({
  serial,
  officerId,
  officerName: device?.officerName ?? '',
  unitNo: 'U0001',
  password: device?.password ?? config.dock.recorderPassword,
  battery: 76,
  clockOffsetMs: 90_000,
  timeZone: config.station.timeZone,
  volumeDir,
  mountRoot,
  keepsControlChannel: true,
  port: { pty: path.join(serialDir, tty) },
});

// The recordings were made during the last few hours, by the recorder's own clock, so that they dock in time
// (no LATE_OFFLOAD: dated days back, every run would raise it).
const HOUR_MS = 3_600_000;
const recordedAt = (hoursAgo: number) => new Date(rec.clock().getTime() - hoursAgo * HOUR_MS);
const day = formatBcTime(recordedAt(0), config.station.timeZone).slice(0, 8);
/** Puts a recording on the recorder, named with its capture time and written then (its mtime). */
async function put(source: string, hoursAgo: number, seq: number, extra: Partial<Parameters<typeof recordingName>[0]> = {}) {
  const at = recordedAt(hoursAgo);
  const name = recordingName({ officerId, serial, at: formatBcTime(at, config.station.timeZone), seq, ...extra });
  await fs.copyFile(source, path.join(dir, name));
  await fs.utimes(path.join(dir, name), at, at);
  return name;
}
const sidecar = (name: string, meta: Record<string, string>) =>
  fs.writeFile(path.join(dir, name.replace(/\.mp4$/, '.meta.json')), JSON.stringify(meta));

const withSidecar = await put(await sampleMedia('video', 3, 1), 3.5, 1);
await sidecar(withSidecar, { caseNo: `A${day}-001`, purpose: '现场检查全过程', place: '幸福路12号' });
const important = await put(await sampleMedia('video', 2, 2), 3, 2, { important: true });
await sidecar(important, { caseNo: `A${day}-002`, purpose: '查封扣押', place: '人民路8号' });
const held = await put(await sampleMedia('video', 2, 3), 2, 3);
await put(await sampleMedia('photo', 1, 4), 1.9, 4, { ext: 'jpg' });
await put(await sampleMedia('audio-wav', 2, 5), 1.8, 5, { ext: 'wav' });

const say = (msg: string) => console.log(`[${serial}] ${msg}`);
rec.on('command', (line) => say(`← ${line}`));
rec.on('storage', (p) => {
  say(`storage mounted at ${p}`);
  if (values.assign) void assign(values.assign);
});
rec.on('error', (e) => say(`error: ${e.message}`));

/** Once dockd has paired the storage with the recorder, assigns it as `dockctl assign` does (a few tries meanwhile). */
async function assign(officer: string): Promise<void> {
  for (let attempt = 1; attempt <= 10; attempt++) {
    await sleep(1000);
    if ((await runPoolCommand(file, 'assign', [serial, officer])) === 0) return;
  }
}

async function unplug(): Promise<never> {
  await rec.stop();
  process.exit(0);
}
process.on('SIGINT', () => void unplug());
process.on('SIGTERM', () => void unplug());

await rec.plugIn();
say(`plugged in${bay ? ` in bay ${bay}` : ''}: tty ${rec.stationPath}; 5 recordings, officer ${officerId}, clock 90 s ahead`);
console.log(
  `2 recordings carry complete metadata and upload at once, 3 (a clip, a photo, a sound file) wait for annotation (待补录), e.g. ${held}.`,
);
console.log('watch it:  npx dockctl status   (or the daemon log, or http://127.0.0.1:8080/)');
console.log(`assign it: npx dockctl assign ${serial} OFFICER   (return it: npx dockctl return ${serial})`);
console.log('undock it: Ctrl-C');
