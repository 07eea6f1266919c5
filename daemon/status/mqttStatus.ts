import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { KeyPair } from '../custody/keys.ts';
import { signAuditHead } from '../custody/signatures.ts';
import { safeUrl, type Logger } from '../log.ts';
import type { Service, StationContext } from '../service.ts';
import { LogThrottle } from './logThrottle.ts';
import { brokerInUse, failoverServers } from './brokerList.ts';
import { type HqTopics, type StationTopic, wirePayload } from './mqttTopics.ts';
import { diskInfo, type DiskInfo } from '../store/diskInfo.ts';
import { buildSnapshot, type StateSnapshot } from './snapshot.ts';

const STATE_MIN_INTERVAL_MS = 250;
const STATE_REFRESH_MS = 10_000;

/**
 * Status over MQTT: retained online/offline (offline is also the last will), a retained state snapshot at most four
 * times a second, and events from the catalog outbox delivered in order with QoS 1, surviving broker outages and
 * restarts. The snapshot is also kept in the catalog for `dockctl status`. HQ's receipts go on the bus
 * (`receipt.received`) for the receipt watch.
 */
export class MqttStatus implements Service {
  readonly name = 'status';
  private client: MqttClient | null = null;
  private draining = false;
  private stateTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private auditTimer: NodeJS.Timeout | null = null;
  private lastStateAt = 0;
  /** The last snapshot saved, without its time (see persistSnapshot). */
  private lastPersisted: string | null = null;
  private disk: DiskInfo | null = null;
  private offs: (() => void)[] = [];
  private stopping = false;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly throttle = new LogThrottle();

  private readonly deps: StationContext & {
    /** Uploads in flight, for the snapshot. */
    uploads: () => { id: number; offset: number; size: number }[];
    /** Uploads whose receipt is overdue, for the snapshot. */
    receipts: () => { count: number; oldestSince: string | null };
    /** Why ordinary uploads wait (outside every upload window), or null. */
    uploadWaitingFor?: () => string | null;
    /** The station's key pair: every published audit head is signed with it. */
    stationKey: KeyPair;
  };

  constructor(
    ctx: StationContext,
    extra: {
      uploads: () => { id: number; offset: number; size: number }[];
      receipts: () => { count: number; oldestSince: string | null };
      uploadWaitingFor?: () => string | null;
      stationKey: KeyPair;
    },
  ) {
    this.deps = { ...ctx, ...extra };
    this.log = ctx.log.child({ component: 'mqtt' });
    this.prefix = `${ctx.config.hq.mqtt.topicPrefix}/${ctx.config.station.id}`;
  }

  get connected(): boolean {
    return Boolean(this.client?.connected);
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    this.disk = await diskInfo(config.storage.dir, this.deps.host.statfs);
    const tls = config.hq.mqtt.tls;
    const options: IClientOptions = {
      // A stable id and a persistent session: the broker keeps QoS 1 receipts for us while we are away.
      clientId: `dockd-${config.station.id}`,
      clean: false,
      protocolVersion: config.hq.mqtt.protocolVersion,
      // MQTT 5 ends a session when the connection closes unless asked to keep it; keep it for ever, as 3.1.1 does.
      ...(config.hq.mqtt.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0xffffffff } } : {}),
      username: config.hq.mqtt.username,
      password: config.hq.mqtt.password,
      reconnectPeriod: 1000,
      servers: failoverServers(config.hq.mqtt.urls),
      connectTimeout: 10_000,
      will: { topic: this.topic('status'), payload: Buffer.from(wirePayload('status', 'offline')), qos: 1, retain: true },
      ...(tls
        ? {
            ca: tls.ca ? readFileSync(tls.ca) : undefined,
            cert: tls.cert ? readFileSync(tls.cert) : undefined,
            key: tls.key ? readFileSync(tls.key) : undefined,
            rejectUnauthorized: tls.rejectUnauthorized,
          }
        : {}),
    };
    const urls = config.hq.mqtt.urls;
    this.client = mqtt.connect(urls[0], options);
    const inUse = () => safeUrl(brokerInUse(this.client!, urls));
    this.client.on('message', (topic, payload) => {
      if (topic !== this.topic('receipt')) {
        this.notUnderstood(topic, payload);
        return;
      }
      this.deps.bus.emit('receipt.received', payload);
    });
    // A broker that hangs up on our CONNECT without a CONNACK is up but will not talk to us: usually MQTT 5 to a broker
    // that speaks only 3.1.1 (RabbitMQ before 3.13). Say so, rather than only "unreachable".
    let awaitingConnack = false;
    this.client.on('packetsend', (packet) => {
      if (packet.cmd === 'connect') awaitingConnack = true;
    });
    this.client.on('packetreceive', (packet) => {
      if (packet.cmd === 'connack') awaitingConnack = false;
    });
    this.client.on('close', () => {
      if (!awaitingConnack || this.stopping) return;
      awaitingConnack = false;
      const version = config.hq.mqtt.protocolVersion;
      const hint =
        version === 5
          ? 'if it does not speak MQTT 5 (RabbitMQ before 3.13 does not), set hq.mqtt.protocolVersion: 4'
          : 'check its listener and logs';
      this.throttle.warn(
        this.log,
        'connack',
        { url: inUse(), protocolVersion: version },
        `the broker closed the connection without answering our MQTT CONNECT: ${hint}`,
      );
      this.deps.board.raise(
        'MQTT_UNREACHABLE',
        'mqtt',
        `MQTT broker (${inUse()}) hangs up on our MQTT ${version === 5 ? '5' : '3.1.1'} CONNECT: ${hint}; events are kept and sent when it answers`,
      );
    });
    this.client.on('connect', () => {
      awaitingConnack = false;
      this.log.info({ url: inUse(), protocolVersion: config.hq.mqtt.protocolVersion }, 'connected to broker');
      this.deps.board.clear('mqtt');
      this.client!.publish(this.topic('status'), wirePayload('status', 'online'), { qos: 1, retain: true });
      this.client!.subscribe(this.topic('receipt'), { qos: 1 }, (err) => {
        if (err) this.log.error({ err }, 'cannot subscribe to receipts');
      });
      this.publishAuditHead();
      this.scheduleState(true);
      void this.drain();
    });
    this.client.on('offline', () => {
      this.deps.board.raise(
        'MQTT_UNREACHABLE',
        'mqtt',
        urls.length > 1
          ? `MQTT broker ${inUse()} unreachable, trying the others of ${urls.map(safeUrl).join(', ')} in turn; events are kept and sent, in order, when one answers`
          : `MQTT broker unreachable (${safeUrl(urls[0])}); events are kept and sent when it returns`,
      );
    });
    this.client.on('error', (err) => this.log.warn({ err }, 'mqtt error'));
    this.offs.push(this.deps.bus.on('outbox.added', () => void this.drain()));
    this.offs.push(this.deps.bus.on('state.changed', () => this.scheduleState(false)));
    this.offs.push(this.deps.bus.on('audit.head', () => this.publishAuditHead()));
    this.auditTimer = setInterval(() => this.publishAuditHead(), config.hq.auditIntervalSeconds * 1000);
    this.refreshTimer = setInterval(async () => {
      this.disk = await diskInfo(config.storage.dir, this.deps.host.statfs);
      void this.drain();
      this.scheduleState(true);
    }, STATE_REFRESH_MS);
    // dockctl (another process) may add outbox entries too.
    this.pollTimer = setInterval(() => void this.drain(), 1000);
    this.persistSnapshot();
  }

  /** Publishes `offline`, flushes what it can of the outbox, and disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const off of this.offs) off();
    if (this.stateTimer) clearTimeout(this.stateTimer);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.auditTimer) clearInterval(this.auditTimer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await this.drain(2000);
      await this.publishState().catch(() => {});
      await withTimeout(
        client.publishAsync(this.topic('status'), wirePayload('status', 'offline'), { qos: 1, retain: true }),
        2000,
      ).catch(() => {});
    }
    await withTimeout(client.endAsync(), 2000).catch(() => client.end(true));
    this.persistSnapshot();
  }

  snapshot(): StateSnapshot {
    return buildSnapshot({
      stationId: this.deps.config.station.id,
      now: this.deps.clock.now(),
      board: this.deps.board,
      catalog: this.deps.catalog,
      uploads: this.deps.uploads(),
      disk: this.disk,
      mqttConnected: this.connected,
      receipts: this.deps.receipts?.(),
      uploadWaitingFor: this.deps.uploadWaitingFor?.() ?? null,
      watermarks: { lowWaterBytes: this.deps.config.storage.lowWaterBytes, reserveBytes: this.deps.config.storage.reserveBytes },
    });
  }

  /**
   * Saves the snapshot for `dockctl status` when something a reader sees has changed (its time aside): each save is
   * a synchronous catalog commit, which the copies of a docked recorder would otherwise wait behind.
   */
  private persistSnapshot(): StateSnapshot {
    const snap = this.snapshot();
    const seen = JSON.stringify({ ...snap, at: null });
    if (seen === this.lastPersisted) return snap;
    try {
      this.deps.catalog.setKvUnsynced('state', snap);
      this.lastPersisted = seen;
    } catch (e) {
      this.log.warn({ err: e }, 'cannot save state snapshot');
    }
    return snap;
  }

  private scheduleState(now: boolean): void {
    if (this.stateTimer || this.stopping) return;
    const wait = now ? 0 : Math.max(0, STATE_MIN_INTERVAL_MS - (this.deps.clock.ms() - this.lastStateAt));
    this.stateTimer = setTimeout(() => {
      this.stateTimer = null;
      this.publishState().catch((e) => this.throttle.warn(this.log, 'state', { err: e }, 'state publish failed'));
    }, wait);
  }

  private async publishState(): Promise<void> {
    this.lastStateAt = this.deps.clock.ms();
    const snap = this.persistSnapshot();
    if (this.client?.connected)
      await this.client.publishAsync(this.topic('state'), wirePayload('state', snap), { qos: 0, retain: true });
  }

  /**
   * The head of the audit chain, signed with the station's key and retained (with the public key in it), so HQ can
   * keep it and later catch a station that rewrites its history or cuts off its newest entries (dockctl verify --head).
   */
  private publishAuditHead(): void {
    if (!this.client?.connected) return;
    const head = this.deps.catalog.auditHead();
    const signed = signAuditHead(this.deps.stationKey, {
      stationId: this.deps.config.station.id,
      seq: head.seq,
      hash: head.hash,
      at: this.deps.clock.now().toISOString(),
    });
    this.client.publish(this.topic('audit'), wirePayload('audit', signed), { qos: 1, retain: true });
  }

  /**
   * A message on our subscription whose topic is not exactly P/S/receipt: a broker that rewrites topic names (RabbitMQ
   * turns '.' into '/'), or a subscription our persistent session kept from an earlier topic prefix. It cannot be
   * applied, but it must not vanish unnoticed: audited every time, logged at most once a minute.
   */
  private notUnderstood(topic: string, payload: Buffer): void {
    const expected = `${this.prefix}/receipt`;
    try {
      this.deps.catalog.audit('mqtt.not-understood', null, {
        topic,
        expected,
        bytes: payload.length,
        payload: payload.toString('utf8').slice(0, 500),
      });
    } catch (e) {
      this.log.error({ err: e }, 'cannot audit a message that was not understood');
    }
    this.throttle.warn(
      this.log,
      'topic',
      { topic, expected, bytes: payload.length },
      "message on the receipt subscription with a topic that is not this station's receipt topic: ignored (does the broker rewrite topic names, or did hq.mqtt.topicPrefix change?)",
    );
  }

  /** The full name of one of the station's topics (P/S/…). */
  private topic(t: StationTopic | keyof HqTopics): string {
    return `${this.prefix}/${t}`;
  }

  /** Sends outbox entries oldest first, each removed only after the broker's PUBACK. */
  private async drain(budgetMs = Infinity): Promise<void> {
    if (this.draining || !this.client) return;
    this.draining = true;
    const until = this.deps.clock.ms() + budgetMs;
    try {
      while (this.client.connected && this.deps.clock.ms() < until) {
        const batch = this.deps.catalog.outboxPeek(50);
        if (!batch.length) break;
        for (const e of batch) {
          if (!this.client.connected) break;
          await withTimeout(this.client.publishAsync(this.topic(e.topic as StationTopic), e.payload, { qos: 1 }), 15_000);
          this.deps.catalog.outboxDelete(e.seq);
          this.deps.board.clear('mqtt:refused');
        }
      }
    } catch (e) {
      const reasonCode = (e as { code?: unknown }).code;
      if (typeof reasonCode === 'number' && reasonCode >= 0x80) {
        // MQTT 5 only: the broker acknowledged with a refusal (e.g. 0x87 not authorized by its ACL). The event stays
        // first in the outbox, so nothing is lost and nothing overtakes it; tried again every second.
        this.throttle.warn(
          this.log,
          'refused',
          { reasonCode, err: e },
          'the broker refuses our events: they stay in the outbox, in order, until it accepts them (check its ACL for this station)',
        );
        this.deps.board.raise(
          'MQTT_UNREACHABLE',
          'mqtt:refused',
          `MQTT broker refuses events on ${this.prefix}/event (${(e as Error).message}); they are kept and sent in order once it accepts them`,
        );
      } else this.log.warn({ err: e }, 'event delivery interrupted; will resume');
    } finally {
      this.draining = false;
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
