import type { Config } from '../config.ts';
import { openCatalog } from './openCatalog.ts';
import { collectStatus, renderStatus, watchStatus } from './statusView.ts';
import { UsageError } from './usage.ts';

/** `dockctl status [--json | --watch]`: the daemon's last snapshot joined with the catalog's counts. */
export async function status(config: Config, json: boolean, watch: boolean): Promise<number> {
  if (watch && json) throw new UsageError('status: --watch and --json do not go together');
  const catalog = openCatalog(config, true);
  try {
    if (watch) return await watchStatus(config, catalog);
    const view = collectStatus(config, catalog);
    process.stdout.write(`${json ? JSON.stringify(view, null, 2) : renderStatus(view)}\n`);
    return 0;
  } finally {
    catalog.close();
  }
}
