import pino, { type Logger } from 'pino';
import { redactSecrets } from './redact.ts';

export type { Logger };

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', 'hq.mqtt.password', 'config.hq.mqtt.password',
  'headers', '*.headers', 'hq.tus.headers', 'config.hq.tus.headers', 'authorization', '*.authorization',
];

/** pino JSON to stdout (journald keeps it); components take `log.child({ component })`. */
export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  return pino({
    level, base: { svc: 'dockd' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime,
    // Key paths cannot catch a secret echoed inside a message (e.g. an HQ error body): scrub every line by value too.
    hooks: { streamWrite: redactSecrets },
  }, destination ?? pino.destination({ fd: 1, sync: true }));
}

/** A URL with any user:password removed, for logs and status lines. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch { return url; }
}
