import { ConfigError, configFileFromArgs, loadConfig } from './config.ts';
import { Controller } from './controller.ts';
import { createLogger, safeUrl } from './log.ts';
import { SdNotify, startWatchdog } from '../drivers/systemd/sdNotify.ts';

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
  const systemd = new SdNotify();
  let watchdog: { stop(): void } | null = null;
  let stopping: Promise<void> | null = null;
  let starting: Promise<void> = Promise.resolve();
  const stop = (signal: string) => {
    if (stopping) return;
    log.info({ signal }, 'stopping');
    watchdog?.stop();
    // A signal during start-up stops once start-up has finished (or failed), never under its feet.
    stopping = starting.catch(() => {}).then(() => systemd.stopping().catch(() => false)).then(() => controller.stop());
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    starting = controller.start();
    await starting;
    if (stopping) { await stopping; log.info('stopped'); return 0; }
    await systemd.ready('dockd running').catch((e) => log.warn({ err: (e as Error).message }, 'sd_notify READY failed'));
    watchdog = startWatchdog(systemd, { onError: (e) => log.warn({ err: e.message }, 'sd_notify WATCHDOG failed') });
    const c = loaded.config;
    process.stderr.write(`dockd: station ${c.station.id} running — store ${c.storage.dir}; recorders docked under ${c.dock.mountRoots.join(', ')}; `
      + `HQ tus ${safeUrl(c.hq.tus.endpoint)}, MQTT ${safeUrl(c.hq.mqtt.url)}${c.hq.embedded ? ' (embedded, loopback)' : ''}. `
      + `Watch: ${controller.http?.address ? `http://${controller.http.address}/ or ` : ''}dockctl status\n`);
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
