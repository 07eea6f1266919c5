/**
 * Each fault of the emulator, over a real pty, ends the handshake with the right typed error within its timeout
 * (never hangs), or makes the storage misbehave the way a real recorder would.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { handshake } from '../../drivers/protocols/bc/index.ts';
import { EmulatedRecorder, EmulatorError, createPtyPair } from '../../drivers/emulator/index.ts';
import { type EmulatorWorld, exists, waitFor, useEmulatorWorld, failure } from './emulatorWorld.ts';
import { treeHashes } from '../helpers/trees.ts';

let world: EmulatorWorld;
useEmulatorWorld((w) => {
  world = w;
});

describe('command-mode faults', () => {
  it('wrongPassword: even the right password is refused with BC_AUTH_FAILED', async () => {
    const rec = await world.recorder({ serial: 'FLT0001', faults: { wrongPassword: true } });
    const { client } = await world.client(rec.stationPath);
    const e = await failure(handshake(client, { password: 'pw-1234' }));
    expect([e.code, e.step, e.reason]).toEqual(['BC_AUTH_FAILED', 'login', 'password error']);
    // Nothing beyond the login was asked.
    await expect(client.deviceId()).rejects.toMatchObject({ code: 'BC_DEVICE_ERROR', reason: 'not login' });
  });

  it('silence: BC_TIMEOUT at the login step', async () => {
    const rec = await world.recorder({ serial: 'FLT0002', faults: { silence: true } });
    const lines: string[] = [];
    rec.on('command', (l) => lines.push(l));
    const { client } = await world.client(rec.stationPath, { timeoutMs: 400 });
    const e = await failure(handshake(client, { password: 'pw-1234' }));
    expect([e.code, e.step, e.command]).toEqual(['BC_TIMEOUT', 'login', 'BC+LOGIN=admin:***']);
    expect(lines).toEqual(['BC+LOGIN=admin:***']); // it heard the command and kept quiet
  });

  it('garbage: BC_GARBAGE, not a timeout and not a misread reply', async () => {
    const rec = await world.recorder({ serial: 'FLT0003', faults: { garbage: true } });
    const { client } = await world.client(rec.stationPath, { timeoutMs: 3000 });
    const e = await failure(handshake(client, { password: 'pw-1234' }));
    expect([e.code, e.step]).toEqual(['BC_GARBAGE', 'login']);
    // The client still works once the recorder talks sense again.
    rec.faults.garbage = false;
    expect(await client.login('pw-1234')).toEqual({ word: 'OK' });
    expect(await client.deviceId()).toBe('FLT0003');
  });

  it('slowReplies shorter than the timeout: the handshake completes', async () => {
    const rec = await world.recorder({ serial: 'FLT0004', faults: { slowRepliesMs: 150 } });
    const { client } = await world.client(rec.stationPath, { timeoutMs: 3000 });
    const result = await handshake(client, { password: 'pw-1234', massStorage: false });
    expect([result.serial, result.officerId, result.battery]).toEqual(['FLT0004', '012345', 87]);
  });

  it('slowReplies longer than the timeout: BC_TIMEOUT, and the late reply is not taken for the next command', async () => {
    const rec = await world.recorder({ serial: 'FLT0005', faults: { slowRepliesMs: 800 } });
    const { client } = await world.client(rec.stationPath, { timeoutMs: 3000 });
    await client.login('pw-1234');
    const e = await failure(client.deviceId({ timeoutMs: 200 }));
    expect([e.code, e.command]).toEqual(['BC_TIMEOUT', 'BC+DID?']);
    // The +DID reply arrives while BATVAL is in flight: it must be ignored, and BATVAL answered correctly.
    expect(await client.battery()).toBe(87);
  });

  it('unplugged during a command: BC_CLOSED, and every later call too', async () => {
    const rec = await world.recorder({ serial: 'FLT0006', faults: { silence: true } });
    const heard: string[] = [];
    rec.on('command', (l) => heard.push(l));
    const { client, transport } = await world.client(rec.stationPath, { timeoutMs: 30_000 });
    const pending = failure(client.login('pw-1234'));
    await waitFor('the command to reach the recorder', () => heard.length === 1);
    await rec.unplug();
    const e = await pending;
    expect(e.code).toBe('BC_CLOSED');
    await transport.closed;
    expect((await failure(client.battery())).code).toBe('BC_CLOSED');
  });
});

describe('storage faults', () => {
  it('neverReturnsAsStorage: UDISKEN is acknowledged, the tty goes, and no volume appears', async () => {
    const rec = await world.recorder({ serial: 'FLT0007', faults: { neverReturnsAsStorage: true } });
    const states: string[] = [];
    rec.on('state', (s) => states.push(s));
    const { client } = await world.client(rec.stationPath);
    const result = await handshake(client, { password: 'pw-1234' });
    expect(result.massStorage).toBe(true);
    await waitFor('the recorder to leave command mode', () => rec.state === 'no-storage');
    expect(states).toEqual(['switching', 'no-storage']);
    expect(await exists(rec.stationPath)).toBe(false);
    expect(await fs.readdir(world.mountRoot).catch(() => [])).toEqual([]);
    expect(rec.exposedPath).toBeNull();
  });

  it('vanishesBeforeUdiskReply: no reply and no close, its serial-dir link goes, then its volume appears', async () => {
    const rec = await world.recorder({ serial: 'FLT0010', faults: { vanishesBeforeUdiskReply: true } });
    const { client, transport } = await world.client(rec.stationPath, { timeoutMs: 3000 });
    await handshake(client, { password: 'pw-1234', massStorage: false });
    const e = await failure(client.enableMassStorage());
    expect([e.code, e.command]).toEqual(['BC_TIMEOUT', 'BC+UDISKEN=1']);
    // The station's port saw no close: only the tty's entry in the serial dir says it is gone.
    expect(transport.isOpen).toBe(true);
    expect(await exists(rec.stationPath)).toBe(false);
    expect(await transport.deviceGone()).toBe(true);
    const volume = path.join(world.mountRoot, 'FLT0010');
    await waitFor('the volume to appear', () => rec.state === 'storage');
    expect(rec.exposedPath).toBe(volume);
    expect(await treeHashes(volume)).toEqual(await treeHashes(rec.volumeDir));
  });

  it('a recorder silent on UDISKEN with its tty still there is not gone', async () => {
    const rec = await world.recorder({ serial: 'FLT0011' });
    const { client, transport } = await world.client(rec.stationPath, { timeoutMs: 3000 });
    await handshake(client, { password: 'pw-1234', massStorage: false });
    rec.faults.silence = true;
    expect((await failure(client.enableMassStorage())).code).toBe('BC_TIMEOUT');
    expect(await exists(rec.stationPath)).toBe(true);
    expect(await transport.deviceGone()).toBe(false);
    expect(rec.state).toBe('command');
  });

  it('unplugMidCopy: the volume vanishes from the mount root while a file is being read', async () => {
    const rec = await world.recorder({ serial: 'FLT0008', faults: { unplugMidCopyMs: 300 } });
    const { client } = await world.client(rec.stationPath);
    const unplugged = new Promise<void>((resolve) => rec.once('unplugged', resolve));
    const exposed = await new Promise<string>((resolve, reject) => {
      rec.once('storage', resolve);
      handshake(client, { password: 'pw-1234' }).catch(reject);
    });
    const files = Object.keys(await treeHashes(exposed));
    const reading = await fs.open(path.join(exposed, files[0]), 'r');
    try {
      await unplugged;
      expect(await exists(exposed)).toBe(false);
      expect(await fs.readdir(world.mountRoot)).toEqual([]);
      await expect(fs.open(path.join(exposed, files[1]), 'r')).rejects.toMatchObject({ code: 'ENOENT' });
      expect(rec.state).toBe('unplugged');
    } finally {
      await reading.close();
    }
    // The recorder's own storage is untouched.
    expect(Object.keys(await treeHashes(path.join(world.dir, 'volumes', 'FLT0008')))).toEqual(files);
  });

  it('unplug when told: the volume vanishes at once', async () => {
    const rec = await world.recorder({ serial: 'FLT0009' });
    const { client } = await world.client(rec.stationPath);
    await handshake(client, { password: 'pw-1234' });
    const exposed = await waitFor('the storage', () => rec.exposedPath ?? undefined);
    expect(await exists(exposed)).toBe(true);
    await rec.unplug();
    expect(await exists(exposed)).toBe(false);
    expect(rec.exposedPath).toBeNull();
  });

  it('refuses to expose over something already at <mountRoot>/<serial>', async () => {
    const rec = await world.recorder({ serial: 'FLT0010' });
    await fs.mkdir(path.join(world.mountRoot, 'FLT0010'), { recursive: true });
    const errors: Error[] = [];
    rec.on('error', (e) => errors.push(e));
    const { client } = await world.client(rec.stationPath);
    await handshake(client, { password: 'pw-1234' });
    await waitFor('the exposure to fail', () => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(EmulatorError);
    expect((errors[0] as EmulatorError).code).toBe('EMULATOR_MOUNT_BUSY');
    expect(await fs.readdir(path.join(world.mountRoot, 'FLT0010'))).toEqual([]);
  });
});

describe('emulator setup', () => {
  it('says clearly when socat is missing', async () => {
    const saved = process.env.PATH;
    process.env.PATH = path.join(world.dir, 'no-bin');
    try {
      const e = await createPtyPair({ recorderLink: path.join(world.dir, 'a'), stationLink: path.join(world.dir, 'b') }).catch(
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(EmulatorError);
      expect((e as EmulatorError).code).toBe('EMULATOR_SOCAT_MISSING');
    } finally {
      process.env.PATH = saved;
    }
  });

  it('rejects a serial that is not 7 letters or digits', () => {
    expect(
      () =>
        new EmulatedRecorder({
          serial: 'TOO-LONG-1',
          officerId: '012345',
          officerName: 'x',
          password: 'p',
          volumeDir: world.dir,
          mountRoot: world.mountRoot,
          port: { pty: path.join(world.serialDir, 'x') },
        }),
    ).toThrow(expect.objectContaining({ code: 'EMULATOR_BAD_CONFIG' }));
  });
});
