/** The BC recorder command protocol: framing and messages (pure), the station's client, and the dock handshake. */
export { BcError, isBcError, type BcErrorCode, type BcStep } from './errors.ts';
export { LineSplitter, decodeLine, DEFAULT_MAX_LINE_BYTES, type LineEvent, type LineEncoding } from './lines.ts';
export {
  BC_LOGIN_USER,
  LINE_END,
  LOGIN_OK_WORDS,
  MAX_DELETE_PATH_BYTES,
  SERIAL_PATTERN,
  commandLine,
  commandTag,
  deletePathProblem,
  describeCommand,
  encodeCommand,
  encodeReply,
  isCommandEcho,
  officerIdentityProblem,
  parseCommand,
  parseReply,
  parseReplyBytes,
  replyLine,
  replyTag,
  type BcCommand,
  type BcReply,
  type BcTag,
  type OfficerIdentity,
} from './messages.ts';
export { BC_TIME_PATTERN, assertTimeZone, formatBcTime, parseBcTime, parseBcWallClock } from './time.ts';
export { BcClient, type BcClientOptions, type CallOptions } from './client.ts';
export { handshake, reconnect, type HandshakeOptions, type HandshakeResult, type ReconnectOptions } from './handshake.ts';
