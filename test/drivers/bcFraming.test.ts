/** The pure part of the BC protocol: line framing, command and reply parsing, the clock format. */
import { describe, expect, it } from 'vitest';
import {
  BcError,
  LineSplitter,
  encodeCommand,
  encodeReply,
  formatBcTime,
  parseBcTime,
  parseCommand,
  parseReply,
  parseReplyBytes,
  type BcCommand,
  type LineEvent,
} from '../../drivers/protocols/bc/index.ts';

const texts = (events: LineEvent[]) => events.map((e) => (e.kind === 'line' ? e.text : `<overflow ${e.bytes}>`));

describe('LineSplitter', () => {
  it('splits on CRLF, LF and lone CR, and skips empty lines', () => {
    const s = new LineSplitter();
    expect(texts(s.push(Buffer.from('+DID:1234567\r\n+BATVAL:80\n\r\n+UDISKEN:OK\r+SYSTIME:OK\r\n')))).toEqual([
      '+DID:1234567',
      '+BATVAL:80',
      '+UDISKEN:OK',
      '+SYSTIME:OK',
    ]);
    expect(s.pendingBytes).toBe(0);
  });

  it('joins a line delivered byte by byte, with CR and LF in different chunks', () => {
    const s = new LineSplitter();
    const out: LineEvent[] = [];
    for (const b of Buffer.from('+UID:012345:张三:U3301\r\n+LOGIN:OK\r')) out.push(...s.push(Buffer.from([b])));
    out.push(...s.push(Buffer.from('\n')));
    expect(texts(out)).toEqual(['+UID:012345:张三:U3301', '+LOGIN:OK']);
  });

  it('keeps a partial line until its terminator arrives, and forgets it on reset', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('+BATV'))).toEqual([]);
    expect(s.pendingBytes).toBe(5);
    expect(texts(s.push(Buffer.from('AL:42\r\n+DI')))).toEqual(['+BATVAL:42']);
    s.reset();
    expect(texts(s.push(Buffer.from('D:7654321\r\n')))).toEqual(['D:7654321']);
  });

  it('drops an overlong line up to its terminator, reports it once, and carries on', () => {
    const s = new LineSplitter(32);
    const out = [...s.push(Buffer.alloc(20, 0x41)), ...s.push(Buffer.alloc(20, 0x42)), ...s.push(Buffer.alloc(100, 0x43))];
    expect(texts(out)).toEqual(['<overflow 40>']);
    expect(s.pendingBytes).toBe(0);
    expect(texts(s.push(Buffer.from('CCCC\r\n+BATVAL:9\r\n')))).toEqual(['+BATVAL:9']);
    // Exactly the limit is still a line.
    expect(texts(s.push(Buffer.from(`${'x'.repeat(32)}\n`)))).toEqual(['x'.repeat(32)]);
  });

  it('decodes UTF-8, then GB18030, and marks other bytes invalid without throwing', () => {
    const s = new LineSplitter();
    const gbName = Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]); // 张三 in GB18030
    const events = s.push(
      Buffer.concat([
        Buffer.from('+UID:1:张三:U\r\n'),
        Buffer.from('+UID:2:'),
        gbName,
        Buffer.from(':U\r\n'),
        Buffer.from([0xff, 0xfe, 0x80, 0x0d, 0x0a]),
      ]),
    );
    expect(events.map((e) => (e.kind === 'line' ? [e.encoding, e.text] : e.kind))).toEqual([
      ['utf-8', '+UID:1:张三:U'],
      ['gb18030', '+UID:2:张三:U'],
      ['invalid', '\ufffd\ufffd\ufffd'],
    ]);
  });

  it("does not keep a reference to the caller's chunk", () => {
    const s = new LineSplitter();
    const chunk = Buffer.from('+DID:ABCDEFG');
    s.push(chunk);
    chunk.fill(0x20);
    expect(texts(s.push(Buffer.from('\n')))).toEqual(['+DID:ABCDEFG']);
  });
});

describe('parseReply', () => {
  it('reads every reply of the protocol', () => {
    expect(parseReply('+LOGIN:OK')).toEqual({ kind: 'login-ok', word: 'OK' });
    expect(parseReply('+LOGIN:Sucess')).toEqual({ kind: 'login-ok', word: 'Sucess' });
    expect(parseReply('+LOGIN:Success')).toEqual({ kind: 'login-ok', word: 'Success' });
    expect(parseReply('+LOGIN:FAIL')).toEqual({ kind: 'login-refused', word: 'FAIL' });
    expect(parseReply('Error:password error')).toEqual({ kind: 'error', reason: 'password error' });
    expect(parseReply('ERROR:busy')).toEqual({ kind: 'error', reason: 'busy' });
    expect(parseReply('+DID:A1B2C3D')).toEqual({ kind: 'did', serial: 'A1B2C3D' });
    expect(parseReply('+UID:012345:张三:U3301')).toEqual({
      kind: 'uid',
      officerId: '012345',
      officerName: '张三',
      unitNo: 'U3301',
    });
    expect(parseReply('+UID:012345:A:B:U9')).toEqual({ kind: 'uid', officerId: '012345', officerName: 'A:B', unitNo: 'U9' });
    expect(parseReply('+SYSTIME:20261128093000')).toEqual({ kind: 'systime', time: '20261128093000' });
    expect(parseReply('+SYSTIME:OK')).toEqual({ kind: 'systime-ok' });
    expect(parseReply('+BATVAL:0')).toEqual({ kind: 'batval', percent: 0 });
    expect(parseReply('+BATVAL:100')).toEqual({ kind: 'batval', percent: 100 });
    expect(parseReply('+UDISKEN:OK')).toEqual({ kind: 'udisken-ok' });
  });

  it('tolerates noise before the reply and whitespace or NULs around it', () => {
    expect(parseReply('\0\ufffd\u0007+DID:1234567 \0')).toEqual({ kind: 'did', serial: '1234567' });
    expect(parseReply('  +BATVAL:55%')).toEqual({ kind: 'batval', percent: 55 });
  });

  it('marks a known reply with a bad value as malformed, naming its tag', () => {
    expect(parseReply('+DID:123')).toMatchObject({ kind: 'malformed', tag: 'DID' });
    expect(parseReply('+DID:12345678')).toMatchObject({ kind: 'malformed', tag: 'DID' });
    expect(parseReply('+BATVAL:140')).toMatchObject({ kind: 'malformed', tag: 'BATVAL' });
    expect(parseReply('+BATVAL:-1')).toMatchObject({ kind: 'malformed', tag: 'BATVAL' });
    expect(parseReply('+SYSTIME:20261332093000')).toMatchObject({ kind: 'malformed', tag: 'SYSTIME' });
    expect(parseReply('+SYSTIME:20260230120000')).toMatchObject({ kind: 'malformed', tag: 'SYSTIME' });
    expect(parseReply('+UID:012345')).toMatchObject({ kind: 'malformed', tag: 'UID' });
    expect(parseReply('+UDISKEN:NO')).toMatchObject({ kind: 'malformed', tag: 'UDISKEN' });
  });

  it('calls anything else unknown', () => {
    for (const line of ['hello', 'OK', '+FOO:1', '\ufffd\ufffd', 'DID:1234567'])
      expect(parseReply(line)).toEqual({ kind: 'unknown', line });
  });
});

describe('parseReplyBytes', () => {
  it('finds the reply head in the bytes, so noise before it does not spoil a GB18030 name', () => {
    const line = Buffer.concat([
      Buffer.from([0xff, 0x00, 0x80]),
      Buffer.from('+UID:012345:'),
      Buffer.from([0xcd, 0xf5, 0xce, 0xe5]),
      Buffer.from(':U1'),
    ]);
    expect(parseReplyBytes(line)).toEqual({ kind: 'uid', officerId: '012345', officerName: '王五', unitNo: 'U1' });
    expect(parseReplyBytes(Buffer.from('+LOGIN:Sucess'))).toEqual({ kind: 'login-ok', word: 'Sucess' });
    expect(parseReplyBytes(Buffer.from([0xff, 0xfe]))).toEqual({ kind: 'unknown', line: '\ufffd\ufffd' });
  });
});

describe('commands', () => {
  const all: Array<[BcCommand, string]> = [
    [{ op: 'login', user: 'admin', password: 'p:w' }, 'BC+LOGIN=admin:p:w\r\n'],
    [{ op: 'get-did' }, 'BC+DID?\r\n'],
    [{ op: 'get-uid' }, 'BC+UID?\r\n'],
    [{ op: 'get-systime' }, 'BC+SYSTIME?\r\n'],
    [{ op: 'set-systime', time: '20261128093000' }, 'BC+SYSTIME=20261128093000\r\n'],
    [{ op: 'get-batval' }, 'BC+BATVAL?\r\n'],
    [{ op: 'udisk-enable' }, 'BC+UDISKEN=1\r\n'],
  ];

  it('encode as CRLF-terminated lines and parse back on the recorder side', () => {
    for (const [cmd, wire] of all) {
      expect(encodeCommand(cmd).toString('utf8')).toBe(wire);
      expect(parseCommand(wire)).toEqual(cmd);
    }
    expect(parseCommand('BC+REBOOT')).toBeNull();
    expect(parseCommand('BC+SYSTIME=20261399000000')).toBeNull();
  });

  it('refuses arguments that would inject a second command', () => {
    expect(() => encodeCommand({ op: 'login', user: 'admin', password: 'x\r\nBC+UDISKEN=1' })).toThrow(BcError);
    expect(() => encodeCommand({ op: 'login', user: 'admin', password: 'x\r\nBC+UDISKEN=1' })).toThrow(
      expect.objectContaining({ code: 'BC_BAD_ARGUMENT' }),
    );
    expect(() => encodeCommand({ op: 'set-systime', time: '2026' })).toThrow(
      expect.objectContaining({ code: 'BC_BAD_ARGUMENT' }),
    );
  });

  it('replies encode to lines parseReply reads back', () => {
    expect(encodeReply({ kind: 'login-ok', word: 'Sucess' }).toString()).toBe('+LOGIN:Sucess\r\n');
    expect(
      parseReply(encodeReply({ kind: 'uid', officerId: '012345', officerName: '王五', unitNo: 'U1' }).toString().trim()),
    ).toEqual({ kind: 'uid', officerId: '012345', officerName: '王五', unitNo: 'U1' });
  });
});

describe('the recorder clock format', () => {
  it('formats and parses in a named zone', () => {
    const t = new Date('2026-11-28T01:30:05.900Z');
    expect(formatBcTime(t, 'Asia/Shanghai')).toBe('20261128093005');
    expect(formatBcTime(t, 'UTC')).toBe('20261128013005');
    expect(parseBcTime('20261128093005', 'Asia/Shanghai')?.toISOString()).toBe('2026-11-28T01:30:05.000Z');
    expect(parseBcTime('20261231235959', 'UTC')?.toISOString()).toBe('2026-12-31T23:59:59.000Z');
  });

  it('handles a zone with daylight saving time on both sides of the change', () => {
    expect(parseBcTime('20260701120000', 'Europe/Berlin')?.toISOString()).toBe('2026-07-01T10:00:00.000Z');
    expect(parseBcTime('20260101120000', 'Europe/Berlin')?.toISOString()).toBe('2026-01-01T11:00:00.000Z');
    expect(formatBcTime(new Date('2026-07-01T10:00:00Z'), 'Europe/Berlin')).toBe('20260701120000');
  });

  it('round-trips in the local zone', () => {
    const t = new Date(2026, 10, 28, 9, 30, 5);
    expect(formatBcTime(t)).toBe('20261128093005');
    expect(parseBcTime('20261128093005')?.getTime()).toBe(t.getTime());
  });

  it('rejects what is not a real date and time', () => {
    for (const bad of [
      '2026112809300',
      '2026112809300x',
      '20260229120000',
      '20261128240000',
      '20261128236000',
      '18991231235959',
    ]) {
      expect(parseBcTime(bad, 'UTC')).toBeNull();
    }
    expect(parseBcTime('20280229120000', 'UTC')?.toISOString()).toBe('2028-02-29T12:00:00.000Z');
  });
});
