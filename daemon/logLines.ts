import fs from 'node:fs';

/**
 * Readable log lines for a person at a terminal: `16:19:35.450Z INFO  [http] station page listening url=… tls=false`.
 * journald and pipes keep pino's JSON (daemon/log.ts chooses); this only reformats a line pino has already made and
 * redacted. Text from outside (file names, HQ error bodies) may hold control characters: they are escaped, so a
 * hostile name can never drive the terminal.
 */

const LEVELS: Record<number, { name: string; colour: string }> = {
  10: { name: 'TRACE', colour: '\x1b[90m' },
  20: { name: 'DEBUG', colour: '\x1b[90m' },
  30: { name: 'INFO', colour: '\x1b[32m' },
  40: { name: 'WARN', colour: '\x1b[33m' },
  50: { name: 'ERROR', colour: '\x1b[31m' },
  60: { name: 'FATAL', colour: '\x1b[1;31m' },
};
const RESET = '\x1b[0m';
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'msg', 'svc', 'component', 'err']);
// C0 and C1 controls, DEL, line/paragraph separators and the bidi overrides that can reorder what a terminal shows.
const UNSAFE_CHARS = '\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const UNSAFE = new RegExp(`[${UNSAFE_CHARS}]`, 'g');
const PLAIN_WORD = new RegExp(`^[^\\s"'=\\\\${UNSAFE_CHARS}]+$`);

function escapeUnsafe(s: string): string {
  return s.replace(UNSAFE, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A value as it appears after `key=`: bare when it is a plain word, else JSON (quoted, escaped). */
function renderValue(v: unknown): string {
  if (typeof v === 'string') return PLAIN_WORD.test(v) ? v : escapeUnsafe(JSON.stringify(v));
  return escapeUnsafe(JSON.stringify(v) ?? String(v));
}

/** One pino JSON line as a readable line (and, for an error, its stack indented below). Not JSON: returned as it came. */
export function formatLogLine(json: string, colour = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = LEVELS[Number(o.level)] ?? { name: String(o.level), colour: '' };
  const time = typeof o.time === 'string' && o.time.length >= 23 ? `${o.time.slice(11, 23)}Z` : String(o.time ?? '');
  const tag = colour ? `${level.colour}${level.name.padEnd(5)}${RESET}` : level.name.padEnd(5);
  const component = typeof o.component === 'string' ? ` [${escapeUnsafe(o.component)}]` : '';
  const fields = Object.entries(o)
    .filter(([k]) => !SHOWN_ELSEWHERE.has(k))
    .map(([k, v]) => `${escapeUnsafe(k)}=${renderValue(v)}`);
  let line = `${time} ${tag}${component} ${escapeUnsafe(String(o.msg ?? ''))}${fields.length ? `  ${fields.join(' ')}` : ''}\n`;
  const err = o.err as { message?: unknown; stack?: unknown } | string | undefined;
  if (typeof err === 'string') line = line.replace(/\n$/, `  err=${renderValue(err)}\n`);
  else if (err && typeof err === 'object') {
    const stack = typeof err.stack === 'string' ? err.stack : String(err.message ?? JSON.stringify(err));
    line += stack
      .split('\n')
      .map((l) => `    ${escapeUnsafe(l)}\n`)
      .join('');
  }
  return line;
}

/** A pino destination writing readable lines to a file descriptor, synchronously (nothing is lost at exit). */
export function readableDestination(fd: number, colour: boolean): { write(line: string): void } {
  return {
    write: (line: string) => {
      fs.writeSync(fd, formatLogLine(line.trimEnd(), colour));
    },
  };
}
