/**
 * A byte transport: what a recorder protocol driver (e.g. BcClient) talks through. Serial (CDC-ACM, a pty) is one;
 * a USB bulk pipe or TCP can implement the same interface. The protocol only ever sees `stream`.
 */
import type { Duplex } from 'node:stream';
import { CodedError } from '../errors.ts';

export interface ByteTransport {
  /** Which kind of transport this is (`serial`, `usb-bulk`, …), for logs and status. */
  readonly kind: string;
  /** The endpoint it is connected to (a tty path, `bus-port:endpoint`, …). */
  readonly target: string;
  /** The bytes: written to the device, read from it. Owned by the transport; the driver does not close it. */
  readonly stream: Duplex;
  /** True until the transport is closed or the device goes away. */
  readonly isOpen: boolean;
  /** Settles (never rejects) when the transport is closed for any reason: close(), unplug, a read error. */
  readonly closed: Promise<{ error?: Error }>;
  /** Closes the transport; safe to call more than once and after the device went away. */
  close(): Promise<void>;
  /**
   * Whether the device has gone although no close was seen yet (its path vanished, the port answers ENODEV/EIO): a
   * silent device that is still there is not gone. Optional: a transport that cannot tell leaves it out.
   */
  deviceGone?(): Promise<boolean>;
}

/** Opens a transport to a target (a path or an address); injected where transports are needed. */
export type TransportOpener = (target: string) => Promise<ByteTransport>;

/**
 * Errors opening a transport, by code:
 * - TRANSPORT_NOT_FOUND: the target does not exist (the recorder left, the tty was never there);
 * - TRANSPORT_OPEN_FAILED: it exists but could not be opened (busy or locked by another process, permissions, not a tty).
 */
export type TransportErrorCode = 'TRANSPORT_NOT_FOUND' | 'TRANSPORT_OPEN_FAILED';

export class TransportError extends CodedError<TransportErrorCode> {
  constructor(
    code: TransportErrorCode,
    message: string,
    readonly target: string,
    cause?: unknown,
  ) {
    super(code, message, { cause });
    this.name = 'TransportError';
  }
}
