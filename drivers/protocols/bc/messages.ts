/**
 * Commands and replies of the BC recorder protocol: encoding and parsing for both ends (the station's client and the
 * recorder emulator). Pure (no IO).
 *
 * ```
 * → BC+LOGIN=admin:<password>      ← +LOGIN:OK | +LOGIN:Sucess (sic, some firmware) | Error:<reason>
 * → BC+DID?                        ← +DID:<serial, 7 chars>
 * → BC+UID?                        ← +UID:<officerId>:<officerName>:<unitNo>
 * → BC+UID=<officerId>:<officerName>:<unitNo>  ← +UID:OK
 * → BC+SYSTIME?                    ← +SYSTIME:<YYYYMMDDhhmmss>
 * → BC+SYSTIME=<YYYYMMDDhhmmss>    ← +SYSTIME:OK
 * → BC+BATVAL?                     ← +BATVAL:<0-100>
 * → BC+UDISKEN=1                   ← +UDISKEN:OK   (the recorder then leaves and returns as mass storage)
 * → BC+DEL=<path>                  ← +DEL:OK | +DEL:ERR:<reason>
 * ```
 * Every line ends with CRLF. Any command may be answered `Error:<reason>` (`not login` before a login).
 *
 * `BC+DEL=<path>` deletes one file from the recorder's own storage, named by its path inside that storage with `/`
 * between parts (`DCIM/100MEDIA/012345_1234567_20261128083000_0001.mp4`; UTF-8, no `.` or `..` parts, no leading `/`,
 * at most MAX_DELETE_PATH_BYTES). `+DEL:ERR:<reason>` says why the recorder did not delete it (`no such file`, `not a
 * file`, `bad path`, `read-only`, …). There is deliberately no format command: dockd deletes one verified file at a time.
 *
 * `BC+UID=<officerId>:<officerName>:<unitNo>` assigns the recorder to an officer (a pool recorder taken at the station):
 * the recorder answers later `BC+UID?` with it and names the files it records from then on with that officer id. The
 * officer id is letters and digits, the unit no. has no `:`; the name may be empty; none carries CR, LF or NUL.
 */
import { BcError } from './errors.ts';
import { decodeLine } from './lines.ts';
import { BC_TIME_PATTERN, parseBcWallClock } from './time.ts';

export const BC_LOGIN_USER = 'admin';
export const LINE_END = '\r\n';

export type BcCommand =
  | { op: 'login'; user: string; password: string }
  | { op: 'get-did' }
  | { op: 'get-uid' }
  | ({ op: 'set-uid' } & OfficerIdentity)
  | { op: 'get-systime' }
  | { op: 'set-systime'; time: string }
  | { op: 'get-batval' }
  | { op: 'udisk-enable' }
  | { op: 'delete'; path: string };

/** The `+TAG:` a reply carries; it names the command it answers. */
export type BcTag = 'LOGIN' | 'DID' | 'UID' | 'SYSTIME' | 'BATVAL' | 'UDISKEN' | 'DEL';
const TAGS: readonly BcTag[] = ['LOGIN', 'DID', 'UID', 'SYSTIME', 'BATVAL', 'UDISKEN', 'DEL'];

export interface OfficerIdentity {
  officerId: string;
  officerName: string;
  unitNo: string;
}

export type BcReply =
  | { kind: 'login-ok'; word: string }
  | { kind: 'login-refused'; word: string }
  | { kind: 'error'; reason: string }
  | { kind: 'did'; serial: string }
  | ({ kind: 'uid' } & OfficerIdentity)
  | { kind: 'uid-ok' }
  | { kind: 'systime'; time: string }
  | { kind: 'systime-ok' }
  | { kind: 'batval'; percent: number }
  | { kind: 'udisken-ok' }
  | { kind: 'del-ok' }
  | { kind: 'del-refused'; reason: string }
  /** A known tag with a value that does not parse. */
  | { kind: 'malformed'; tag: BcTag; line: string; problem: string }
  /** Not a reply at all. */
  | { kind: 'unknown'; line: string };

export const SERIAL_PATTERN = /^[0-9A-Za-z]{7}$/;
const OFFICER_ID_PATTERN = /^[0-9A-Za-z]+$/;
/** Words of `+LOGIN:` that mean success; `Sucess` is a misspelling some firmware really sends. */
export const LOGIN_OK_WORDS: readonly string[] = ['OK', 'Sucess', 'Success'];

export function commandTag(cmd: BcCommand): BcTag {
  switch (cmd.op) {
    case 'login':
      return 'LOGIN';
    case 'get-did':
      return 'DID';
    case 'get-uid':
    case 'set-uid':
      return 'UID';
    case 'get-systime':
    case 'set-systime':
      return 'SYSTIME';
    case 'get-batval':
      return 'BATVAL';
    case 'udisk-enable':
      return 'UDISKEN';
    case 'delete':
      return 'DEL';
  }
}

function assertSendable(what: string, value: string): void {
  // A line break or NUL would end the command early and inject another one.
  if (/[\r\n\0]/.test(value)) throw new BcError('BC_BAD_ARGUMENT', `${what} must not contain CR, LF or NUL`);
}

/** Longest path `BC+DEL=` takes, in UTF-8 bytes (the line must fit a recorder's 512-byte line buffer). */
export const MAX_DELETE_PATH_BYTES = 400;

/** Why `path` cannot be named in `BC+DEL=`, or null when it can (both ends use this). */
export function deletePathProblem(path: string): string | null {
  if (!path) return 'the path is empty';
  if (/[\r\n\0]/.test(path)) return 'the path must not contain CR, LF or NUL';
  if (path.includes('\uFFFD')) return 'the path is not UTF-8';
  if (path !== path.trim()) return 'the path must not begin or end with blanks';
  if (Buffer.byteLength(path, 'utf8') > MAX_DELETE_PATH_BYTES) return `the path is longer than ${MAX_DELETE_PATH_BYTES} bytes`;
  if (path.startsWith('/') || path.includes('\\') || path.split('/').some((p) => p === '' || p === '.' || p === '..'))
    return 'the path must be relative, with / between its parts and no . or .. parts';
  return null;
}

/** Why `o` cannot be sent in `BC+UID=`, or null when it can (both ends use this). */
export function officerIdentityProblem(o: OfficerIdentity): string | null {
  if (!OFFICER_ID_PATTERN.test(o.officerId)) return `officer id must be letters or digits, got ${JSON.stringify(o.officerId)}`;
  if (/[\r\n\0]/.test(o.officerName + o.unitNo)) return 'officer name and unit no. must not contain CR, LF or NUL';
  if (o.unitNo.includes(':')) return 'unit no. must not contain ":"';
  if (Buffer.byteLength(o.officerName, 'utf8') > 128 || Buffer.byteLength(o.unitNo, 'utf8') > 64)
    return 'officer name (128 bytes) or unit no. (64 bytes) too long';
  return null;
}

/** The command's line without its terminator. */
export function commandLine(cmd: BcCommand): string {
  switch (cmd.op) {
    case 'login':
      assertSendable('user', cmd.user);
      assertSendable('password', cmd.password);
      if (cmd.user.includes(':')) throw new BcError('BC_BAD_ARGUMENT', 'user must not contain ":"');
      return `BC+LOGIN=${cmd.user}:${cmd.password}`;
    case 'get-did':
      return 'BC+DID?';
    case 'get-uid':
      return 'BC+UID?';
    case 'set-uid': {
      const problem = officerIdentityProblem(cmd);
      if (problem) throw new BcError('BC_BAD_ARGUMENT', `cannot assign the recorder: ${problem}`);
      return `BC+UID=${cmd.officerId}:${cmd.officerName}:${cmd.unitNo}`;
    }
    case 'get-systime':
      return 'BC+SYSTIME?';
    case 'set-systime':
      if (!parseBcWallClock(cmd.time))
        throw new BcError('BC_BAD_ARGUMENT', `clock must be a valid YYYYMMDDhhmmss, got ${JSON.stringify(cmd.time)}`);
      return `BC+SYSTIME=${cmd.time}`;
    case 'get-batval':
      return 'BC+BATVAL?';
    case 'udisk-enable':
      return 'BC+UDISKEN=1';
    case 'delete': {
      const problem = deletePathProblem(cmd.path);
      if (problem) throw new BcError('BC_BAD_ARGUMENT', `cannot delete ${JSON.stringify(cmd.path)}: ${problem}`);
      return `BC+DEL=${cmd.path}`;
    }
  }
}

/** The command as bytes on the wire (UTF-8, CRLF-terminated). Throws BC_BAD_ARGUMENT for unsendable arguments. */
export function encodeCommand(cmd: BcCommand): Buffer {
  return Buffer.from(commandLine(cmd) + LINE_END, 'utf8');
}

/** The command line for logs and errors: the password is masked. */
export function describeCommand(cmd: BcCommand): string {
  if (cmd.op === 'login') return `BC+LOGIN=${cmd.user}:***`;
  if (cmd.op === 'delete') return `BC+DEL=${JSON.stringify(cmd.path).slice(1, -1)}`; // described even when it cannot be sent
  return commandLine(cmd);
}

/** Recorder side: a received line as a command, or null when it is none of the commands above. */
export function parseCommand(line: string): BcCommand | null {
  const text = line.trim();
  const login = /^BC\+LOGIN=([^:]*):(.*)$/.exec(text);
  if (login) return { op: 'login', user: login[1], password: login[2] };
  // Any path is taken as said: the recorder checks it and answers +DEL:ERR:bad path.
  const del = /^BC\+DEL=(.*)$/.exec(text);
  if (del) return { op: 'delete', path: del[1] };
  const setUid = /^BC\+UID=([^:]*):(.*):([^:]*)$/.exec(text);
  if (setUid) {
    const identity = { officerId: setUid[1], officerName: setUid[2], unitNo: setUid[3] };
    return officerIdentityProblem(identity) ? null : { op: 'set-uid', ...identity };
  }
  const setTime = /^BC\+SYSTIME=(\d{14})$/.exec(text);
  if (setTime) return parseBcWallClock(setTime[1]) ? { op: 'set-systime', time: setTime[1] } : null;
  switch (text) {
    case 'BC+DID?':
      return { op: 'get-did' };
    case 'BC+UID?':
      return { op: 'get-uid' };
    case 'BC+SYSTIME?':
      return { op: 'get-systime' };
    case 'BC+BATVAL?':
      return { op: 'get-batval' };
    case 'BC+UDISKEN=1':
      return { op: 'udisk-enable' };
    default:
      return null;
  }
}

/** Is this line an echo of a command (some CDC firmware echoes what it receives)? */
export function isCommandEcho(line: string): boolean {
  return /^\s*BC\+/.test(line);
}

/** Recorder side: the reply's line without its terminator. */
export function replyLine(reply: BcReply): string {
  switch (reply.kind) {
    case 'login-ok':
    case 'login-refused':
      return `+LOGIN:${reply.word}`;
    case 'error':
      return `Error:${reply.reason}`;
    case 'did':
      return `+DID:${reply.serial}`;
    case 'uid':
      return `+UID:${reply.officerId}:${reply.officerName}:${reply.unitNo}`;
    case 'uid-ok':
      return '+UID:OK';
    case 'systime':
      return `+SYSTIME:${reply.time}`;
    case 'systime-ok':
      return '+SYSTIME:OK';
    case 'batval':
      return `+BATVAL:${reply.percent}`;
    case 'udisken-ok':
      return '+UDISKEN:OK';
    case 'del-ok':
      return '+DEL:OK';
    case 'del-refused':
      return `+DEL:ERR:${reply.reason}`;
    case 'malformed':
    case 'unknown':
      return reply.line;
  }
}

export function encodeReply(reply: BcReply): Buffer {
  return Buffer.from(replyLine(reply) + LINE_END, 'utf8');
}

// A reply head anywhere in the line: noise before it (a NUL, a stray byte after power-up) is tolerated.
const REPLY_HEAD = new RegExp(`(\\+(${TAGS.join('|')}):)|(error:)`, 'i');

/** Station side: one received line as a reply. Never throws. */
export function parseReply(line: string): BcReply {
  const text = line.replace(/^[\s\0]+|[\s\0]+$/g, '');
  const head = REPLY_HEAD.exec(text);
  if (!head) return { kind: 'unknown', line };
  const rest = text.slice(head.index + head[0].length);
  if (head[3]) return { kind: 'error', reason: rest.trim() };
  const tag = head[2].toUpperCase() as BcTag;
  const value = rest.trim();
  const bad = (problem: string): BcReply => ({ kind: 'malformed', tag, line, problem });
  switch (tag) {
    case 'LOGIN':
      if (!value) return bad('empty login answer');
      return LOGIN_OK_WORDS.some((w) => w.toLowerCase() === value.toLowerCase())
        ? { kind: 'login-ok', word: value }
        : { kind: 'login-refused', word: value };
    case 'DID':
      return SERIAL_PATTERN.test(value)
        ? { kind: 'did', serial: value }
        : bad(`serial must be 7 letters or digits, got ${JSON.stringify(value)}`);
    case 'UID': {
      if (value.toUpperCase() === 'OK') return { kind: 'uid-ok' };
      const parts = rest.split(':');
      if (parts.length < 3) return bad('expected <officerId>:<officerName>:<unitNo>');
      const officerId = parts[0].trim();
      const unitNo = parts[parts.length - 1].trim();
      const officerName = parts.slice(1, -1).join(':').trim();
      if (!OFFICER_ID_PATTERN.test(officerId))
        return bad(`officer id must be letters or digits, got ${JSON.stringify(officerId)}`);
      return { kind: 'uid', officerId, officerName, unitNo };
    }
    case 'SYSTIME':
      if (value.toUpperCase() === 'OK') return { kind: 'systime-ok' };
      if (!BC_TIME_PATTERN.test(value) || !parseBcWallClock(value))
        return bad(`clock must be a valid YYYYMMDDhhmmss, got ${JSON.stringify(value)}`);
      return { kind: 'systime', time: value };
    case 'BATVAL': {
      const m = /^(\d{1,3})\s*%?$/.exec(value);
      const percent = m ? Number(m[1]) : NaN;
      return m && percent <= 100 ? { kind: 'batval', percent } : bad(`battery must be 0-100, got ${JSON.stringify(value)}`);
    }
    case 'UDISKEN':
      return value.toUpperCase() === 'OK' ? { kind: 'udisken-ok' } : bad(`expected OK, got ${JSON.stringify(value)}`);
    case 'DEL': {
      if (value.toUpperCase() === 'OK') return { kind: 'del-ok' };
      const refused = /^ERR(?::(.*))?$/i.exec(value);
      return refused
        ? { kind: 'del-refused', reason: (refused[1] ?? '').trim() || 'no reason given' }
        : bad(`expected OK or ERR:<reason>, got ${JSON.stringify(value)}`);
    }
  }
}

/**
 * Station side: one received line, as bytes, as a reply. The reply head is found in the bytes before decoding, so noise
 * in front of it (bytes that are not text in any encoding) does not spoil the decoding of the rest (e.g. a GB18030 name).
 */
export function parseReplyBytes(bytes: Uint8Array): BcReply {
  const head = REPLY_HEAD.exec(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'));
  const reply = parseReply(decodeLine(head ? bytes.subarray(head.index) : bytes).text);
  return reply.kind === 'unknown' || reply.kind === 'malformed' ? { ...reply, line: decodeLine(bytes).text } : reply;
}

/** The tag a reply carries, or null for `Error:` and unknown lines. */
export function replyTag(reply: BcReply): BcTag | null {
  switch (reply.kind) {
    case 'login-ok':
    case 'login-refused':
      return 'LOGIN';
    case 'did':
      return 'DID';
    case 'uid':
    case 'uid-ok':
      return 'UID';
    case 'systime':
    case 'systime-ok':
      return 'SYSTIME';
    case 'batval':
      return 'BATVAL';
    case 'udisken-ok':
      return 'UDISKEN';
    case 'del-ok':
    case 'del-refused':
      return 'DEL';
    case 'malformed':
      return reply.tag;
    case 'error':
    case 'unknown':
      return null;
  }
}
