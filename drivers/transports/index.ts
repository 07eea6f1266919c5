/** Byte transports for recorder protocols: the interface, and serial (ttys and ptys). USB bulk comes later. */
export { TransportError, type ByteTransport, type TransportErrorCode, type TransportOpener } from './transport.ts';
export { SerialTransport, openSerial, type SerialOptions } from './serial.ts';
