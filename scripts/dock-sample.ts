/**
 * `npm run dock-sample`: builds a sample recorder volume with ffmpeg (GA/T 947 names, a sidecar, a clip that needs
 * annotation, an IMP clip, a photo and an audio file) and docks it under the first mount root of the config.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { configFileFromArgs, loadConfig } from '../daemon/config.ts';
import { recordingName, sampleMedia } from './media.ts';

const { file } = configFileFromArgs(process.argv.slice(2));
const { config } = loadConfig(file);
const serial = config.devices[0]?.serial ?? '1234567';
const officerId = config.devices[0]?.officerId ?? '012345';
const root = config.dock.mountRoots[0];
const staging = path.join(path.dirname(root), `.staging-${serial}-${Date.now()}`);
const volume = path.join(root, `REC-${serial}`);

await fs.rm(volume, { recursive: true, force: true });
await fs.mkdir(path.join(staging, 'DCIM', '100MEDIA'), { recursive: true });
const dir = path.join(staging, 'DCIM', '100MEDIA');
const clip = (at: string, seq: number, extra: Partial<Parameters<typeof recordingName>[0]> = {}) =>
  recordingName({ officerId, serial, at, seq, ...extra });

const withSidecar = clip('20261128083000', 1);
await fs.copyFile(await sampleMedia('video', 3, 1), path.join(dir, withSidecar));
await fs.writeFile(
  path.join(dir, withSidecar.replace(/\.mp4$/, '.meta.json')),
  JSON.stringify({ caseNo: 'A2026-1128-001', purpose: '现场检查全过程', place: '幸福路12号' }),
);
const important = clip('20261128090500', 2, { important: true });
await fs.copyFile(await sampleMedia('video', 2, 2), path.join(dir, important));
await fs.writeFile(
  path.join(dir, important.replace(/\.mp4$/, '.meta.json')),
  JSON.stringify({ caseNo: 'A2026-1128-002', purpose: '查封扣押', place: '人民路8号' }),
);
const held = clip('20261128101500', 3);
await fs.copyFile(await sampleMedia('video', 2, 3), path.join(dir, held));
await fs.copyFile(await sampleMedia('photo', 1, 4), path.join(dir, clip('20261128102000', 4, { ext: 'jpg' })));
await fs.copyFile(await sampleMedia('audio-wav', 2, 5), path.join(dir, clip('20261128102500', 5, { ext: 'wav' })));
await fs.writeFile(path.join(staging, 'DEVICE.TXT'), `serial=${serial}\n`);

await fs.mkdir(root, { recursive: true });
await fs.rename(staging, volume); // appears at once, like a mount
console.log(
  `docked a sample recorder at ${volume}: 5 recordings; 2 carry complete metadata and upload at once, 3 (a clip, a photo, a sound file) wait for annotation (待补录), e.g. ${held}.`,
);
console.log(`watch it:  npx dockctl status   (or the daemon's log)`);
console.log(`undock it: rm -r '${volume}'`);
