/**
 * dockd's switch to mass storage (daemon/dock/massStorageSwitch.ts) over a real pty with the emulator behind it: an
 * acknowledgement, or no reply from a tty that has gone, is a switch; no reply from a tty still there is a failure.
 */
import { describe, expect, it } from 'vitest';
import { handshake } from '../../drivers/protocols/bc/index.ts';
import { switchToMassStorage } from '../../daemon/dock/massStorageSwitch.ts';
import { type EmulatorWorld, failure, useEmulatorWorld, waitFor } from './emulatorWorld.ts';

let world: EmulatorWorld;
useEmulatorWorld((w) => {
  world = w;
});

async function loggedIn(serial: string, faults = {}) {
  const rec = await world.recorder({ serial, faults });
  const { client, transport } = await world.client(rec.stationPath, { timeoutMs: 3000 });
  await handshake(client, { password: 'pw-1234', massStorage: false });
  return { rec, client, transport };
}

describe('switchToMassStorage', () => {
  it('acknowledged: the recorder answered +UDISKEN:OK', async () => {
    const { rec, client, transport } = await loggedIn('SWT0001');
    expect(await switchToMassStorage(client, transport)).toBe('acknowledged');
    await waitFor('the volume', () => rec.state === 'storage');
  });

  it('no reply, but its tty is gone: the switch happened', async () => {
    const { rec, client, transport } = await loggedIn('SWT0002', { vanishesBeforeUdiskReply: true });
    expect(await switchToMassStorage(client, transport)).toBe('tty gone without a reply');
    await waitFor('the volume', () => rec.state === 'storage');
  });

  it('no reply from a tty that is still there: BC_TIMEOUT, as before', async () => {
    const { rec, client, transport } = await loggedIn('SWT0003');
    rec.faults.silence = true;
    const e = await failure(switchToMassStorage(client, transport));
    expect([e.code, e.command]).toEqual(['BC_TIMEOUT', 'BC+UDISKEN=1']);
    expect(rec.state).toBe('command');
  });
});
