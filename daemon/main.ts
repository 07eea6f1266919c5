import { ConfigError, configFileFromArgs, loadConfig } from './config.ts';
import { checkConfigPaths } from './configPaths.ts';
import { limitHeapGrowth } from './heapGrowth.ts';
import { createLogger, safeUrl } from './log.ts';
import { SdNotify, startWatchdog } from '../drivers/systemd/sdNotify.ts';

/** How long a failed start-up may take to stop what it had started before dockd exits anyway. */
const FAILED_START_STOP_MS = 5_000;

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * `dockd [--config FILE]`: runs until SIGTERM/SIGINT, then stops cleanly and returns 0. A config or a path in it that
 * is wrong returns 2 before anything starts; a start-up that fails later stops what had started and returns 1. The
 * caller exits with the code (bin/dockd.js), so nothing left open can keep half a daemon alive.
 */
export async function main(argv: string[]): Promise<number> {
  limitHeapGrowth();
  let loaded;
  try {
    const { file, rest } = configFileFromArgs(argv);
    if (rest.length) throw new ConfigError(`dockd: unexpected argument ${rest[0]} (usage: dockd [--config FILE])`);
    loaded = loadConfig(file);
    await checkConfigPaths(loaded.config);
  } catch (e) {
    process.stderr.write(`${oneLine((e as Error).message)}\n`);
    return 2;
  }
  const log = createLogger(loaded.config.log.level, undefined, loaded.config.log.format);
  // Loaded only now: the services' modules (fastify, MQTT, tus …) take seconds to load, and a wrong config or path
  // must stop dockd at once.
  const { Controller } = await import('./controller.ts');
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
    stopping = starting
      .catch(() => {})
      .then(() => systemd.stopping().catch(() => false))
      .then(() => controller.stop());
  };
  // SIGHUP: read the config file again and apply what may change while running (hq.tus.maxBytesPerSecond, hq.tus.windows).
  process.on('SIGHUP', () => {
    starting
      .then(() => {
        if (stopping) return;
        controller.reload(loadConfig(loaded.file));
      })
      .catch((e) =>
        log.error({ err: oneLine((e as Error).message) }, 'config not reloaded: dockd goes on with the config it has'),
      );
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    starting = controller.start();
    await starting;
    if (stopping) {
      await stopping;
      log.info('stopped');
      return 0;
    }
    await systemd.ready('dockd running').catch((e) => log.warn({ err: e }, 'sd_notify READY failed'));
    watchdog = startWatchdog(systemd, { onError: (e) => log.warn({ err: e }, 'sd_notify WATCHDOG failed') });
    const c = loaded.config;
    process.stderr.write(
      `dockd: station ${c.station.id} running — store ${c.storage.dir}; recorders docked under ${c.dock.mountRoots.join(', ')}; ` +
        `HQ tus ${safeUrl(c.hq.tus.endpoint)}, MQTT ${safeUrl(c.hq.mqtt.url)}${c.hq.embedded ? ' (embedded, loopback)' : ''}. ` +
        `Watch: ${controller.http?.address ? `http://${controller.http.address}/ or ` : ''}dockctl status\n`,
    );
  } catch (e) {
    log.fatal({ err: e }, 'dockd could not start');
    process.stderr.write(`dockd: could not start: ${oneLine((e as Error).message)}\n`);
    // A signal may already be stopping it; otherwise stop what had started, within a bound.
    const stopped = stopping ?? controller.stop();
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      stopped.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), FAILED_START_STOP_MS);
      }),
    ]);
    clearTimeout(timer);
    if (gaveUp) log.error({ afterMs: FAILED_START_STOP_MS }, 'stopping after the failed start-up did not finish; exiting anyway');
    return 1;
  }
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (stopping) {
        clearInterval(check);
        resolve();
      }
    }, 100);
  });
  await stopping;
  log.info('stopped');
  return 0;
}
