/**
 * BcClient over a plain TCP socket (any Duplex will do) against a scripted peer: the odd things real firmware and
 * real lines do, which the emulator does not produce on its own.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BcClient } from '../../drivers/protocols/bc/index.ts';
import { failure } from './emulatorWorld.ts';

/** The peer's side: answers each command line with what `script` returns (bytes, or nothing). */
type Script = (line: string, peer: net.Socket) => Buffer | string | null | Promise<Buffer | string | null>;

const open: Array<{ server: net.Server; sockets: net.Socket[] }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    for (const s of o.sockets) s.destroy();
    await new Promise<void>((r) => o.server.close(() => r()));
  }
});

async function connect(
  script: Script,
  opts: ConstructorParameters<typeof BcClient>[1] = {},
): Promise<{ client: BcClient; socket: net.Socket; received: string[] }> {
  const received: string[] = [];
  const entry = { server: net.createServer(), sockets: [] as net.Socket[] };
  open.push(entry);
  entry.server.on('connection', (peer) => {
    entry.sockets.push(peer);
    let buf = '';
    peer.on('data', async (d) => {
      buf += d.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        received.push(line);
        const out = await script(line, peer);
        if (out !== null && !peer.destroyed) peer.write(out);
      }
    });
  });
  await new Promise<void>((r) => entry.server.listen(0, '127.0.0.1', () => r()));
  const { port } = entry.server.address() as net.AddressInfo;
  const socket = net.connect(port, '127.0.0.1');
  entry.sockets.push(socket);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  return { client: new BcClient(socket, { timeoutMs: 2000, ...opts }), socket, received };
}

describe('BcClient over a socket', () => {
  it('ignores an echo of its command, and a reply split into single bytes', async () => {
    const { client } = await connect((line, peer) => {
      peer.write(`${line}\r\n`); // echo
      const reply = Buffer.from('+DID:ECHO001\r\n');
      for (const [i, b] of [...reply].entries()) setTimeout(() => peer.write(Buffer.from([b])), i * 2);
      return null;
    });
    expect(await client.deviceId()).toBe('ECHO001');
  });

  it('ignores a stale reply with another tag and takes the one that answers', async () => {
    const { client } = await connect(() => '+BATVAL:50\r\n+SYSTIME:OK\r\n+BATVAL:999\r\n+DID:STALE01\r\n');
    expect(await client.deviceId()).toBe('STALE01');
  });

  it('reads a reply after line noise, and an officer name in GB18030', async () => {
    const { client } = await connect(() =>
      Buffer.concat([
        Buffer.from([0x00, 0xff, 0x13]),
        Buffer.from('+UID:012345:'),
        Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]),
        Buffer.from(':U3301\n'),
      ]),
    );
    expect(await client.officer()).toEqual({ officerId: '012345', officerName: '张三', unitNo: 'U3301' });
  });

  it('fails BC_GARBAGE on an endless line without waiting for the timeout to find a reply in it', async () => {
    const { client } = await connect(() => Buffer.alloc(5000, 0x5a), { timeoutMs: 30_000, maxLineBytes: 1024 });
    const e = await failure(client.battery());
    expect([e.code, e.command]).toEqual(['BC_GARBAGE', 'BC+BATVAL?']);
  });

  it('fails BC_GARBAGE after too many unreadable lines', async () => {
    const { client } = await connect(() => 'hello\r\nworld\r\n??\r\n!!\r\n##\r\n', { timeoutMs: 30_000, maxGarbageLines: 4 });
    expect((await failure(client.battery())).code).toBe('BC_GARBAGE');
  });

  it('fails BC_GARBAGE at the timeout when only a fragment of a line arrived', async () => {
    const { client } = await connect(() => '+BATV', { timeoutMs: 1500 });
    expect((await failure(client.battery())).code).toBe('BC_GARBAGE');
  });

  it('fails BC_BAD_REPLY on a malformed answer to the command', async () => {
    const { client } = await connect((line) => (line === 'BC+DID?' ? '+DID:12\r\n' : '+BATVAL:140\r\n'));
    expect((await failure(client.deviceId())).code).toBe('BC_BAD_REPLY');
    expect((await failure(client.battery())).code).toBe('BC_BAD_REPLY');
  });

  it('maps Error: to BC_AUTH_FAILED for the login and BC_DEVICE_ERROR otherwise; +LOGIN:<other> is a refusal', async () => {
    let loginAnswer = 'Error:locked\r\n';
    const { client } = await connect((line) => (line.startsWith('BC+LOGIN') ? loginAnswer : 'Error:busy\r\n'));
    expect(await failure(client.login('x'))).toMatchObject({ code: 'BC_AUTH_FAILED', reason: 'locked' });
    loginAnswer = '+LOGIN:FAIL\r\n';
    expect(await failure(client.login('x'))).toMatchObject({ code: 'BC_AUTH_FAILED', reason: 'FAIL' });
    expect(await failure(client.enableMassStorage())).toMatchObject({
      code: 'BC_DEVICE_ERROR',
      reason: 'busy',
      command: 'BC+UDISKEN=1',
    });
  });

  it('never sends a password that would inject a command', async () => {
    const { client, received } = await connect(() => '+LOGIN:OK\r\n');
    expect((await failure(client.login('pw\r\nBC+UDISKEN=1'))).code).toBe('BC_BAD_ARGUMENT');
    expect(await client.login('fine')).toEqual({ word: 'OK' });
    expect(received).toEqual(['BC+LOGIN=admin:fine']);
  });

  it('has one command in flight: the next is sent only after the reply', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const { client, received } = await connect(async (line) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      return line === 'BC+DID?' ? '+DID:ONE0001\r\n' : line === 'BC+BATVAL?' ? '+BATVAL:3\r\n' : '+UDISKEN:OK\r\n';
    });
    const results = await Promise.all([client.deviceId(), client.battery(), client.enableMassStorage()]);
    expect(results).toEqual(['ONE0001', 3, undefined]);
    expect(received).toEqual(['BC+DID?', 'BC+BATVAL?', 'BC+UDISKEN=1']);
    expect(maxInFlight).toBe(1);
  });

  it('fails BC_CLOSED when the peer goes away mid-command, and for every later call', async () => {
    const { client } = await connect(
      (_line, peer) => {
        peer.destroy();
        return null;
      },
      { timeoutMs: 30_000 },
    );
    expect((await failure(client.battery())).code).toBe('BC_CLOSED');
    expect(client.closed).toBe(true);
    expect((await failure(client.deviceId())).code).toBe('BC_CLOSED');
  });

  it('fails BC_CLOSED for pending and later calls once disposed, leaving the stream open', async () => {
    const { client, socket } = await connect(() => null, { timeoutMs: 30_000 });
    const pending = failure(client.battery());
    await new Promise((r) => setTimeout(r, 20));
    client.dispose();
    expect((await pending).code).toBe('BC_CLOSED');
    expect((await failure(client.battery())).code).toBe('BC_CLOSED');
    expect(socket.destroyed).toBe(false);
  });
});
