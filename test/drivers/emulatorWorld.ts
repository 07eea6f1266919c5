/**
 * A test's own world for the recorder drivers: a temp dir with a serial dir (standing in for /dev/serial/by-id), a
 * mount root and recorder volumes; emulated recorders on real socat ptys; clients over the serial transport.
 * `cleanup()` (afterEach) closes every client and transport, stops every emulator (killing its socat) and removes the dir.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { BcClient, type BcClientOptions, BcError } from '../../drivers/protocols/bc/index.ts';
import { EmulatedRecorder, createPtyPair, type EmulatedRecorderOptions, type PtyPair } from '../../drivers/emulator/index.ts';
import { SerialTransport } from '../../drivers/transports/serial.ts';
import { recordingName } from '../../scripts/media.ts';

/** Fails loudly (never skips) when socat is missing: these tests need real ptys. */
export function requireSocat(): void {
  const r = spawnSync('socat', ['-V'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    throw new Error('socat is not installed: the recorder driver tests need real ptys made by socat (apt-get install socat)');
  }
}

/** The BcError a call fails with; throws when it succeeds or fails with anything else. */
export async function failure(p: Promise<unknown>): Promise<BcError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof BcError)) throw new Error(`expected a BcError, got ${e === null ? 'success' : String(e)}`);
  return e;
}

/** A fresh EmulatorWorld for each test of the calling file, handed to `set` before the test and cleaned up after it. */
export function useEmulatorWorld(set: (world: EmulatorWorld) => void): void {
  let current: EmulatorWorld | null = null;
  beforeEach(async () => {
    current = await EmulatorWorld.create();
    set(current);
  });
  afterEach(async () => {
    await current?.cleanup();
    current = null;
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  guardMs = 10_000,
): Promise<T> {
  const until = Date.now() + guardMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${guardMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

export type RecorderSpec = Partial<Omit<EmulatedRecorderOptions, 'volumeDir' | 'mountRoot'>> & { serial: string };

export class EmulatorWorld {
  readonly serialDir: string;
  readonly mountRoot: string;
  private readonly recorders: EmulatedRecorder[] = [];
  private readonly transports: SerialTransport[] = [];
  private readonly clients: BcClient[] = [];
  private readonly pairs: PtyPair[] = [];

  private constructor(readonly dir: string) {
    this.serialDir = path.join(dir, 'serial', 'by-id');
    this.mountRoot = path.join(dir, 'dock');
  }

  static async create(): Promise<EmulatorWorld> {
    requireSocat();
    return new EmulatorWorld(await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-drivers-')));
  }

  /** A recorder volume: three recordings (one IMP, one photo) under DCIM/100MEDIA and a sidecar. */
  async makeVolume(serial: string, officerId: string): Promise<string> {
    const volume = path.join(this.dir, 'volumes', serial);
    const media = path.join(volume, 'DCIM', '100MEDIA');
    await fs.mkdir(media, { recursive: true });
    const names = [
      recordingName({ officerId, serial, at: '20261128083000', seq: 1 }),
      recordingName({ officerId, serial, at: '20261128090500', seq: 2, important: true }),
      recordingName({ officerId, serial, at: '20261128102000', seq: 3, ext: 'jpg' }),
    ];
    for (const [i, name] of names.entries()) await fs.writeFile(path.join(media, name), randomBytes(64 * 1024 + i * 4099));
    await fs.writeFile(
      path.join(media, names[0].replace(/\.mp4$/, '.meta.json')),
      JSON.stringify({ caseNo: 'A2026-1128-001', purpose: '现场检查' }),
    );
    return volume;
  }

  /** An emulated recorder, plugged in: its pty link is at `stationPath`, in the serial dir. */
  async recorder(spec: RecorderSpec): Promise<EmulatedRecorder> {
    const officerId = spec.officerId ?? '012345';
    const rec = new EmulatedRecorder({
      officerName: '张三',
      unitNo: 'U3301',
      password: 'pw-1234',
      ...spec,
      officerId,
      volumeDir: await this.makeVolume(spec.serial, officerId),
      mountRoot: this.mountRoot,
      port: spec.port ?? { pty: path.join(this.serialDir, `usb-BC_Recorder_${spec.serial}-if00`) },
    });
    this.recorders.push(rec);
    await rec.plugIn();
    return rec;
  }

  /** Opens a tty with the serial transport and puts a BcClient on it. */
  async client(ttyPath: string, opts: BcClientOptions = {}): Promise<{ client: BcClient; transport: SerialTransport }> {
    const transport = await SerialTransport.open(ttyPath);
    this.transports.push(transport);
    const client = new BcClient(transport.stream, { timeoutMs: 2000, ...opts });
    this.clients.push(client);
    return { client, transport };
  }

  /** A bare socat pty pair (links in the world's dir). */
  async ptyPair(name: string): Promise<PtyPair> {
    const pair = await createPtyPair({
      recorderLink: path.join(this.dir, 'pty', `${name}-recorder`),
      stationLink: path.join(this.dir, 'pty', `${name}-station`),
    });
    this.pairs.push(pair);
    return pair;
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients) c.dispose();
    await Promise.allSettled(this.transports.map((t) => t.close()));
    await Promise.allSettled(this.recorders.map((r) => r.stop()));
    await Promise.allSettled(this.pairs.map((p) => p.close()));
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
