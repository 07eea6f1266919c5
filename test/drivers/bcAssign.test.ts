/**
 * `BC+UID=<officerId>:<officerName>:<unitNo>`, assigning a pool recorder to an officer: its wire form, the station's
 * client against the emulated recorder on a real socat pty, and the emulator naming what it records afterwards with
 * the assigned officer.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BcError, commandLine, encodeCommand, parseCommand, parseReply, replyLine } from '../../drivers/protocols/bc/index.ts';
import { parseRecordingName } from '../../daemon/recorder/recordingName.ts';
import { type EmulatorWorld, useEmulatorWorld } from './emulatorWorld.ts';

let world: EmulatorWorld;
useEmulatorWorld((w) => {
  world = w;
});

describe('BC+UID= on the wire', () => {
  it('encodes an officer identity and parses the acknowledgement', () => {
    const identity = { officerId: '054321', officerName: '李四', unitNo: 'U3302' };
    expect(encodeCommand({ op: 'set-uid', ...identity }).toString('utf8')).toBe('BC+UID=054321:李四:U3302\r\n');
    expect(parseCommand('BC+UID=054321:李四:U3302\r\n')).toEqual({ op: 'set-uid', ...identity });
    expect(parseCommand('BC+UID=054321::')).toEqual({ op: 'set-uid', officerId: '054321', officerName: '', unitNo: '' });
    expect(parseCommand('BC+UID=05-43:x:y')).toBeNull();
    expect(parseReply('+UID:OK')).toEqual({ kind: 'uid-ok' });
    expect(replyLine({ kind: 'uid-ok' })).toBe('+UID:OK');
    // The identity reply is unchanged.
    expect(parseReply('+UID:054321:李四:U3302')).toEqual({ kind: 'uid', ...identity });
  });

  it('refuses to send an identity that would break the line or the file names (BC_BAD_ARGUMENT)', () => {
    for (const bad of [
      { officerId: '05-4321', officerName: 'x', unitNo: 'u' },
      { officerId: '054321', officerName: 'a\r\nBC+DEL=x', unitNo: 'u' },
      { officerId: '054321', officerName: 'x', unitNo: 'a:b' },
    ]) {
      expect(() => commandLine({ op: 'set-uid', ...bad })).toThrow(BcError);
    }
  });
});

describe('assigning the emulated recorder', () => {
  it('answers BC+UID? with the assigned officer and names its new recordings with them', async () => {
    const rec = await world.recorder({ serial: 'P000001', officerId: '012345' });
    const { client } = await world.client(rec.stationPath);
    await client.login('pw-1234');
    const before = await rec.record({ from: path.join(rec.volumeDir, 'DCIM', '100MEDIA', (await media(rec.volumeDir))[0]) });
    await client.setOfficer({ officerId: '054321', officerName: '李四', unitNo: 'U3302' });
    expect(await client.officer()).toEqual({ officerId: '054321', officerName: '李四', unitNo: 'U3302' });
    const after = await rec.record({ from: path.join(rec.volumeDir, before), important: true });

    const first = parseRecordingName(path.basename(before));
    const second = parseRecordingName(path.basename(after));
    expect(first).toMatchObject({ officerId: '012345', serial: 'P000001', seq: '0004' });
    expect(second).toMatchObject({ officerId: '054321', serial: 'P000001', seq: '0005', important: true });
    expect(await fs.readFile(path.join(rec.volumeDir, after))).toEqual(await fs.readFile(path.join(rec.volumeDir, before)));
  });

  it('refuses the assignment before a login, like every command', async () => {
    const rec = await world.recorder({ serial: 'P000002' });
    const { client } = await world.client(rec.stationPath);
    const e = await client.setOfficer({ officerId: '054321', officerName: '', unitNo: '' }).catch((err: BcError) => err);
    expect(e).toBeInstanceOf(BcError);
    expect((e as BcError).code).toBe('BC_DEVICE_ERROR');
    expect(rec.model.officerId).toBe('012345');
  });
});

async function media(volumeDir: string): Promise<string[]> {
  return (await fs.readdir(path.join(volumeDir, 'DCIM', '100MEDIA'))).filter((n) => n.endsWith('.mp4')).sort();
}
