import { configFileFromArgs, loadConfig } from '../config.ts';
import { commandFailed, parseCommandArgs } from './commandLine.ts';
import { POOL_COMMANDS, USAGE, UsageError } from './usage.ts';

// Each command's module is imported when that command runs: `dockctl status` must not load what `verify`, `export`
// or `reprobe` need (the start of the process is most of its time).

function out(s: string): void {
  process.stdout.write(`${s}\n`);
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { file, rest } = configFileFromArgs(argv);
    const [command, ...args] = rest;
    if (!command || command === 'help' || command === '--help') {
      out(USAGE);
      return command ? 0 : 2;
    }
    if (command === 'user') return await (await import('./userCommands.ts')).runUserCommand(file, args);
    if (POOL_COMMANDS.includes(command)) return await (await import('./poolCommands.ts')).runPoolCommand(file, command, args);
    const { values, positionals } = parseCommandArgs(args);
    const { config } = loadConfig(file, { parseCache: true });
    switch (command) {
      case 'status':
        return await (await import('./statusCommand.ts')).status(config, Boolean(values.json), Boolean(values.watch));
      case 'files':
        return (await import('./filesCommand.ts')).files(config, {
          json: Boolean(values.json),
          state: values.state,
          officer: values.officer,
          caseNo: values['case-no'],
          from: values.from,
          to: values.to,
          after: values.after,
          limit: values.limit,
        });
      case 'annotate':
        if (positionals.length !== 1) throw new UsageError('annotate needs exactly one ID');
        return (await import('./recordingCommands.ts')).annotate(config, positionals[0], {
          caseNo: values['case-no'],
          purpose: values.purpose,
          place: values.place,
          collector: values.collector,
          capturedAt: values['captured-at'],
        });
      case 'reprobe':
        if (positionals.length > 1) throw new UsageError('usage: dockctl reprobe ID | --all-damaged');
        return await (await import('./recordingCommands.ts')).reprobeCommand(
          config,
          positionals[0],
          Boolean(values['all-damaged']),
        );
      case 'verify': {
        const [{ withCatalog }, { verify }] = await Promise.all([import('./openCatalog.ts'), import('./verifyCommand.ts')]);
        return await withCatalog(config, false, (c) => verify(config, c, Boolean(values.json), values.head));
      }
      case 'audit': {
        const [{ withCatalog }, { audit }] = await Promise.all([import('./openCatalog.ts'), import('./custodyCommands.ts')]);
        return await withCatalog(config, true, (c) => audit(c, Boolean(values.json), values.since));
      }
      case 'export': {
        if (positionals.length !== 1 || !values.to) throw new UsageError('usage: dockctl export ID --to DIR');
        const [{ withCatalog }, { exportRecording }] = await Promise.all([
          import('./openCatalog.ts'),
          import('./custodyCommands.ts'),
        ]);
        return await withCatalog(config, false, (c) => {
          const { file, error } = c.resolve(positionals[0]);
          if (!file) throw new UsageError(error!);
          return exportRecording(config, c, file, values.to!, Boolean(values.json));
        });
      }
      case 'stats': {
        const [{ withCatalog }, { collectStats, renderStats }] = await Promise.all([
          import('./openCatalog.ts'),
          import('./statsCommand.ts'),
        ]);
        return await withCatalog(config, true, (c) => {
          const r = collectStats(config, c, { ...values, json: Boolean(values.json), csv: Boolean(values.csv) });
          if ('error' in r) throw new UsageError(r.error);
          out(renderStats(r.stats, values));
          return 0;
        });
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (e) {
    return commandFailed(e);
  }
}
