import path from 'node:path';
import type { Config, LoadedConfig } from './config.ts';
import { DockService } from './dock/dockService.ts';
import { EventBus } from './events.ts';
import { EmbeddedHq } from './hq/embeddedHq.ts';
import { systemTimeZone } from './media/zonedTime.ts';
import { safeUrl, type Logger } from './log.ts';
import { createFfmpegTools, type MediaTools } from './media/ffprobe.ts';
import { StatusBoard } from './status/board.ts';
import { MqttStatus } from './status/mqttStatus.ts';
import { Catalog } from './store/catalog.ts';
import { ObjectStore } from './store/objects.ts';
import { Uploader } from './upload/uploader.ts';
import { applyReceipt } from './custody/receipts.ts';
import { openStationKey } from './custody/keys.ts';
import { ReceiptWatch } from './custody/receiptWatch.ts';
import { StorageKeeper } from './custody/storageKeeper.ts';
import { HttpServer } from './http/server.ts';
import { RecorderLinks } from './dock/recorderLinks.ts';
import { UsbDocking } from './dock/usbDocking.ts';
import { ChannelVolume, DirectoryVolume } from '../drivers/volumes/recorderVolume.ts';

/** IO the daemon reaches through injection, so tests can hand in real substitutes. */
export interface Host {
  now: () => Date;
  media: MediaTools;
}

export function defaultHost(): Host {
  return { now: () => new Date(), media: createFfmpegTools() };
}

/**
 * Starts and stops dockd's services in an explicit order. Start: catalog → objects → embedded HQ → status → upload
 * → station page (http) → dock. Stop: http (no more changes) → dock (stop intake) → upload (checkpoint) → status
 * (publish offline) → embedded HQ → catalog.
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
  usb: UsbDocking | null = null;
  receipts!: ReceiptWatch;
  http: HttpServer | null = null;
  private readonly config: Config;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly log: Logger,
    private readonly host: Host = defaultHost(),
  ) {
    this.config = loaded.config;
  }

  async start(): Promise<void> {
    const { config, log, host } = this;
    this.catalog = Catalog.open(config.storage.dir, { now: host.now });
    this.bus = new EventBus(log);
    this.catalog.onEnqueue = () => setImmediate(() => this.bus.emit('outbox.added'));
    this.objects = new ObjectStore(config.storage.dir);
    await this.objects.init();
    const stationKey = openStationKey(config.storage.dir); // made at the first start; signs the audit heads
    const interrupted = this.catalog.recoverInterruptedCopies();
    const swept = await this.objects.sweepTemp();
    if (interrupted || swept)
      log.warn(
        { rows: interrupted, tempFiles: swept },
        'discarded copies interrupted by the last stop (the recorder still has those files)',
      );

    this.board = new StatusBoard(this.bus, host.now, (alarm, raised) => {
      this.catalog.enqueue('event', {
        type: 'alarm',
        at: host.now().toISOString(),
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
    });

    if (config.hq.embedded) {
      this.hq = new EmbeddedHq({
        tusEndpoint: config.hq.tus.endpoint,
        mqttUrl: config.hq.mqtt.url,
        dir: path.join(path.dirname(config.storage.dir), 'hq'),
        topicPrefix: config.hq.mqtt.topicPrefix,
        log,
      });
      await this.hq.start();
      config.hq.receiptKey ??= this.hq.receiptPublicKeyPem; // the default setup trusts its own embedded HQ
    }
    this.catalog.audit('config.loaded', null, {
      file: this.loaded.file,
      sha256: this.loaded.sha256,
      stationId: config.station.id,
    });
    this.storage = new StorageKeeper({
      config,
      catalog: this.catalog,
      objects: this.objects,
      board: this.board,
      log,
      now: host.now,
    });
    await this.storage.start();
    this.uploader = new Uploader({ config, catalog: this.catalog, objects: this.objects, bus: this.bus, board: this.board, log });
    this.receipts = new ReceiptWatch({ config, catalog: this.catalog, board: this.board, bus: this.bus, log, now: host.now });
    const receiptDeps = {
      config,
      catalog: this.catalog,
      objects: this.objects,
      board: this.board,
      bus: this.bus,
      log: log.child({ component: 'receipts' }),
      now: host.now,
    };
    this.mqtt = new MqttStatus({
      config,
      catalog: this.catalog,
      bus: this.bus,
      board: this.board,
      log,
      now: host.now,
      uploads: () => this.uploader.snapshot().inFlight,
      receipts: () => this.receipts.overdue(),
      onReceipt: (payload) => applyReceipt(receiptDeps, payload),
      stationKey,
    });
    await this.mqtt.start();
    await this.uploader.start();
    await this.receipts.start();
    this.http = new HttpServer({
      config,
      media: host.media,
      catalog: this.catalog,
      objects: this.objects,
      board: this.board,
      bus: this.bus,
      log,
      snapshot: () => this.mqtt.snapshot(),
      bytesSent: () => this.uploader.snapshot().bytesSent,
    });
    await this.http.start();
    const timeZone = config.station.timeZone ?? systemTimeZone();
    this.links = new RecorderLinks({ config, catalog: this.catalog, board: this.board, log, now: host.now, timeZone });
    const usbPorts = new Map<string, string>(); // mount point → USB port path, for volumes dockd mounted itself
    this.dock = new DockService({
      config,
      catalog: this.catalog,
      objects: this.objects,
      media: host.media,
      board: this.board,
      bus: this.bus,
      log,
      now: host.now,
      timeZone,
      stationId: config.station.id,
      onReady: () => this.bus.emit('upload.wanted'),
      space: this.storage,
      identityFor: (volume) => this.links.claim(path.basename(volume), usbPorts.get(volume) ?? null),
      placeFor: (volume) => {
        const port = usbPorts.get(volume);
        return port ? { bay: this.links.bayOf(port), portPath: port } : undefined;
      },
      onUndocked: (volume) => {
        this.links.release(path.basename(volume));
        usbPorts.delete(volume);
      },
      // Wipe gate: through the recorder's control channel when it kept one, else a read-write remount of storage dockd
      // mounted itself, else the directory.
      volumeFor: (volume) => {
        const channel = this.links.deleteChannelFor(path.basename(volume));
        return channel ? new ChannelVolume(volume, channel) : (this.usb?.wipeVolumeFor(volume) ?? new DirectoryVolume(volume));
      },
    });
    await this.dock.start();
    await this.links.start();
    if (config.usb.enabled) {
      this.usb = new UsbDocking({
        config,
        links: this.links,
        board: this.board,
        log,
        dockVolume: (mp, port) => {
          usbPorts.set(mp, port);
          this.dock.dockVolume(mp);
        },
        undockVolume: (mp) => this.dock.undockVolume(mp),
      });
      await this.usb.start();
    }
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
  }

  async stop(): Promise<void> {
    const steps: [string, () => Promise<void> | void][] = [
      ['http', () => this.http?.stop()],
      ['usb', () => this.usb?.stop()],
      ['recorder links', () => this.links?.stop()],
      ['dock', () => this.dock?.stop()],
      ['upload', () => this.uploader?.stop()],
      ['receipts', () => this.receipts?.stop()],
      ['storage', () => this.storage?.stop()],
      ['status', () => this.mqtt?.stop()],
      ['embedded HQ', () => this.hq?.stop()],
      ['catalog', () => this.catalog?.close()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (e) {
        this.log.error({ step: name, err: (e as Error).message }, 'stop step failed');
      }
    }
  }
}
