import { configFileFromArgs, loadConfig } from '../config.ts';
import { commandFailed, parseCommandArgs } from './commandLine.ts';
import { status } from './statusCommand.ts';
import { UsageError } from './usage.ts';

/**
 * `dockctl status` as an entry of its own, the command a station's admin and its scripts run most: bin/dockctl.js
 * runs it for that command, and its bundle (dist/bundle/dockctl-status.cjs) holds only what status needs, half of
 * dockctl's, so there is half as much to read and to deserialise at each start. It reads its command line as
 * daemon/cli/dockctl.ts does (the same options, refused or reported the same way).
 */
export async function main(argv: string[]): Promise<number> {
  try {
    const { file, rest } = configFileFromArgs(argv);
    if (rest[0] !== 'status') throw new UsageError(`this entry runs dockctl status only, not ${rest[0] ?? 'nothing'}`);
    const { values } = parseCommandArgs(rest.slice(1));
    const { config } = loadConfig(file, { parseCache: true });
    return await status(config, Boolean(values.json), Boolean(values.watch));
  } catch (e) {
    return commandFailed(e);
  }
}
