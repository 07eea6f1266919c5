import { CodedError } from '../errors.ts';

/** Error codes of the USB layer: callers branch on `code`, never on the message. */
export type UsbErrorCode =
  | 'TIMEOUT' // a waitFor… gave up: the tty or block device never appeared
  | 'ABORTED' // a waitFor… was aborted through its AbortSignal (e.g. the device left)
  | 'DEVICE_GONE' // the sysfs directory of the device is not (or no longer) there
  | 'BAD_DEVICE' // the sysfs directory exists but its attributes cannot be read or make no sense
  | 'BAD_FINGERPRINT' // a fingerprint entry from config is invalid
  | 'LIBUSB_UNAVAILABLE'; // the native `usb` module could not be loaded or libusb could not start

export class UsbError extends CodedError<UsbErrorCode> {
  constructor(code: UsbErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'UsbError';
  }
}

/** The minimal logger the USB layer writes to (a pino Logger fits). */
export interface UsbLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLog: UsbLog = { debug() {}, info() {}, warn() {} };
