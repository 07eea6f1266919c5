import { ConfigError, configFileFromArgs, loadConfig } from './config.ts';
import { Controller } from './controller.ts';
import { createLogger } from './log.ts';

/** `dockd [--config FILE]`: runs until SIGTERM/SIGINT, then stops cleanly and exits 0. */
export async function main(argv: string[]): Promise<number> {
  let loaded;
  try {
    const { file, rest } = configFileFromArgs(argv);
    if (rest.length) throw new ConfigError(`dockd: unexpected argument ${rest[0]} (usage: dockd [--config FILE])`);
    loaded = loadConfig(file);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const log = createLogger(loaded.config.log.level);
  const controller = new Controller(loaded, log);
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    if (stopping) return;
    log.info({ signal }, 'stopping');
    stopping = controller.stop();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await controller.start();
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'dockd could not start');
    process.stderr.write(`dockd: ${(e as Error).message}\n`);
    await controller.stop();
    return 1;
  }
  await new Promise<void>((resolve) => {
    const check = setInterval(() => { if (stopping) { clearInterval(check); resolve(); } }, 100);
  });
  await stopping;
  log.info('stopped');
  return 0;
}
