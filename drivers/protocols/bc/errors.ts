import { CodedError } from '../../errors.ts';

/**
 * Errors of the BC recorder protocol, by code. Callers branch on `code`, never on the message:
 * - BC_TIMEOUT: no answer to a command within its timeout (a silent recorder, a dead line);
 * - BC_GARBAGE: bytes arrived but none of them made a reply (wrong baud rate, line noise, a foreign device);
 * - BC_AUTH_FAILED: the recorder refused the login (wrong password or locked);
 * - BC_DEVICE_ERROR: the recorder answered `Error:<reason>` to a command other than login;
 * - BC_BAD_REPLY: the expected reply arrived but its value is malformed (a DID that is not 7 characters, a
 *   battery level of 140, a clock that is not a date);
 * - BC_CLOSED: the byte stream ended or failed (unplugged, the tty vanished, the client was disposed);
 * - BC_BAD_ARGUMENT: a command argument cannot be sent (a password containing a line break).
 */
export type BcErrorCode =
  | 'BC_TIMEOUT'
  | 'BC_GARBAGE'
  | 'BC_AUTH_FAILED'
  | 'BC_DEVICE_ERROR'
  | 'BC_BAD_REPLY'
  | 'BC_CLOSED'
  | 'BC_BAD_ARGUMENT';

/** The handshake step during which an error happened. */
export type BcStep = 'login' | 'serial' | 'officer' | 'read-clock' | 'set-clock' | 'battery' | 'mass-storage';

export class BcError extends CodedError<BcErrorCode> {
  /** The command line that was in flight (password masked), when there was one. */
  readonly command?: string;
  /** The recorder's own words for `Error:<reason>` replies. */
  readonly reason?: string;
  /** Set by `handshake()`: which step failed. */
  step?: BcStep;

  constructor(code: BcErrorCode, message: string, opts: { command?: string; reason?: string; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.name = 'BcError';
    this.command = opts.command;
    this.reason = opts.reason;
  }
}

export function isBcError(e: unknown, code?: BcErrorCode): e is BcError {
  return e instanceof BcError && (code === undefined || e.code === code);
}
