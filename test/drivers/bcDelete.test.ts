/**
 * `BC+DEL=<path>`, the wipe gate's command: its wire form, the station's client against the emulated recorder on a
 * real socat pty (deleting from the recorder's own storage, and each refusal as a typed error), and a recorder that
 * keeps its control channel while its storage is exposed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BcError,
  MAX_DELETE_PATH_BYTES,
  commandLine,
  encodeCommand,
  handshake,
  parseCommand,
  parseReply,
  reconnect,
  replyLine,
} from '../../drivers/protocols/bc/index.ts';
import { deleteFromStorage } from '../../drivers/emulator/index.ts';
import { type EmulatorWorld, exists, waitFor, useEmulatorWorld, failure } from './emulatorWorld.ts';
import { treeHashes } from '../helpers/trees.ts';

let world: EmulatorWorld;
useEmulatorWorld((w) => {
  world = w;
});

/** The recordings of the world's volume for `serial`, relative with `/`. */
async function recordings(volumeDir: string): Promise<string[]> {
  return Object.keys(await treeHashes(volumeDir))
    .filter((r) => !r.endsWith('.meta.json'))
    .map((r) => r.split(path.sep).join('/'));
}

describe('BC+DEL on the wire', () => {
  it('encodes a path inside the storage and parses both answers', () => {
    const rel = 'DCIM/100MEDIA/012345_1234567_20261128083000_0001.mp4';
    expect(encodeCommand({ op: 'delete', path: rel }).toString('utf8')).toBe(`BC+DEL=${rel}\r\n`);
    expect(parseCommand(`BC+DEL=${rel}\r\n`)).toEqual({ op: 'delete', path: rel });
    expect(commandLine({ op: 'delete', path: 'DCIM/执法记录_0001.mp4' })).toBe('BC+DEL=DCIM/执法记录_0001.mp4');
    expect(parseReply('+DEL:OK')).toEqual({ kind: 'del-ok' });
    expect(parseReply('+DEL:ERR:no such file')).toEqual({ kind: 'del-refused', reason: 'no such file' });
    expect(parseReply('+del:err')).toEqual({ kind: 'del-refused', reason: 'no reason given' });
    expect(parseReply('+DEL:MAYBE')).toMatchObject({ kind: 'malformed', tag: 'DEL' });
    expect(replyLine({ kind: 'del-refused', reason: 'read-only' })).toBe('+DEL:ERR:read-only');
  });

  it('refuses to send a path that is not one file inside the storage (BC_BAD_ARGUMENT)', () => {
    const bad = [
      '',
      '/etc/passwd',
      '../x.mp4',
      'DCIM/../../x.mp4',
      'DCIM//x.mp4',
      './x.mp4',
      'DCIM\\x.mp4',
      'a.mp4\r\nBC+UDISKEN=1',
      ' a.mp4',
      'bad\uFFFD.mp4',
      'a'.repeat(MAX_DELETE_PATH_BYTES + 1),
    ];
    for (const p of bad) {
      let caught: unknown = null;
      try {
        encodeCommand({ op: 'delete', path: p });
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(p)).toBeInstanceOf(BcError);
      expect((caught as BcError).code).toBe('BC_BAD_ARGUMENT');
    }
  });
});

describe('BC+DEL against the emulated recorder (real pty)', () => {
  it("deletes exactly the named file from the recorder's storage; refusals are BC_DEVICE_ERROR with the reason", async () => {
    const rec = await world.recorder({ serial: 'DEL0001' });
    const volumeDir = path.join(world.dir, 'volumes', 'DEL0001');
    const heard: string[] = [];
    rec.on('command', (l) => heard.push(l));
    const deleted: string[] = [];
    rec.on('deleted', (p) => deleted.push(p));
    const before = await treeHashes(volumeDir);
    const [first, second] = await recordings(volumeDir);
    const { client } = await world.client(rec.stationPath);

    // Not logged in: refused, nothing deleted.
    expect(await failure(client.deleteFile(first))).toMatchObject({ code: 'BC_DEVICE_ERROR', reason: 'not login' });
    expect(await exists(path.join(volumeDir, first))).toBe(true);

    await client.login('pw-1234');
    await client.deleteFile(first);
    expect(deleted).toEqual([first]);
    const after = await treeHashes(volumeDir);
    expect(Object.keys(after)).toEqual(Object.keys(before).filter((r) => r.split(path.sep).join('/') !== first));
    for (const [rel, sha] of Object.entries(after)) expect(sha, rel).toBe(before[rel]);

    const gone = await failure(client.deleteFile(first));
    expect([gone.code, gone.reason, gone.command]).toEqual(['BC_DEVICE_ERROR', 'no such file', `BC+DEL=${first}`]);
    expect((await failure(client.deleteFile('DCIM/100MEDIA'))).reason).toBe('not a file');
    await fs.symlink(path.join(volumeDir, second), path.join(volumeDir, 'DCIM', 'link.mp4'));
    expect((await failure(client.deleteFile('DCIM/link.mp4'))).reason).toBe('not a file');
    expect(await exists(path.join(volumeDir, second))).toBe(true);

    // A path the client will not send never reaches the recorder.
    const heardBefore = heard.length;
    expect((await failure(client.deleteFile(`../DEL0001/${second}`))).code).toBe('BC_BAD_ARGUMENT');
    expect(heard.length).toBe(heardBefore);

    // Told to fail: refused with its reason, the file stays; then it deletes again.
    rec.faults.deleteFails = 'read-only';
    expect(await failure(client.deleteFile(second))).toMatchObject({ code: 'BC_DEVICE_ERROR', reason: 'read-only' });
    expect(await exists(path.join(volumeDir, second))).toBe(true);
    rec.faults.deleteFails = undefined;
    await client.deleteFile(second);
    expect(deleted).toEqual([first, second]);
    // The client still answers other commands in order after all of that.
    expect(await client.deviceId()).toBe('DEL0001');
  });

  it('the recorder checks the path itself: a path sent raw that leaves its storage is refused as a bad path', async () => {
    const volumeDir = path.join(world.dir, 'volumes', 'RAW0001');
    await fs.mkdir(path.join(volumeDir, 'DCIM'), { recursive: true });
    const outside = path.join(world.dir, 'outside.mp4');
    await fs.writeFile(outside, "not the recorder's");
    await fs.writeFile(path.join(volumeDir, 'DCIM', 'a.mp4'), 'a');
    await fs.symlink(world.dir, path.join(volumeDir, 'DCIM', 'up'));
    for (const p of ['../outside.mp4', '/etc/hostname', 'DCIM/../../outside.mp4', '']) {
      expect(await deleteFromStorage(volumeDir, null, p), p).toEqual({ kind: 'del-refused', reason: 'bad path' });
    }
    // Through a directory link: the parent is not inside the storage.
    expect(await deleteFromStorage(volumeDir, null, 'DCIM/up/outside.mp4')).toEqual({
      kind: 'del-refused',
      reason: 'no such file',
    });
    expect(await fs.readFile(outside, 'utf8')).toBe("not the recorder's");
    expect(await deleteFromStorage(volumeDir, null, 'DCIM/a.mp4')).toEqual({ kind: 'del-ok' });

    // And over the wire, bypassing the client's own check.
    const rec = await world.recorder({ serial: 'RAW0002' });
    const { client, transport } = await world.client(rec.stationPath);
    await client.login('pw-1234');
    client.dispose();
    const lines: string[] = [];
    transport.stream.on('data', (d: Buffer) => lines.push(...d.toString('utf8').split('\r\n').filter(Boolean)));
    transport.stream.write('BC+DEL=../outside.mp4\r\n');
    await waitFor('the refusal', () => lines.length > 0);
    expect(lines).toEqual(['+DEL:ERR:bad path']);
  });

  it('a recorder that keeps its control channel in mass storage deletes from its storage and from the exposed copy', async () => {
    const rec = await world.recorder({ serial: 'CMP0001', keepsControlChannel: true, leaveDelayMs: 50 });
    const volumeDir = path.join(world.dir, 'volumes', 'CMP0001');
    const { client } = await world.client(rec.stationPath);
    await handshake(client, { password: 'pw-1234' });
    const exposed = await waitFor('the storage', () => rec.exposedPath ?? undefined);
    expect(rec.state).toBe('storage');
    expect(await exists(rec.stationPath)).toBe(true); // the tty stayed

    const [first] = await recordings(volumeDir);
    await reconnect(client, { password: 'pw-1234', serial: 'CMP0001' });
    await client.deleteFile(first);
    expect(await exists(path.join(volumeDir, first))).toBe(false);
    expect(await exists(path.join(exposed, first))).toBe(false);
    expect((await recordings(exposed)).sort()).toEqual((await recordings(volumeDir)).sort());

    // Another recorder's serial: reconnect refuses before anything is changed.
    const wrong = await failure(reconnect(client, { password: 'pw-1234', serial: 'CMP0009' }));
    expect([wrong.code, wrong.step]).toEqual(['BC_BAD_REPLY', 'serial']);
    const refused = await failure(reconnect(client, { password: 'nope', serial: 'CMP0001' }));
    expect([refused.code, refused.step]).toEqual(['BC_AUTH_FAILED', 'login']);
  });

  it('a recorder without it: the tty vanishes on BC+UDISKEN=1, as before', async () => {
    const rec = await world.recorder({ serial: 'CMP0002', leaveDelayMs: 50 });
    const { client } = await world.client(rec.stationPath);
    await handshake(client, { password: 'pw-1234' });
    await waitFor('the storage', () => rec.exposedPath ?? undefined);
    expect(await exists(rec.stationPath)).toBe(false);
  });
});
