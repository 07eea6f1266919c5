import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { YOUNG_GENERATION_CAP } from '../../daemon/heapGrowth.ts';
import { tempDir } from '../helpers/daemon.ts';
import { TEST_HQ_PUBLIC_PEM } from '../helpers/hqKeys.ts';
import { Mosquitto, recordTopics } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { bundleDockd } from './dockdBundle.ts';
import { Guest } from './guest.ts';
import type { GuestProcess } from './guestLink.ts';

export const STATION = 'hil-st';
export const TOPICS = `dockd/${STATION}`;
/** In the guest (its tmpfs overlay): dockd's store and its mount root for recorder volumes. */
export const GUEST_STORE = '/var/lib/dockd-hil/store';
export const GUEST_MOUNT_ROOT = '/run/dockd/mnt';
export const RECORDER_PASSWORD = 'hil-pass';

export interface RecorderState {
  name: string;
  serial: string | null;
  state: string;
  safeToUndock: boolean;
  leftBehind: { path: string; reason: string }[];
  files: { total: number; done: number };
  bytes: { total: number; done: number };
  bay?: string | null;
  volume?: string;
}

/** Milliseconds, printed as seconds. */
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * The world of the hardware-in-the-loop test: on the host a real mosquitto and a real tus server (re-hashing every
 * upload), and the qemu guest running the real dockd (bundled from the checkout), which reaches them over the guest's
 * virtio-serial channel. The config holds qemu's emulated USB ids in its fingerprint table, as a station would list its
 * recorders' ids: 0403:6001 (usb-serial: command mode) and 46f4:0001 with a serial starting REC (usb-storage: a
 * recorder's storage); any other usb-storage is a stick.
 */
export class HilWorld {
  dir = '';
  broker!: Mosquitto;
  tus!: TusTestServer;
  guest!: Guest;
  dockd!: GuestProcess;
  sub!: Awaited<ReturnType<typeof recordTopics>>;
  readonly logs: Record<string, unknown>[] = [];
  /** Every MQTT message under the station's topics, with the host time it arrived. */
  readonly mqtt: { at: number; topic: string; payload: string }[] = [];
  readonly phases: [string, number][] = [];
  private dockdExit: number | null | undefined;

  /** `prepare` runs before the guest boots: what the guest reads from the host tree is best there before it mounts it. */
  async start(opts: { wipe?: boolean; prepare?: (dir: string) => Promise<void> } = {}): Promise<void> {
    this.dir = await tempDir('dockd-hil-');
    await opts.prepare?.(this.dir);
    this.broker = new Mosquitto(path.join(this.dir, 'mosquitto'));
    await this.broker.start();
    this.tus = new TusTestServer(path.join(this.dir, 'hq'));
    await this.tus.start();
    this.sub = await recordTopics(this.broker.url, `${TOPICS}/#`);
    this.sub.client.on('message', (topic, payload) => this.mqtt.push({ at: Date.now(), topic, payload: payload.toString() }));
    const mqttPort = Number(new URL(this.broker.url).port);
    this.guest = new Guest({ workDir: this.dir, services: { mqtt: mqttPort, tus: this.tus.port } });
    const entry = await bundleDockd(path.join(this.dir, 'dockd'));
    const config = path.join(this.dir, 'dockd.yaml');
    await fs.writeFile(config, stringify(this.config(mqttPort, opts)));
    await this.guest.boot();
    this.phases.push(['boot (qemu start → guest agent ready)', this.guest.bootMs]);
    const t0 = Date.now();
    // As the systemd unit starts it (the young generation capped).
    this.dockd = this.guest.link.spawn([process.execPath, ...YOUNG_GENERATION_CAP, entry, '--config', config]);
    void this.dockd.exited.then((c) => {
      this.dockdExit = c;
    });
    const logFile = createWriteStream(path.join(this.dir, 'dockd.log'));
    this.dockd.onLine = (l) => {
      logFile.write(`${l}\n`);
      try {
        this.logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        this.logs.push({ msg: l });
      }
    };
    await this.waitForLog((l) => l.msg === 'watching USB for recorders', 'dockd in the guest to watch USB', 420_000);
    this.phases.push(['dockd start (spawn → watching USB)', Date.now() - t0]);
  }

  private config(mqttPort: number, opts: { wipe?: boolean }): object {
    return {
      station: { id: STATION, timeZone: 'Asia/Shanghai' },
      storage: { dir: GUEST_STORE },
      dock: {
        mountRoots: ['/var/lib/dockd-hil/dock'],
        serialDir: '/var/lib/dockd-hil/serial',
        settleMs: 100,
        rescanSeconds: 2,
        recorderPassword: RECORDER_PASSWORD,
        storageTimeoutSeconds: 120,
        bays: [1, 2, 3, 4].map((n) => ({ id: `B${n}`, usbPort: `1-${n}` })),
        ...(opts.wipe ? { wipe: 'after-archive' } : {}),
      },
      devices: [
        { serial: 'HIL0001', officerId: '012345', officerName: '张三' },
        { serial: 'HIL0002', officerId: '054321', officerName: '李四' },
        { serial: 'HIL0003', officerId: '033333', officerName: '王五' },
        { serial: 'HIL0004', officerId: '044444', officerName: '赵六' },
        { serial: 'HIL0005', officerId: '055555', officerName: '孙七' },
      ],
      hq: {
        embedded: false,
        tus: { endpoint: `http://127.0.0.1:${this.tus.port}/files/`, stallTimeoutSeconds: 60, maxRetryDelaySeconds: 2 },
        mqtt: { url: `mqtt://127.0.0.1:${mqttPort}`, topicPrefix: 'dockd' },
        // The test HQ's key: its signed receipts (test/helpers/receipts.ts) make a recording eligible for the wipe.
        receiptKey: TEST_HQ_PUBLIC_PEM,
      },
      http: { listen: '127.0.0.1:8080' },
      log: { level: 'debug' },
      usb: {
        enabled: true,
        // libusb's hotplug (the usb package's prebuild uses libudev) needs a udevd, which the guest runs (init.sh): auto
        // watches libusb with the sysfs poller until libusb has reported a plug, then trusts it.
        hotplug: 'auto',
        runtimeMountRoot: GUEST_MOUNT_ROOT,
        fingerprints: [
          { vendorId: '0403', productId: '6001', driver: 'bc-serial', model: 'qemu usb-serial (HIL test)' },
          { vendorId: '46f4', productId: '0001', serial: '^REC', driver: 'mass-storage', model: 'qemu usb-storage (HIL test)' },
        ],
      },
    };
  }

  /** Throws when dockd in the guest has exited. */
  alive(): void {
    if (this.dockdExit !== undefined)
      throw new Error(`dockd in the guest exited (${this.dockdExit}): ${this.dockd.stderr.slice(-2000)}`);
  }

  waitForLog(test: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 120_000, from = 0) {
    return waitFor(
      what,
      () => {
        this.alive();
        return this.logs.slice(from).find(test);
      },
      timeoutMs,
      100,
    );
  }

  /** The station's events of this type, with the host time each arrived. */
  events(type: string): (Record<string, unknown> & { at: number })[] {
    return this.mqtt
      .filter((m) => m.topic === `${TOPICS}/event`)
      .map(
        (m) => ({ ...(JSON.parse(m.payload) as Record<string, unknown>), at: m.at }) as Record<string, unknown> & { at: number },
      )
      .filter((e) => e.type === type);
  }

  /** Every recorder tile of every `P/S/state` published, with the host time it arrived. */
  tiles(test: (r: RecorderState) => boolean = () => true): (RecorderState & { at: number })[] {
    return this.mqtt
      .filter((m) => m.topic === `${TOPICS}/state`)
      .flatMap((m) => (JSON.parse(m.payload) as { recorders: RecorderState[] }).recorders.map((r) => ({ ...r, at: m.at })))
      .filter(test);
  }

  phase(name: string, ms: number): void {
    this.phases.push([name, ms]);
  }

  report(): string {
    return this.phases.map(([n, ms]) => `  ${n.padEnd(58)} ${secs(ms)}`).join('\n');
  }

  async stop(): Promise<void> {
    if (this.dockd) this.guest.link.kill(this.dockd);
    await this.guest?.stop().catch(() => {});
    await this.sub?.close().catch(() => {});
    await this.tus?.stop().catch(() => {});
    await this.broker?.stop().catch(() => {});
    if (this.dir && !process.env.HIL_KEEP) await fs.rm(this.dir, { recursive: true, force: true });
  }
}
