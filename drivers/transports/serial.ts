/**
 * Serial transport: a tty (CDC-ACM `/dev/ttyACMn`, `/dev/serial/by-id/…`, or a pty) opened with `serialport`.
 */
import fs from 'node:fs/promises';
import { SerialPort } from 'serialport';
import { TransportError, type ByteTransport } from './transport.ts';

export interface SerialOptions {
  /** Line speed (default 115200; ignored by CDC-ACM and ptys, which have none). */
  baudRate?: number;
  /** Take an exclusive lock on the tty so no other process talks to the recorder at the same time (default true). */
  lock?: boolean;
}

/** What stat() of a tty path says once the device behind it has gone. */
const GONE_PATH_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENODEV', 'ENXIO']);
/**
 * The port's status read (ioctl TIOCMGET) on a tty whose device has gone: EIO (hung up), ENODEV or ENXIO. The binding
 * reports only strerror's words, so these are matched here and nowhere else; ENOTTY (a pty) means it is still there.
 */
const GONE_PORT_ERROR = /Input\/output error|No such device/;

export class SerialTransport implements ByteTransport {
  readonly kind = 'serial';
  readonly closed: Promise<{ error?: Error }>;
  private open = true;

  private constructor(
    readonly target: string,
    private readonly port: SerialPort,
  ) {
    // A read error (the device vanished) is followed by 'close'; keep it from becoming an unhandled 'error'.
    let lastError: Error | undefined;
    port.on('error', (e) => {
      lastError = e;
    });
    this.closed = new Promise((resolve) => {
      port.once('close', (err?: Error | null) => {
        this.open = false;
        const error = err ?? lastError;
        resolve(error ? { error } : {});
      });
    });
  }

  get stream(): SerialPort {
    return this.port;
  }
  get isOpen(): boolean {
    return this.open && this.port.isOpen;
  }

  static async open(target: string, opts: SerialOptions = {}): Promise<SerialTransport> {
    try {
      await fs.stat(target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR')
        throw new TransportError('TRANSPORT_NOT_FOUND', `${target}: no such device`, target, e);
      throw new TransportError('TRANSPORT_OPEN_FAILED', `${target}: ${(e as Error).message}`, target, e);
    }
    const port = await new Promise<SerialPort>((resolve, reject) => {
      const p: SerialPort = new SerialPort(
        { path: target, baudRate: opts.baudRate ?? 115200, lock: opts.lock ?? true },
        (err) => {
          if (err) reject(new TransportError('TRANSPORT_OPEN_FAILED', `${target}: ${err.message}`, target, err));
          else resolve(p);
        },
      );
    });
    return new SerialTransport(target, port);
  }

  /** True when the port closed, its path (e.g. the /dev/serial/by-id link) vanished, or its status read says the device is gone. */
  async deviceGone(): Promise<boolean> {
    if (!this.isOpen) return true;
    try {
      await fs.stat(this.target);
    } catch (e) {
      if (GONE_PATH_CODES.has((e as NodeJS.ErrnoException).code ?? '')) return true;
    }
    return new Promise((resolve) => this.port.get((err) => resolve(err ? GONE_PORT_ERROR.test(err.message) : false)));
  }

  async close(): Promise<void> {
    if (this.port.isOpen) {
      await new Promise<void>((resolve) => this.port.close(() => resolve()));
    } else if (!this.port.destroyed) {
      this.port.destroy();
    }
    this.open = false;
  }
}

/** Opens a tty as a byte transport (a TransportOpener when bound to options). */
export function openSerial(target: string, opts: SerialOptions = {}): Promise<SerialTransport> {
  return SerialTransport.open(target, opts);
}
