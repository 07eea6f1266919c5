import pino, { type Logger } from 'pino';
import { readableDestination } from './logLines.ts';

export type { Logger };

/**
 * Paths whose values never reach a log line, whatever they hold (pino's redact: by key, so a value is never searched
 * for in the text of a line). Free text from outside that may echo a secret is scrubbed where it enters (redact.ts).
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'recorderPassword',
  '*.recorderPassword',
  '*.*.recorderPassword',
  'hq.mqtt.password',
  'config.hq.mqtt.password',
  'config.dock.recorderPassword',
  'devices[*].password',
  'config.devices[*].password',
  'pin',
  '*.pin',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'cookie',
  '*.cookie',
  'headers',
  '*.headers',
  'hq.tus.headers',
  'config.hq.tus.headers',
  'authorization',
  '*.authorization',
  'Authorization',
  '*.Authorization',
];

/** `json`: pino's JSON lines; `readable`: one line a person reads; `auto`: readable on a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'readable';

/**
 * pino to stdout; components take `log.child({ component })`. JSON (journald keeps it; every line is valid JSON) unless
 * stdout is a terminal, where lines are readable (daemon/logLines.ts), in colour unless NO_COLOR is set.
 */
export function createLogger(level = 'info', destination?: pino.DestinationStream, format: LogFormat = 'auto'): Logger {
  const readable = !destination && (format === 'readable' || (format === 'auto' && process.stdout.isTTY === true));
  const out =
    destination ??
    (readable
      ? readableDestination(1, process.stdout.isTTY === true && !process.env.NO_COLOR)
      : // Asynchronous: a log line never holds the copy loop. pino writes what is still queued when the process exits.
        pino.destination({ fd: 1, sync: false }));
  return pino(
    {
      level,
      base: { svc: 'dockd' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    out,
  );
}

/** A URL with any user:password removed, for logs and status lines. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}
