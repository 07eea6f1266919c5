import { writeSync } from 'node:fs';
import type { Config } from '../config.ts';
import { openCatalog } from './openCatalog.ts';
import { collectStatus, HELD_LISTED, renderStatus, watchStatus } from './statusView.ts';
import { UsageError } from './usage.ts';

/** `dockctl status [--json | --watch]`: the daemon's last snapshot joined with the catalog's counts. */
export async function status(config: Config, json: boolean, watch: boolean): Promise<number> {
  if (watch && json) throw new UsageError('status: --watch and --json do not go together');
  const catalog = openCatalog(config, true);
  try {
    if (watch) return await watchStatus(config, catalog);
    const view = collectStatus(config, catalog, json ? undefined : HELD_LISTED);
    printOnce(`${json ? JSON.stringify(view, null, 2) : renderStatus(view)}\n`);
    return 0;
  } finally {
    catalog.close();
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes to standard output directly: process.stdout would load Node's stream classes first, ≈ 4 ms of a command
 * that prints once and exits. A reader that went away (`dockctl status | head -1`) ends the output quietly.
 */
function printOnce(text: string): void {
  const bytes = Buffer.from(text);
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(1, bytes, done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return;
      if (code !== 'EAGAIN') throw e;
      Atomics.wait(PAUSE, 0, 0, 2); // standard output is a full non-blocking pipe: give its reader a moment
    }
  }
}
