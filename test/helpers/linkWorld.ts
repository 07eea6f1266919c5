/**
 * A test's own station for recorders with a control channel: a real mosquitto, a real @tus/server, a dockd process
 * whose dock.serialDir and mount root live in a temp dir, and emulated recorders (drivers/emulator) on real socat ptys
 * whose station end is linked into that serial dir. `cleanup()` stops every emulator (and its socat), the daemon, the
 * subscriber, the tus server and the broker, and removes the dir.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { EmulatedRecorder, type EmulatorFaults } from '../../drivers/emulator/index.ts';
import { cachedFixture, recordingName, remux, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DaemonProcess, runDockctl, tempDir } from './daemon.ts';
import { Mosquitto, recordTopics, type Received } from './mosquitto.ts';
import { freePort, waitFor } from './ports.ts';
import { TusTestServer } from './tusServer.ts';

export const STATION = 'test-st';
export const TIME_ZONE = 'Asia/Shanghai';
/** dock.recorderPassword of every link world (a device entry may name its own). */
export const STATION_PASSWORD = 'pw-1234';

/** Fails loudly (never skips) without socat: these tests need real ptys. */
export function requireSocat(): void {
  const r = spawnSync('socat', ['-V'], { stdio: 'ignore' });
  if (r.error || r.status !== 0)
    throw new Error('socat is not installed: the recorder link tests need real ptys made by socat (apt-get install socat)');
}

/**
 * A valid MP4 of about `plays` × 147 kB (the 2 s sample played `plays` times, remuxed with -stream_loop and -c copy),
 * cached under .cache/fixtures. Distinct variants have distinct content.
 */
export async function loopedClip(variant: number, plays: number): Promise<string> {
  const base = await sampleMedia('video', 2, variant);
  return cachedFixture(`video-2s-v${variant}-x${plays}.mp4`, (tmp) => remux(base, tmp, { plays }));
}

export interface Device {
  serial: string;
  officerId: string;
  officerName?: string;
  password?: string;
}

/** One recording put on an emulated recorder's volume, with what HQ should receive. */
export interface Recording {
  /** Path on the volume. */
  relPath: string;
  name: string;
  sha256: string;
  size: number;
  /** The capture time the recorder wrote into the name (local wall time), when the name carries one. */
  localTime: string | null;
}

export interface RecorderSpec {
  serial: string;
  officerId: string;
  officerName?: string;
  unitNo?: string;
  password?: string;
  loginWord?: string;
  battery?: number;
  clockOffsetMs?: number;
  faults?: EmulatorFaults;
  /** Between its tty vanishing (after UDISKEN) and its storage appearing, ms (default 0). */
  storageDelayMs?: number;
  /** Its control channel stays while its storage is exposed (the wipe gate deletes through it). */
  keepsControlChannel?: boolean;
  /** Media files to put on its volume (each gets a GA/T 947 name carrying this serial and officer, and a sidecar). */
  media: string[];
  /** Extra files under names of their own (e.g. not GA/T 947 style), each with a sidecar. */
  odd?: { name: string; source: string }[];
}

export interface Emulated {
  rec: EmulatedRecorder;
  recordings: Recording[];
  heard: string[];
}

export interface LinkWorldOptions {
  devices: Device[];
  /** dock keys beyond the world's own (mountRoots, serialDir, settleMs, recorderPassword, commandTimeoutMs). */
  dock?: Record<string, unknown>;
}

export class LinkWorld {
  readonly serialDir: string;
  readonly mountRoot: string;
  readonly storeDir: string;
  readonly configFile: string;
  readonly broker: Mosquitto;
  readonly tus: TusTestServer;
  daemon: DaemonProcess | null = null;
  private sub: Awaited<ReturnType<typeof recordTopics>> | null = null;
  private readonly emulators: EmulatedRecorder[] = [];
  private volumes = 0;

  private constructor(readonly dir: string) {
    this.serialDir = path.join(dir, 'serial', 'by-id');
    this.mountRoot = path.join(dir, 'dock');
    this.storeDir = path.join(dir, 'store');
    this.configFile = path.join(dir, 'dockd.yaml');
    this.broker = new Mosquitto(path.join(dir, 'mosquitto'));
    this.tus = new TusTestServer(path.join(dir, 'hq'));
  }

  /** Broker, tus server, config and a subscriber; the daemon is started by `startDaemon()`. */
  static async create(o: LinkWorldOptions): Promise<LinkWorld> {
    requireSocat();
    const w = new LinkWorld(await tempDir('dockd-link-'));
    try {
      await fs.mkdir(w.serialDir, { recursive: true });
      await fs.mkdir(w.mountRoot, { recursive: true });
      await w.broker.start();
      await w.tus.start();
      const config = {
        station: { id: STATION, timeZone: TIME_ZONE },
        storage: { dir: w.storeDir },
        dock: {
          mountRoots: [w.mountRoot],
          settleMs: 100,
          rescanSeconds: 1,
          serialDir: w.serialDir,
          recorderPassword: STATION_PASSWORD,
          commandTimeoutMs: 1500,
          storageTimeoutSeconds: 60,
          ...(o.dock ?? {}),
        },
        devices: o.devices,
        hq: {
          embedded: false,
          tus: { endpoint: w.tus.endpoint, stallTimeoutSeconds: 10, maxRetryDelaySeconds: 2 },
          mqtt: { url: w.broker.url, topicPrefix: 'dockd' },
        },
        http: { listen: `127.0.0.1:${await freePort()}` },
        log: { level: 'debug' },
        // The fixtures' recordings are dated 2026-11-28 (and some tests move the clock by months): late by the default
        // rule, which is not what those tests are about (test/integration/deadlines.test.ts is).
        rules: { offloadWithinHours: 1_000_000 },
      };
      await fs.writeFile(w.configFile, stringify(config));
      w.sub = await recordTopics(w.broker.url, `dockd/${STATION}/#`);
    } catch (e) {
      await w.cleanup();
      throw e;
    }
    return w;
  }

  async startDaemon(): Promise<DaemonProcess> {
    this.daemon = new DaemonProcess(this.configFile);
    this.daemon.start();
    await this.daemon.started();
    return this.daemon;
  }

  /** Where the emulator puts its station end: the by-id style name carries the serial (as real CDC-ACM devices do). */
  linkOf(serial: string): string {
    return path.join(this.serialDir, `usb-BC_Recorder_${serial}-if00`);
  }

  /** An emulated recorder with its volume, not yet plugged in. */
  async recorder(spec: RecorderSpec): Promise<Emulated> {
    const volumeDir = path.join(this.dir, 'volumes', `${spec.serial}-${++this.volumes}`);
    const media = path.join(volumeDir, 'DCIM', '100MEDIA');
    await fs.mkdir(media, { recursive: true });
    const recordings: Recording[] = [];
    const put = async (source: string, name: string, localTime: string | null) => {
      await fs.copyFile(source, path.join(media, name));
      // A recorder writes a file when it records it, long before the dock: its mtime says so (dockd copies settled files at once).
      const written = localTime ? new Date(`${localTime}+08:00`) : new Date(Date.now() - 3_600_000);
      await fs.utimes(path.join(media, name), written, written);
      const base = name.replace(/\.[^.]+$/, '');
      await fs.writeFile(
        path.join(media, `${base}.meta.json`),
        JSON.stringify({ caseNo: `C-${spec.serial}-${recordings.length + 1}`, purpose: '现场检查', place: '幸福路12号' }),
      );
      recordings.push({
        relPath: path.join('DCIM', '100MEDIA', name),
        name,
        sha256: await sha256OfFile(source),
        size: (await fs.stat(source)).size,
        localTime,
      });
    };
    for (const [i, source] of spec.media.entries()) {
      const hh = String(8 + i).padStart(2, '0');
      const at = `20261128${hh}3000`;
      await put(
        source,
        recordingName({ officerId: spec.officerId, serial: spec.serial, at, seq: i + 1, ext: path.extname(source).slice(1) }),
        `2026-11-28T${hh}:30:00`,
      );
    }
    for (const o of spec.odd ?? []) await put(o.source, o.name, null);
    const rec = new EmulatedRecorder({
      serial: spec.serial,
      officerId: spec.officerId,
      officerName: spec.officerName ?? '张三',
      unitNo: spec.unitNo ?? 'U3301',
      password: spec.password ?? STATION_PASSWORD,
      loginWord: spec.loginWord,
      battery: spec.battery,
      clockOffsetMs: spec.clockOffsetMs,
      timeZone: TIME_ZONE,
      volumeDir,
      mountRoot: this.mountRoot,
      port: { pty: this.linkOf(spec.serial) },
      faults: spec.faults,
      storageDelayMs: spec.storageDelayMs,
      keepsControlChannel: spec.keepsControlChannel,
    });
    this.emulators.push(rec);
    const heard: string[] = [];
    rec.on('command', (l) => heard.push(l));
    return { rec, recordings, heard };
  }

  get messages(): Received[] {
    return this.sub?.messages ?? [];
  }

  /** Events of a type published on P/S/event. */
  events(type: string): Record<string, unknown>[] {
    return this.messages
      .filter((m) => m.topic === `dockd/${STATION}/event`)
      .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
      .filter((e) => e.type === type);
  }

  /** Every state snapshot published so far. */
  states(): { recorders: Record<string, unknown>[]; alarms: { code: string; key: string; message: string }[] }[] {
    return this.messages.filter((m) => m.topic === `dockd/${STATION}/state`).map((m) => JSON.parse(m.payload));
  }

  /** The raised `alarm` event with this code, when there is one. */
  alarmEvent(code: string): Record<string, unknown> | undefined {
    return this.events('alarm').find((e) => e.code === code && e.active === true);
  }

  async status(): Promise<{
    daemon: string;
    recorders: Record<string, unknown>[];
    alarms: { code: string; key: string; message: string }[];
    queue: Record<string, number>;
  }> {
    const r = await runDockctl(this.configFile, ['status', '--json']);
    if (r.code !== 0) throw new Error(`dockctl status failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  async files(): Promise<
    {
      id: number;
      state: string;
      sha256: string | null;
      filename: string;
      sourcePath: string;
      deviceSerial: string | null;
      officerId: string | null;
      collector: string | null;
      recorderTime: string | null;
    }[]
  > {
    const r = await runDockctl(this.configFile, ['files', '--json']);
    if (r.code !== 0) throw new Error(`dockctl files failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** Waits until the tus server has verified exactly these recordings (by content) and returns their uploads. */
  async uploaded(recordings: Recording[], timeoutMs = 120_000): Promise<typeof this.tus.finished> {
    const want = new Set(recordings.map((r) => r.sha256));
    await waitFor(
      `${want.size} upload(s) verified by the tus server`,
      () => {
        if (this.daemon?.proc?.exitCode !== null && this.daemon?.proc?.exitCode !== undefined)
          throw new Error(`dockd exited ${this.daemon.proc.exitCode}: ${this.daemon.stderr}`);
        return [...want].every((s) => this.tus.finished.some((u) => u.sha256 === s));
      },
      timeoutMs,
      200,
    );
    return this.tus.finished.filter((u) => want.has(u.sha256));
  }

  async cleanup(): Promise<void> {
    await this.daemon?.kill9().catch(() => {});
    await Promise.allSettled(this.emulators.map((r) => r.stop()));
    await this.sub?.close().catch(() => {});
    await this.tus.stop().catch(() => {});
    await this.broker.stop().catch(() => {});
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
