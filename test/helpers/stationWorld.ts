import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { type DaemonProcess, tempDir } from './daemon.ts';
import { Mosquitto, type recordTopics } from './mosquitto.ts';
import { TusTestServer } from './tusServer.ts';

/** What a test of the whole station owns: a temp dir, a real broker and tus server; the daemon and subscriber it starts. */
export interface StationWorld {
  dir: string;
  broker: Mosquitto;
  tus: TusTestServer;
  daemon: DaemonProcess | null;
  sub: Awaited<ReturnType<typeof recordTopics>> | null;
}

/**
 * Registers the set-up and tear-down of a station world for every test of the calling describe block: a fresh temp
 * dir with a mosquitto and a tus server before each test; the daemon killed, the subscriber closed, the servers
 * stopped and the dir removed after it.
 */
export function useStationWorld(): StationWorld {
  const w = {} as StationWorld;
  beforeEach(async () => {
    w.dir = await tempDir();
    w.broker = new Mosquitto(path.join(w.dir, 'mosquitto'));
    await w.broker.start();
    w.tus = new TusTestServer(path.join(w.dir, 'hq'));
    await w.tus.start();
    w.daemon = null;
    w.sub = null;
  });
  afterEach(async () => {
    await w.daemon?.kill9();
    await w.sub?.close();
    await w.tus.stop();
    await w.broker.stop();
    await fs.rm(w.dir, { recursive: true, force: true });
  });
  return w;
}
