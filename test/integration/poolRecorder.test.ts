/**
 * Pool recorders through the emulator (real socat ptys, a real dockd process): `dockctl assign` writes the officer id
 * to a docked recorder over its control channel (BC+UID=), the emulator names what it records from then on with that
 * officer, and dockd attributes each recording to whoever held the recorder at its capture time — a recording
 * captured before the assignment stays with the previous holder; `dockctl return` ends the assignment. Unknown and
 * unconnected recorders get a clear error.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecordingName } from '../../daemon/recorder/recordingName.ts';
import { formatBcTime } from '../../drivers/protocols/bc/index.ts';
import { sampleMedia } from '../../scripts/media.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { parse } from 'yaml';
import { hashPassword } from '../../daemon/security/password.ts';
import { Catalog } from '../../daemon/store/catalog.ts';
import { type LinkWorld, TIME_ZONE, type Device, type Emulated } from '../helpers/linkWorld.ts';
import { useLinkWorld } from '../helpers/station.ts';
import { waitFor } from '../helpers/ports.ts';

const POOL: Device = { serial: 'PL00001', officerId: '012345', officerName: '张三' };
/** In devices only so that the station knows officer 054321 (李四); this recorder is never docked. */
const AWAY: Device = { serial: 'PL00002', officerId: '054321', officerName: '李四' };

const clip = (n: number) => sampleMedia('video', 1, 4400 + n);

const worlds = useLinkWorld();

type FileView = Awaited<ReturnType<LinkWorld['files']>>[number];

/** Waits until every named file is in the catalog past copying, and returns them by name. */
async function ingested(w: LinkWorld, names: string[]): Promise<Map<string, FileView>> {
  return waitFor(
    `${names.join(', ')} in the catalog`,
    async () => {
      const files = await w.files();
      const found = names.map((n) => files.find((f) => f.filename === n && f.state !== 'copying'));
      return found.every(Boolean) ? new Map(found.map((f) => [f!.filename, f!])) : undefined;
    },
    90_000,
    200,
  );
}

/** Docked, identified and its storage handed to the ingest (the tile has left `identifying`). */
async function dock(e: Emulated): Promise<void> {
  await e.rec.plugIn();
  await waitFor('the recorder in mass storage', () => e.rec.state === 'storage', 30_000, 50);
}

/** Taken out of the dock, and dockd has seen it go. */
async function undock(w: LinkWorld, e: Emulated): Promise<void> {
  const gone = w.events('recorder.undocked').length;
  await e.rec.unplug();
  await waitFor('the undock seen by dockd', () => w.events('recorder.undocked').length > gone, 30_000, 50);
}

const dockctl = (w: LinkWorld, ...args: string[]) => runDockctl(w.configFile, args);

describe('a pool recorder assigned at the station', () => {
  it('assign → record → dock: attributed to the holder at capture time; earlier recordings stay with the previous holder; return ends it', async () => {
    const world = await worlds.create({ devices: [POOL, AWAY] });
    const w = world;
    await w.startDaemon();
    const e = await w.recorder({ ...POOL, keepsControlChannel: true, media: [await clip(1)] });
    const first = e.recordings[0].name;

    // Docked in the pool: its recording (named by the recorder's registry officer) is 张三's.
    await dock(e);
    const before = (await ingested(w, [first])).get(first)!;
    expect(before).toMatchObject({ officerId: '012345', collector: '张三' });

    // 李四 takes it: dockd writes 054321 to the recorder over its control channel.
    const assigned = await dockctl(w, 'assign', POOL.serial, '054321');
    expect(assigned.stderr).toBe('');
    expect(assigned.code).toBe(0);
    expect(assigned.stdout).toContain(`recorder ${POOL.serial} assigned to officer 054321`);
    expect(e.heard).toContain('BC+UID=054321:李四:U3301');
    expect(e.rec.model.officerId).toBe('054321');
    const [held] = JSON.parse((await dockctl(w, 'assignments', '--json')).stdout);
    expect(held).toMatchObject({ serial: POOL.serial, officerId: '054321', officerName: '李四', endedAt: null });
    expect(held.assignedBy).toMatch(/uid \d+.* via dockctl$/);
    const startedAt = Date.parse(held.startedAt);

    // A recording captured before the assignment (still on the recorder, named by it for 张三, not yet docked).
    const earlier = `012345_${POOL.serial}_20261128113000_0007.mp4`;
    await fs.copyFile(await clip(2), path.join(e.rec.volumeDir, 'DCIM', '100MEDIA', earlier));

    // 李四 takes it out and records: the recorder names the file with 054321. (The name has whole seconds of the
    // recorder's own clock, which may run a second behind the station's: the recording starts, by that clock, in a
    // second after the assignment's.)
    await undock(w, e);
    await waitFor(
      'a second after the assignment, by the recorder clock',
      () => Math.floor(e.rec.clock().getTime() / 1000) > Math.floor(startedAt / 1000),
      10_000,
    );
    const recorded = path.basename(await e.rec.record({ from: await clip(3) }));
    expect(parseRecordingName(recorded)).toMatchObject({ officerId: '054321', serial: POOL.serial });
    // One named by firmware that ignores the assignment (the registry's officer in its name), captured during it.
    const misnamed = `012345_${POOL.serial}_${formatBcTime(e.rec.clock(), TIME_ZONE)}_0009.mp4`;
    await fs.copyFile(await clip(5), path.join(e.rec.volumeDir, 'DCIM', '100MEDIA', misnamed));

    await dock(e);
    const after = await ingested(w, [recorded, earlier, misnamed]);
    expect(after.get(recorded)).toMatchObject({ officerId: '054321', collector: '李四', deviceSerial: POOL.serial });
    expect(after.get(misnamed)).toMatchObject({ officerId: '054321', collector: '李四' });
    expect(after.get(earlier)).toMatchObject({ officerId: '012345', collector: '张三' });
    // Handshake of the assigned recorder: it says 054321 now.
    expect((await w.status()).recorders.find((r) => r.serial === POOL.serial)).toMatchObject({ officerId: '054321' });

    // Returned: the assignment ends, and the recorder (still connected) carries its registry officer again.
    const returned = await dockctl(w, 'return', POOL.serial);
    expect(returned.code).toBe(0);
    expect(returned.stdout).toContain('returned by officer 054321');
    expect(e.rec.model.officerId).toBe('012345');
    const [ended] = JSON.parse((await dockctl(w, 'assignments', POOL.serial, '--json')).stdout);
    expect(ended.endedAt).not.toBeNull();
    expect(ended.returnedBy).toMatch(/via dockctl$/);

    await undock(w, e);
    // Recorded after the return by the recorder's own clock too (see above: it may run a second behind).
    const endedAt = Date.parse(ended.endedAt);
    await waitFor(
      'a second after the return, by the recorder clock',
      () => Math.floor(e.rec.clock().getTime() / 1000) > Math.floor(endedAt / 1000),
      10_000,
    );
    const later = path.basename(await e.rec.record({ from: await clip(4) }));
    await dock(e);
    expect((await ingested(w, [later])).get(later)).toMatchObject({ officerId: '012345', collector: '张三' });

    // On the station page: officer 077777 takes it with their PIN (set by an admin, kept as a scrypt hash).
    const catalog = Catalog.open(w.storeDir);
    catalog.users.add({ name: '王五', role: 'officer', officerId: '077777', hash: hashPassword('246810') });
    catalog.close();
    const page = `http://${parse(await fs.readFile(w.configFile, 'utf8')).http.listen}`;
    const login = await fetch(`${page}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: '077777', password: '246810' }),
    });
    expect(login.status).toBe(200);
    const post = (route: string, body: object) =>
      fetch(`${page}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: login.headers.get('set-cookie')!.split(';')[0] },
        body: JSON.stringify(body),
      });
    const wrongPin = await post('/api/pool/assign', { serial: POOL.serial, officerId: '077777', pin: '000000' });
    expect(wrongPin.status).toBe(401);
    expect(e.rec.model.officerId).toBe('012345');
    const taken = await post('/api/pool/assign', { serial: POOL.serial, officerId: '077777', pin: '246810' });
    expect(taken.status).toBe(200);
    expect(await taken.json()).toMatchObject({ ok: true, assignment: { officerId: '077777', officerName: '王五' } });
    expect(e.rec.model).toMatchObject({ officerId: '077777', officerName: '王五' });
    const given = await post('/api/pool/return', { serial: POOL.serial, officerId: '077777', pin: '246810' });
    expect(given.status).toBe(200);
    expect(e.rec.model.officerId).toBe('012345');

    // Each change is in the audit trail with who asked.
    const audit = JSON.parse((await dockctl(w, 'audit', '--json')).stdout) as { type: string; subject: string; data: string }[];
    const types = audit.filter((a) => a.subject === POOL.serial).map((a) => a.type);
    expect(types).toEqual(expect.arrayContaining(['recorder.assigned', 'recorder.returned']));
    const changes = audit.filter((x) => x.type === 'recorder.assigned' || x.type === 'recorder.returned');
    expect(changes).toHaveLength(4);
    expect(JSON.stringify(changes.slice(0, 2))).toMatch(/uid \d+.*via dockctl/);
    expect(JSON.stringify(changes.slice(2))).toContain('王五 (officer 077777, PIN) on 王五 (officer 077777)');
  });

  it('dockctl assign says clearly when the recorder is unknown, not connected, or the officer unknown', async () => {
    const world = await worlds.create({ devices: [POOL, AWAY] });
    const w = world;
    await w.startDaemon();

    const unknown = await dockctl(w, 'assign', 'NOPE001', '054321');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown recorder NOPE001');

    const away = await dockctl(w, 'assign', AWAY.serial, '012345');
    expect(away.code).toBe(1);
    expect(away.stderr).toContain(`recorder ${AWAY.serial} is not connected`);

    const nobody = await dockctl(w, 'assign', POOL.serial, '099999');
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain('unknown officer 099999');

    const notHeld = await dockctl(w, 'return', POOL.serial);
    expect(notHeld.code).toBe(1);
    expect(notHeld.stderr).toContain(`recorder ${POOL.serial} is not assigned`);

    expect(JSON.parse((await dockctl(w, 'assignments', '--json')).stdout)).toEqual([]);
  });
});
