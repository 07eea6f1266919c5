/**
 * The base of dockd's coded errors: retries, quarantine and alarms branch on `code`, never on the message. Each area
 * names its codes (CopyErrorCode, UsbErrorCode, …); the message is for people. Here, in drivers/, because the drivers
 * throw coded errors too and must not import the daemon.
 */
export class CodedError<C extends string = string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

/** A coded error, with one of `codes` when any are given. */
export function isCoded<C extends string>(e: unknown, ...codes: C[]): e is CodedError<C> {
  return e instanceof CodedError && (codes.length === 0 || codes.includes(e.code as C));
}
