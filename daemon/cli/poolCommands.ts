import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import { systemClock } from '../clock.ts';
import { Catalog } from '../store/catalog.ts';
import { sleep } from '../sleep.ts';
import { whoIsAsking } from './actor.ts';
import { table } from './format.ts';
import { UsageError } from './usage.ts';
import { pidAlive } from './processAlive.ts';

/** How long dockctl waits for dockd to carry out a request (it logs in to the recorder, writes and reads back). */
const ANSWER_WITHIN_MS = 30_000;

/** A mistake in how the command was called (exit 2). */
export class PoolUsageError extends UsageError {}

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** `dockctl assign | return | assignments`; the exit code. */
export async function runPoolCommand(file: string, command: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { json: { type: 'boolean' } },
  });
  const { config } = loadConfig(file);
  const catalogFile = path.join(config.storage.dir, 'catalog.sqlite');
  if (!existsSync(catalogFile)) throw new PoolUsageError(`no catalog at ${catalogFile}: has dockd run with this config?`);
  const catalog = Catalog.open(config.storage.dir, { readonly: command === 'assignments' });
  try {
    if (command === 'assignments') {
      if (positionals.length > 1) throw new PoolUsageError('usage: dockctl assignments [SERIAL] [--json]');
      const rows = catalog.assignments.list(positionals[0]);
      if (values.json) out(JSON.stringify(rows, null, 2));
      else if (!rows.length) out('no assignments');
      else
        out(
          table([
            ['RECORDER', 'OFFICER', 'FROM', 'TO', 'BY'],
            ...rows.map((a) => [a.serial, a.officerId, a.startedAt, a.endedAt ?? 'held', a.assignedBy]),
          ]),
        );
      return 0;
    }
    const [serial, officerId] = positionals;
    if (command === 'assign' && positionals.length !== 2) throw new PoolUsageError('usage: dockctl assign SERIAL OFFICER');
    if (command === 'return' && positionals.length !== 1) throw new PoolUsageError('usage: dockctl return SERIAL');
    if (command === 'assign' && !config.devices.some((d) => d.serial === serial)) {
      process.stderr.write(`dockctl: unknown recorder ${serial}: it is not in devices\n`);
      return 1;
    }
    const snap = catalog.getKv<StateSnapshot>('state');
    if (!snap || !pidAlive(snap.pid)) {
      process.stderr.write(`dockctl: dockd is not running: it holds the recorders' control channels, start it first\n`);
      return 1;
    }
    const id = catalog.poolRequests.add({
      op: command as 'assign' | 'return',
      serial,
      officerId: officerId ?? null,
      by: whoIsAsking(),
      at: systemClock.now(),
      pid: process.pid,
    });
    const until = systemClock.ms() + ANSWER_WITHIN_MS;
    for (;;) {
      const outcome = catalog.poolRequests.outcome(id);
      if (outcome) {
        (outcome.ok ? process.stdout : process.stderr).write(`${outcome.ok ? '' : 'dockctl: '}${outcome.message}\n`);
        return outcome.ok ? 0 : 1;
      }
      if (systemClock.ms() > until) {
        process.stderr.write(`dockctl: dockd did not answer within ${ANSWER_WITHIN_MS / 1000} s; see dockctl assignments\n`);
        return 1;
      }
      await sleep(100);
    }
  } finally {
    catalog.close();
  }
}
