import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Paths whose values never reach a log line, whatever they hold (pino's redact: by key, so a value is never searched
 * for in the text of a line). Free text from outside that may echo a secret is scrubbed where it enters (redact.ts).
 */
export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', 'recorderPassword', '*.recorderPassword', '*.*.recorderPassword',
  'hq.mqtt.password', 'config.hq.mqtt.password', 'config.dock.recorderPassword', 'devices[*].password', 'config.devices[*].password',
  'pin', '*.pin', 'secret', '*.secret', 'token', '*.token', 'cookie', '*.cookie',
  'headers', '*.headers', 'hq.tus.headers', 'config.hq.tus.headers', 'authorization', '*.authorization', 'Authorization', '*.Authorization',
];

/** pino JSON to stdout (journald keeps it); components take `log.child({ component })`. Every line is valid JSON. */
export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  return pino({
    level, base: { svc: 'dockd' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime,
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
