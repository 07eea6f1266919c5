import path from 'node:path';
import { type Config, type LoadedConfig, loadConfig } from './config.ts';
import { applyReloadable, type ConfigChanges, configChanges } from './configReload.ts';
import { openStationKey } from './custody/keys.ts';
import { ReceiptWatch } from './custody/receiptWatch.ts';
import { StorageKeeper } from './custody/storageKeeper.ts';
import { DockService } from './dock/dockService.ts';
import { Intake } from './dock/intake.ts';
import { RecorderLinks } from './dock/recorderLinks.ts';
import { UsbDocking } from './dock/usbDocking.ts';
import { EventBus } from './events.ts';
import { defaultHost, type Host } from './host.ts';
import { EmbeddedHq } from './hq/embeddedHq.ts';
import { HttpServer } from './http/server.ts';
import { systemTimeZone } from './media/zonedTime.ts';
import { PoolRecorders } from './pool/poolRecorders.ts';
import { PoolService } from './pool/poolService.ts';
import { DailyStatistics } from './stats/dailySummary.ts';
import { safeUrl, type Logger } from './log.ts';
import type { Service, StationContext } from './service.ts';
import { StatusBoard } from './status/board.ts';
import { DeadlineWatch } from './status/deadlines.ts';
import { MqttStatus } from './status/mqttStatus.ts';
import { Catalog } from './store/catalog.ts';
import { ObjectStore } from './store/objects.ts';
import { Uploader } from './upload/uploader.ts';

/**
 * Starts and stops dockd. What the station cannot run without opens first and stops the daemon when it fails: the
 * catalog and object store, then the embedded HQ (whose key the station trusts for receipts). The services then start
 * in this order, each through `startService`, which contains a failure (an alarm, `SERVICE_FAILED`, and the daemon
 * goes on without that service): storage → receipts → status (MQTT) → upload → deadlines → daily statistics → dock →
 * recorder links → pool recorders (dockctl assign/return) → intake → usb → station page (http). They stop in reverse:
 * the page (no more changes), intake, the dock (interrupting copies), daily statistics, deadlines, uploads
 * (checkpointed), status (publishes offline), receipts (applies what status handed it), storage; then the embedded HQ
 * and the catalog.
 */
export class Controller {
  catalog!: Catalog;
  objects!: ObjectStore;
  board!: StatusBoard;
  bus!: EventBus;
  hq: EmbeddedHq | null = null;
  mqtt!: MqttStatus;
  uploader!: Uploader;
  dock!: DockService;
  storage!: StorageKeeper;
  links!: RecorderLinks;
  pool!: PoolRecorders;
  intake!: Intake;
  usb: UsbDocking | null = null;
  receipts!: ReceiptWatch;
  deadlines!: DeadlineWatch;
  daily!: DailyStatistics;
  http: HttpServer | null = null;
  /** The services begun, in start order (a failed one too: its stop releases what it had taken). */
  private readonly started: Service[] = [];
  private readonly config: Config;
  /** The config as its file read at start (or at the last SIGHUP, for the keys applied then), before start filled it in. */
  private readonly asRead: Config;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly log: Logger,
    private readonly host: Host = defaultHost(),
  ) {
    this.config = loaded.config;
    this.asRead = structuredClone(loaded.config);
  }

  /**
   * SIGHUP: applies the reloadable keys of the config file as it reads now (hq.tus.maxBytesPerSecond, hq.tus.windows)
   * to the running station, and names the changed keys that need a restart. Audited and logged.
   */
  reload(next: LoadedConfig): ConfigChanges {
    const changes = configChanges(this.asRead, next.config);
    applyReloadable(this.config, next.config);
    applyReloadable(this.asRead, next.config);
    this.uploader?.applySettings();
    this.catalog.audit('config.reloaded', null, {
      file: next.file,
      sha256: next.sha256,
      applied: changes.applied.map((c) => c.key),
      needRestart: changes.needRestart,
    });
    for (const c of changes.applied) this.log.info({ key: c.key, from: c.from, to: c.to }, `config reloaded: ${c.key} applied`);
    if (changes.needRestart.length)
      this.log.warn(
        { keys: changes.needRestart },
        `config reloaded: ${changes.needRestart.join(', ')} changed and need a restart`,
      );
    if (!changes.applied.length && !changes.needRestart.length) this.log.info({ file: next.file }, 'config reloaded: no change');
    return changes;
  }

  async start(): Promise<void> {
    const { config, log, host } = this;
    const { clock } = host;
    this.catalog = Catalog.open(config.storage.dir, { now: () => clock.now() });
    this.bus = new EventBus(log);
    this.catalog.onEnqueue = () => setImmediate(() => this.bus.emit('outbox.added'));
    this.objects = new ObjectStore(config.storage.dir);
    await this.objects.init();
    const stationKey = openStationKey(config.storage.dir); // made at the first start; signs the audit heads
    const interrupted = this.catalog.recoverInterruptedCopies();
    const swept = await this.objects.sweepTemp();
    if (interrupted || swept) {
      await this.objects.syncFilesystem(); // a batch cut short may have named objects not yet durable (groupCommit.ts)
      log.warn(
        { rows: interrupted, tempFiles: swept },
        'discarded copies interrupted by the last stop (the recorder still has those files)',
      );
    }

    this.board = new StatusBoard(
      this.bus,
      () => clock.now(),
      (alarm, raised) => {
        this.catalog.enqueue('event', {
          type: 'alarm',
          at: clock.now().toISOString(),
          code: alarm.code,
          key: alarm.key,
          message: alarm.message,
          active: raised,
          since: alarm.since,
        });
        log[raised ? 'warn' : 'info'](
          { code: alarm.code, key: alarm.key, message: alarm.message },
          raised ? 'alarm raised' : 'alarm cleared',
        );
      },
    );

    if (config.hq.embedded) {
      this.hq = new EmbeddedHq({
        tusEndpoint: config.hq.tus.endpoint,
        mqttUrl: config.hq.mqtt.url,
        dir: path.join(path.dirname(config.storage.dir), 'hq'),
        topicPrefix: config.hq.mqtt.topicPrefix,
        log,
        clock,
      });
      await this.hq.start();
      config.hq.receiptKey ??= this.hq.receiptPublicKeyPem; // the default setup trusts its own embedded HQ
    }
    this.catalog.audit('config.loaded', null, {
      file: this.loaded.file,
      sha256: this.loaded.sha256,
      stationId: config.station.id,
    });

    const ctx: StationContext = {
      config,
      log,
      host,
      clock,
      catalog: this.catalog,
      objects: this.objects,
      board: this.board,
      bus: this.bus,
      timeZone: config.station.timeZone ?? systemTimeZone(),
    };
    // Constructors do nothing: the services are made first, so each can be handed the ones it asks things of.
    this.storage = new StorageKeeper(ctx);
    this.receipts = new ReceiptWatch(ctx);
    this.uploader = new Uploader(ctx);
    this.mqtt = new MqttStatus(ctx, {
      uploads: () => this.uploader.snapshot().inFlight,
      receipts: () => this.receipts.overdue(),
      uploadWaitingFor: () => this.uploader.snapshot().waitingFor,
      stationKey,
    });
    this.deadlines = new DeadlineWatch(ctx);
    this.daily = new DailyStatistics(ctx);
    this.links = new RecorderLinks(ctx);
    this.pool = new PoolRecorders(ctx, this.links);
    this.usb = config.usb.enabled ? new UsbDocking(ctx, { links: this.links }) : null;
    this.intake = new Intake(ctx, { links: this.links, usb: this.usb });
    this.dock = new DockService(ctx, { intake: this.intake, space: this.storage });
    this.http = new HttpServer(ctx, {
      snapshot: () => this.mqtt.snapshot(),
      bytesSent: () => this.uploader.snapshot().bytesSent,
      pool: this.pool,
      configFile: { file: this.loaded.file, reload: () => this.reload(loadConfig(this.loaded.file)) },
    });
    const services: (Service | null)[] = [
      this.storage,
      this.receipts,
      this.mqtt,
      this.uploader,
      this.deadlines,
      this.daily,
      this.dock,
      this.links,
      new PoolService(ctx, this.pool),
      this.intake,
      this.usb,
      this.http,
    ];
    for (const service of services) if (service) await this.startService(service);

    log.info(
      {
        config: this.loaded.file,
        configSha256: this.loaded.sha256,
        store: config.storage.dir,
        mountRoots: config.dock.mountRoots,
        tus: safeUrl(config.hq.tus.endpoint),
        mqtt: safeUrl(config.hq.mqtt.url),
        embeddedHq: config.hq.embedded,
      },
      'dockd started',
    );
    // Threads that keep dying rest, their work on the event loop meanwhile (see ThreadRest): said as SERVICE_FAILED.
    for (const [threads, workers] of [
      ['copy threads', host.threads.copy],
      ['digest threads', host.threads.digest],
    ] as const) {
      workers.onDeath((err) => log.warn({ err }, `one of the ${threads} died; its work is done again on the main thread`));
      workers.onTrouble((trouble) => {
        const key = `service:${threads}`;
        if (trouble === null) {
          log.info(`${threads} work again`);
          this.board.clear(key);
        } else {
          log.error({ trouble }, `${threads} keep failing; their work runs on the main thread`);
          this.board.raise('SERVICE_FAILED', key, trouble);
        }
      });
    }
    // The copy threads start now, beside an idle daemon, rather than in the first docked recorder's copy.
    host.threads.copy.warm();
  }

  /**
   * Starts one service; a failure is contained: logged with its error, raised as `SERVICE_FAILED` (key
   * `service:<name>`), and the daemon goes on without it. Model: zigbee2mqtt's `startExtension`.
   */
  private async startService(service: Service): Promise<void> {
    this.started.push(service);
    try {
      await service.start();
    } catch (err) {
      this.log.error({ err, service: service.name }, 'service failed to start; dockd goes on without it');
      this.board.raise(
        'SERVICE_FAILED',
        `service:${service.name}`,
        `${service.name} could not start (${(err as Error).message}); dockd runs without it: see the log, fix, restart dockd`,
      );
    }
  }

  async stop(): Promise<void> {
    const steps: [string, () => Promise<void> | void][] = [
      ...this.started
        .splice(0)
        .reverse()
        .map((s): [string, () => Promise<void>] => [s.name, () => s.stop()]),
      ['embedded HQ', () => this.hq?.stop()],
      ['catalog', () => this.catalog?.close()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.log.error({ step: name, err }, 'stop step failed');
      }
    }
  }
}
