/**
 * BcClient and the dock handshake against the recorder emulator over real socat ptys: identity, clock drift and
 * clock setting, both login spellings, mass storage exposing the volume, two recorders at once, re-docking.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BcError, handshake } from '../../drivers/protocols/bc/index.ts';
import { SerialTransport, TransportError } from '../../drivers/transports/index.ts';
import { type EmulatorWorld, exists, waitFor, useEmulatorWorld } from './emulatorWorld.ts';
import { treeHashes } from '../helpers/trees.ts';

// A whole second, so the recorder's one-second clock resolution loses nothing: 09:30:00 in Shanghai.
const T = new Date('2026-11-28T01:30:00.000Z');
const frozen = () => new Date(T);

let world: EmulatorWorld;
useEmulatorWorld((w) => {
  world = w;
});

describe('BcClient over a pty to the emulator', () => {
  it('reads identity, battery and the clock command by command', async () => {
    const rec = await world.recorder({
      serial: 'BC00001',
      officerId: '012345',
      officerName: '张三',
      unitNo: 'U3301',
      battery: 64,
      timeZone: 'Asia/Shanghai',
      now: frozen,
      clockOffsetMs: -30_000,
    });
    const { client } = await world.client(rec.stationPath, { timeZone: 'Asia/Shanghai' });

    await expect(client.deviceId()).rejects.toMatchObject({ code: 'BC_DEVICE_ERROR', reason: 'not login' });
    expect(await client.login('pw-1234')).toEqual({ word: 'OK' });
    expect(await client.deviceId()).toBe('BC00001');
    expect(await client.officer()).toEqual({ officerId: '012345', officerName: '张三', unitNo: 'U3301' });
    expect(await client.battery()).toBe(64);
    expect((await client.clock()).toISOString()).toBe('2026-11-28T01:29:30.000Z');
    await client.setClock(new Date('2026-11-28T01:31:15.500Z'));
    expect(rec.clock().toISOString()).toBe('2026-11-28T01:31:15.000Z');
    expect((await client.clock()).toISOString()).toBe('2026-11-28T01:31:15.000Z');
  });

  it('queues calls made together: each gets its own answer', async () => {
    const rec = await world.recorder({ serial: 'BC00002', battery: 12 });
    const { client } = await world.client(rec.stationPath);
    const [login, serial, officer, battery] = await Promise.all([
      client.login('pw-1234'),
      client.deviceId(),
      client.officer(),
      client.battery(),
    ]);
    expect(login.word).toBe('OK');
    expect(serial).toBe('BC00002');
    expect(officer.officerId).toBe('012345');
    expect(battery).toBe(12);
  });
});

describe('handshake', () => {
  it('measures the drift of a recorder 90 s ahead, sets its clock, and exposes its volume at <mountRoot>/<serial>', async () => {
    const rec = await world.recorder({
      serial: 'BC00003',
      officerId: '054321',
      officerName: '李四',
      unitNo: 'U0007',
      battery: 77,
      timeZone: 'Asia/Shanghai',
      now: frozen,
      clockOffsetMs: 90_000,
    });
    const sent: string[] = [];
    rec.on('command', (line) => sent.push(line));
    const storage = new Promise<string>((resolve) => rec.once('storage', resolve));
    const { client, transport } = await world.client(rec.stationPath, { timeZone: 'Asia/Shanghai' });

    const result = await handshake(client, { password: 'pw-1234', now: frozen });

    expect(result).toEqual({
      serial: 'BC00003',
      officerId: '054321',
      officerName: '李四',
      unitNo: 'U0007',
      recorderClock: new Date('2026-11-28T01:31:30.000Z'),
      stationClock: T,
      driftMs: 90_000,
      clockSetTo: T,
      battery: 77,
      loginWord: 'OK',
      massStorage: true,
    });
    expect(sent).toEqual([
      'BC+LOGIN=admin:***',
      'BC+DID?',
      'BC+UID?',
      'BC+SYSTIME?',
      'BC+SYSTIME=20261128093000',
      'BC+BATVAL?',
      'BC+UDISKEN=1',
    ]);
    expect(rec.clock().getTime()).toBe(T.getTime());

    // The recorder leaves command mode: its tty vanishes and the station's end closes.
    await waitFor('the pty link to disappear', async () => !(await exists(rec.stationPath)));
    await transport.closed;
    await expect(client.battery()).rejects.toMatchObject({ code: 'BC_CLOSED' });

    const exposed = await storage;
    expect(exposed).toBe(path.join(world.mountRoot, 'BC00003'));
    expect(await fs.readdir(world.mountRoot)).toEqual(['BC00003']);
    const original = await treeHashes(path.join(world.dir, 'volumes', 'BC00003'));
    expect(Object.keys(original)).toHaveLength(4);
    expect(await treeHashes(exposed)).toEqual(original);
    expect(rec.state).toBe('storage');
  });

  it('measures a recorder running behind as negative drift', async () => {
    const rec = await world.recorder({ serial: 'BC00004', now: frozen, clockOffsetMs: -3_600_000 });
    const { client } = await world.client(rec.stationPath);
    const result = await handshake(client, { password: 'pw-1234', now: frozen, massStorage: false });
    expect(result.driftMs).toBe(-3_600_000);
    expect(result.massStorage).toBe(false);
    expect(rec.state).toBe('command');
    expect(rec.clock().getTime()).toBe(T.getTime());
  });

  it('works in whole seconds: the drift reflects the truncated reading, the clock is set to the nearest second', async () => {
    const at = () => new Date('2026-11-28T01:30:00.700Z');
    const rec = await world.recorder({ serial: 'BC00009', timeZone: 'Asia/Shanghai', now: at, clockOffsetMs: 90_000 });
    const sent: string[] = [];
    rec.on('command', (line) => sent.push(line));
    const { client } = await world.client(rec.stationPath, { timeZone: 'Asia/Shanghai' });
    const result = await handshake(client, { password: 'pw-1234', now: at, massStorage: false });
    expect(result.recorderClock.toISOString()).toBe('2026-11-28T01:31:30.000Z');
    expect(result.driftMs).toBe(89_300);
    expect(result.clockSetTo?.toISOString()).toBe('2026-11-28T01:30:01.000Z');
    expect(sent).toContain('BC+SYSTIME=20261128093001');
  });

  it('accepts the firmware that answers +LOGIN:Sucess', async () => {
    const rec = await world.recorder({ serial: 'BC00005', loginWord: 'Sucess' });
    const { client } = await world.client(rec.stationPath);
    const result = await handshake(client, { password: 'pw-1234', massStorage: false });
    expect(result.loginWord).toBe('Sucess');
    expect(result.serial).toBe('BC00005');
  });

  it('refuses a wrong password with BC_AUTH_FAILED at the login step', async () => {
    const rec = await world.recorder({ serial: 'BC00006' });
    const { client } = await world.client(rec.stationPath);
    const err = await handshake(client, { password: 'not-it' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BcError);
    expect(err).toMatchObject({ code: 'BC_AUTH_FAILED', step: 'login', reason: 'password error' });
    expect(rec.state).toBe('command');
  });

  it('docks two recorders at once, each with its own identity, drift and volume', async () => {
    const [a, b] = await Promise.all([
      world.recorder({ serial: 'BC0000A', officerId: '111111', now: frozen, clockOffsetMs: 90_000 }),
      world.recorder({ serial: 'BC0000B', officerId: '222222', now: frozen, clockOffsetMs: -15_000, password: 'other-pw' }),
    ]);
    const [ca, cb] = await Promise.all([world.client(a.stationPath), world.client(b.stationPath)]);
    const storageA = new Promise<string>((resolve) => a.once('storage', resolve));
    const storageB = new Promise<string>((resolve) => b.once('storage', resolve));

    const [ra, rb] = await Promise.all([
      handshake(ca.client, { password: 'pw-1234', now: frozen }),
      handshake(cb.client, { password: 'other-pw', now: frozen }),
    ]);
    expect([ra.serial, ra.officerId, ra.driftMs]).toEqual(['BC0000A', '111111', 90_000]);
    expect([rb.serial, rb.officerId, rb.driftMs]).toEqual(['BC0000B', '222222', -15_000]);

    const [va, vb] = await Promise.all([storageA, storageB]);
    expect((await fs.readdir(world.mountRoot)).sort()).toEqual(['BC0000A', 'BC0000B']);
    expect(await treeHashes(va)).toEqual(await treeHashes(path.join(world.dir, 'volumes', 'BC0000A')));
    expect(await treeHashes(vb)).toEqual(await treeHashes(path.join(world.dir, 'volumes', 'BC0000B')));
    expect(await treeHashes(va)).not.toEqual(await treeHashes(vb));
  });

  it('re-docks after an unplug: the tty comes back in command mode and the storage again on UDISKEN', async () => {
    const rec = await world.recorder({ serial: 'BC00007', now: frozen, clockOffsetMs: 5_000 });
    const first = await world.client(rec.stationPath);
    await handshake(first.client, { password: 'pw-1234', now: frozen });
    const exposed = await waitFor('the storage', () => rec.exposedPath ?? undefined);

    await rec.unplug();
    expect(await exists(exposed)).toBe(false);
    expect(await exists(rec.stationPath)).toBe(false);

    await rec.plugIn();
    expect(await exists(rec.stationPath)).toBe(true);
    const second = await world.client(rec.stationPath);
    const again = await handshake(second.client, { password: 'pw-1234', now: frozen });
    // The clock set on the first dock survived the unplug.
    expect(again.driftMs).toBe(0);
    const back = await waitFor('the storage again', () => rec.exposedPath ?? undefined);
    expect(await treeHashes(back)).toEqual(await treeHashes(path.join(world.dir, 'volumes', 'BC00007')));
  });
});

describe('transports and ports', () => {
  it('runs the emulator on a given tty path: after UDISKEN it lets go of the tty (which stays) and its storage appears', async () => {
    const pair = await world.ptyPair('given');
    const rec = await world.recorder({ serial: 'BC00008', port: { path: pair.recorderLink } });
    const { client } = await world.client(pair.stationLink);
    const storage = new Promise<string>((resolve) => rec.once('storage', resolve));
    const result = await handshake(client, { password: 'pw-1234' });
    expect(result.serial).toBe('BC00008');
    expect(await storage).toBe(path.join(world.mountRoot, 'BC00008'));
    expect(await exists(pair.stationLink)).toBe(true);
    // Nobody answers on the tty any more.
    await expect(client.battery({ timeoutMs: 200 })).rejects.toMatchObject({ code: 'BC_TIMEOUT' });
  });

  it('opening a tty that is not there fails TRANSPORT_NOT_FOUND', async () => {
    const e = await SerialTransport.open(path.join(world.serialDir, 'usb-gone-if00')).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(TransportError);
    expect((e as TransportError).code).toBe('TRANSPORT_NOT_FOUND');
  });

  it('opening something that is not a tty fails TRANSPORT_OPEN_FAILED', async () => {
    const notTty = path.join(world.dir, 'plain-file');
    await fs.writeFile(notTty, 'x');
    const e = await SerialTransport.open(notTty).catch((err: unknown) => err);
    expect((e as TransportError).code).toBe('TRANSPORT_OPEN_FAILED');
  });
});
