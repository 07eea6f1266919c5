import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { type makeWorld, runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { dockVolume } from '../helpers/volume.ts';
import { useStation } from '../helpers/station.ts';
import { dockctlFiles } from '../helpers/dockctlJson.ts';
import { eventsOf, waitForIngestFinished } from '../helpers/stationReports.ts';

// The daemon runs as an unprivileged user here, as the dockd service user does: root reads any directory.
const NOBODY = { uid: 65534, gid: 65534 };
const sidecar = (caseNo: string) => JSON.stringify({ caseNo, purpose: '现场检查', place: '幸福路12号' });

interface Recorder {
  name: string;
  state: string;
  safeToUndock: boolean;
  leftBehind: { path: string; reason: string; pathHex?: string }[];
  error: string | null;
  files: Record<string, number>;
}

async function recorderStatus(configFile: string, name: string): Promise<Recorder | undefined> {
  const r = await runDockctl(configFile, ['status', '--json']);
  if (r.code !== 0) throw new Error(`dockctl status exited ${r.code}: ${r.stderr}`);
  return (JSON.parse(r.stdout).recorders as Recorder[]).find((x) => x.name === name);
}

describe('nothing left behind: a recorder is safe to undock only when every recording on it is in the store', () => {
  const station = useStation();

  async function startAsNobody(): Promise<Awaited<ReturnType<typeof makeWorld>>> {
    await fs.chmod(station.dir, 0o755); // mkdtemp makes it 0700: the daemon's user must reach its world
    const world = await station.world({ extra: { log: { level: 'info' } } });
    await fs.mkdir(world.storeDir, { recursive: true });
    execFileSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, world.storeDir, world.mountRoot]);
    await station.subscribe();
    await station.startDaemon(world.configFile, { as: NOBODY });
    return world;
  }

  it('takes a clip 40 folders deep and one named \\xff\\xfe_0001.MP4 past 100,000 stray entries; an unreadable folder keeps it unsafe, in words, until it can be read', async () => {
    const world = await startAsNobody();
    const deepClip = await sampleMedia('video', 2, 301);
    const oddClip = await sampleMedia('video', 2, 302);
    const lockedClip = await sampleMedia('video', 2, 303);
    const deepName = recordingName({ at: '20261128100000', seq: 1 });
    const lockedName = recordingName({ at: '20261128100200', seq: 3 });
    const oddRaw = Buffer.from([0xff, 0xfe, ...Buffer.from('_0001.MP4')]);
    const levels = Array.from({ length: 40 }, (_, i) => `D${i}`);
    const volume = await dockVolume(world.mountRoot, 'REC1', async (v) => {
      // 100,001 stray entries first (they sort before the recordings), then the recordings.
      await fs.mkdir(path.join(v, 'AAA_JUNK'));
      execFileSync('sh', ['-c', 'seq -f "f%06g.log" 0 100000 | xargs touch'], { cwd: path.join(v, 'AAA_JUNK') });
      await fs.mkdir(path.join(v, ...levels), { recursive: true });
      await fs.copyFile(deepClip, path.join(v, ...levels, deepName));
      await fs.writeFile(path.join(v, ...levels, deepName.replace('.mp4', '.meta.json')), sidecar('C-DEEP'));
      await fs.writeFile(Buffer.concat([Buffer.from(`${v}/`), oddRaw]), await fs.readFile(oddClip));
      await fs.mkdir(path.join(v, 'LOCKED'));
      await fs.copyFile(lockedClip, path.join(v, 'LOCKED', lockedName));
      await fs.writeFile(path.join(v, 'LOCKED', lockedName.replace('.mp4', '.meta.json')), sidecar('C-LOCKED'));
      await fs.chmod(path.join(v, 'LOCKED'), 0o700); // owned by root: the daemon's user cannot list it
    });

    const finished = await waitForIngestFinished(station.daemon!, 1, 240_000);
    expect(finished).toMatchObject({ state: 'error', safeToUndock: false, leftBehind: 1, copied: 2 });

    // dockctl status --json: not safe, and why, in words.
    // dockctl reads the snapshot the daemon persists when it publishes state, at most every 250 ms: right after the log
    // line it can still be from before the verdict (`copying`; seen once in CI). Not safe, and why, is
    // asserted on every read; the verdict is waited for.
    const reads: { safeToUndock: boolean; state: string }[] = [];
    const rec = (await waitFor(
      'the recorder in state error',
      async () => {
        const r = (await recorderStatus(world.configFile, 'REC1'))!;
        reads.push(r);
        return r.state === 'error' ? r : undefined;
      },
      30_000,
    ))!;
    expect(reads.filter((r) => r.safeToUndock !== false)).toEqual([]);
    expect(rec).toMatchObject({
      state: 'error',
      safeToUndock: false,
      leftBehind: [{ path: 'LOCKED', reason: 'cannot read directory: EACCES' }],
    });
    expect(rec.error).toMatch(/left behind.*LOCKED/);
    expect(rec.files.skipped).toBe(100_001);
    const text = await runDockctl(world.configFile, ['status']);
    expect(text.stdout).toMatch(/未采集 left behind: LOCKED — cannot read directory: EACCES/);
    expect(text.stdout).toMatch(/\[RECORDING_LEFT_BEHIND\].*LOCKED/);
    expect(text.stdout).not.toMatch(/可安全拔出/);

    // On MQTT: the alarm event, and the retained state says not safe, naming what stayed.
    await waitFor(
      'the left-behind alarm on MQTT',
      () => eventsOf(station.sub!.messages, 'alarm').some((e) => e.code === 'RECORDING_LEFT_BEHIND' && e.active === true),
      30_000,
    );
    const lastState = () =>
      station
        .sub!.messages.filter((m) => m.topic === 'dockd/test-st/state')
        .map((m) => JSON.parse(m.payload))
        .at(-1);
    await waitFor(
      'a state snapshot with the left-behind entry',
      () => lastState()?.recorders?.[0]?.leftBehind?.length === 1,
      30_000,
    );
    expect(lastState().recorders[0]).toMatchObject({
      safeToUndock: false,
      leftBehind: [{ path: 'LOCKED', reason: 'cannot read directory: EACCES' }],
    });

    // The deep and the odd-named clips are in the store, byte for byte; the odd name kept as bytes, shown escaped.
    // Each is verified after it is stored (probes wait for the copies): wait until neither is still `stored`.
    const deepSha = await sha256OfFile(deepClip);
    const oddSha = await sha256OfFile(oddClip);
    const rows = await waitFor(
      'both clips verified',
      async () => {
        const now = await dockctlFiles(world.configFile);
        const verified = [deepSha, oddSha].every((sha) => now.some((r) => r.sha256 === sha && r.state !== 'stored'));
        return verified ? now : null;
      },
      60_000,
    );
    const bySha = Object.fromEntries(rows.map((r) => [r.sha256, r]));
    expect(bySha[deepSha]).toMatchObject({ sourcePath: [...levels, deepName].join('/'), caseNo: 'C-DEEP' });
    expect(bySha[oddSha]).toMatchObject({
      filename: '\\xff\\xfe_0001.MP4',
      sourcePathHex: oddRaw.toString('hex'),
      state: 'needs-annotation',
    });
    await waitFor('the deep clip at HQ', () => station.tus.finished.some((u) => u.sha256 === deepSha), 120_000);
    expect(rows.some((r) => r.filename === lockedName)).toBe(false);

    // The officer (or admin) fixes what blocked it: the next scan takes the clip, and only then is it safe.
    await fs.chmod(path.join(volume, 'LOCKED'), 0o755);
    const lockedSha = await sha256OfFile(lockedClip);
    await waitFor(
      'the recorder to become safe to undock',
      async () => (await recorderStatus(world.configFile, 'REC1'))?.safeToUndock === true,
      120_000,
    );
    // Safe to undock once every byte is stored; probing may still be finishing ('verifying') before 'done'.
    const safeTile = await recorderStatus(world.configFile, 'REC1');
    expect(safeTile).toMatchObject({ safeToUndock: true, leftBehind: [] });
    expect(['verifying', 'done']).toContain(safeTile?.state);
    await waitFor(
      'the recorder tile to say done',
      async () => (await recorderStatus(world.configFile, 'REC1'))?.state === 'done',
      120_000,
    );
    expect((await dockctlFiles(world.configFile)).find((r) => r.sha256 === lockedSha)).toMatchObject({
      caseNo: 'C-LOCKED',
      filename: lockedName,
    });
    await waitFor(
      'the alarm cleared on MQTT',
      () => eventsOf(station.sub!.messages, 'alarm').some((e) => e.code === 'RECORDING_LEFT_BEHIND' && e.active === false),
      30_000,
    );
    expect(await station.daemon!.stop()).toBe(0);
  }, 420_000);

  it('a volume whose root cannot be read is never safe, and says so', async () => {
    const world = await startAsNobody();
    const clip = await sampleMedia('video', 2, 304);
    await dockVolume(world.mountRoot, 'REC2', async (v) => {
      await fs.copyFile(clip, path.join(v, recordingName({ at: '20261128110000', seq: 1 })));
      await fs.chmod(v, 0o700);
    });
    await waitFor(
      'the recorder tile to say why it is not safe',
      async () => (await recorderStatus(world.configFile, 'REC2'))?.leftBehind?.length === 1,
      60_000,
    );
    const rec = (await recorderStatus(world.configFile, 'REC2'))!;
    expect(rec).toMatchObject({
      safeToUndock: false,
      state: 'error',
      leftBehind: [{ path: '.', reason: 'cannot read directory: EACCES' }],
    });
    expect(rec.error).toMatch(/volume root/);
    expect(await dockctlFiles(world.configFile)).toEqual([]);
    expect(await station.daemon!.stop()).toBe(0);
  }, 180_000);
});
