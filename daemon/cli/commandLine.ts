import { parseArgs } from 'node:util';
import { ConfigError } from '../config.ts';
import { USAGE, UsageError } from './usage.ts';

/** Every option of dockctl's commands: each command reads the ones it knows, and parseArgs refuses any other. */
const OPTIONS = {
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
  state: { type: 'string' },
  'case-no': { type: 'string' },
  purpose: { type: 'string' },
  place: { type: 'string' },
  collector: { type: 'string' },
  'captured-at': { type: 'string' },
  since: { type: 'string' },
  to: { type: 'string' },
  from: { type: 'string' },
  officer: { type: 'string' },
  after: { type: 'string' },
  limit: { type: 'string' },
  head: { type: 'string' },
  'all-damaged': { type: 'boolean' },
  by: { type: 'string' },
  csv: { type: 'boolean' },
} as const;

const parse = (args: string[]) => parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
type Parsed = ReturnType<typeof parse>;
const FLAGS = new Set(
  Object.entries(OPTIONS)
    .filter(([, o]) => o.type === 'boolean')
    .map(([name]) => `--${name}`),
);

/**
 * A command's arguments (after its name): its options and the positionals. Nothing but boolean flags (`status`,
 * `status --json`, `files --json`) is read here, as parseArgs reads it: Node loads parseArgs's own module at its first
 * use, ≈ 1.5 ms of a command that takes 15–20 ms beyond Node's start. Anything else goes to parseArgs.
 */
export function parseCommandArgs(args: string[]): Parsed {
  if (!args.every((a) => FLAGS.has(a))) return parse(args);
  return { values: Object.fromEntries(args.map((a) => [a.slice(2), true])), positionals: [] } as Parsed;
}

/**
 * What a command that threw prints on standard error, and its exit code: 2 with the message for a mistake in the
 * command line or the config (a bad option adds the usage), 1 with the message for anything else.
 */
export function commandFailed(e: unknown): number {
  // UsageError covers the commands' own (PoolUsageError, HeadFileError): the message alone; a bad option adds the usage.
  if (e instanceof UsageError || e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(
      `dockctl: ${(e as Error).message}\n${e instanceof UsageError || e instanceof ConfigError ? '' : `${USAGE}\n`}`,
    );
    return 2;
  }
  process.stderr.write(`dockctl: ${(e as Error).message}\n`);
  return 1;
}
