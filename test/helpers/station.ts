import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { DaemonProcess, makeWorld, tempDir, type WorldOptions } from './daemon.ts';
import { Mosquitto, type MosquittoOptions, recordTopics, type Subscriber } from './mosquitto.ts';
import { LinkWorld, type LinkWorldOptions } from './linkWorld.ts';
import { TusTestServer } from './tusServer.ts';

export type World = Awaited<ReturnType<typeof makeWorld>>;
type StartOptions = Parameters<DaemonProcess['start']>[0];

export interface StationOptions {
  /** How the temp dir's name starts (it tells which test left it behind). */
  prefix?: string;
  /** A mosquitto for each test (default), locked down as given; false where the test brings a broker of its own. */
  broker?: boolean | MosquittoOptions;
  /** A tus server for each test (default); false where the test needs none or brings its own. */
  tus?: boolean;
  /** The recorders the station knows (config `devices`); one test recorder unless given. */
  devices?: WorldOptions['devices'];
  /** More top-level config sections, for every world of the test. */
  config?: Record<string, unknown>;
  /** Runs first, before anything is started (e.g. a check that the test may run here). */
  precondition?: () => void | Promise<void>;
}

/** What a test of the whole station owns for one test: all of it is torn down after the test. */
export interface Station {
  dir: string;
  /** Unset when the station was made with `broker: false`. */
  broker: Mosquitto;
  /** Unset when the station was made with `tus: false`. */
  tus: TusTestServer;
  /** The daemon last started with startDaemon (or set by the test); every daemon started is killed after the test. */
  daemon: DaemonProcess | null;
  /** The subscriber last made with subscribe (or set by the test); every one made is closed after the test. */
  sub: Subscriber | null;
  /** A store, mount root and config file in the test's dir, pointing at the station's broker and tus server. */
  world(over?: Partial<WorldOptions>): Promise<World>;
  /** Starts a daemon on `configFile` and waits until it says it started. */
  startDaemon(configFile: string, opts?: StartOptions): Promise<DaemonProcess>;
  /** Records every message on `filter` (all of the test station's topics unless given) from the station's broker. */
  subscribe(filter?: string, url?: string): Promise<Subscriber>;
  /** The same, connected as one of the broker's `users` (over TLS with the client certificate where it has `tls`). */
  subscribeAs(user: string, filter?: string): Promise<Subscriber>;
  /** Runs `fn` after the test, once its daemons are dead, before the servers stop (last registered, first run). */
  onCleanup(fn: () => unknown): void;
}

/**
 * Registers the set-up and tear-down of a station for every test of the calling describe block: before each test a
 * fresh temp dir with a real mosquitto and a real tus server; after it, the daemons killed, the subscribers closed,
 * the test's own clean-ups run, the servers stopped and the dir removed (each step even when one before it failed).
 */
export function useStation(opts: StationOptions = {}): Station {
  let daemons: DaemonProcess[] = [];
  let subs: Subscriber[] = [];
  let cleanups: (() => unknown)[] = [];

  const station = {
    daemon: null,
    sub: null,
    async world(over: Partial<WorldOptions> = {}) {
      return makeWorld(station.dir, {
        tusEndpoint: station.tus?.endpoint ?? '',
        mqttUrl: station.broker?.url ?? '',
        ...(opts.devices ? { devices: opts.devices } : {}),
        ...over,
        extra: { ...opts.config, ...over.extra },
      });
    },
    async startDaemon(configFile: string, startOpts?: StartOptions) {
      const d = new DaemonProcess(configFile);
      daemons.push(d);
      station.daemon = d;
      d.start(startOpts);
      await d.started();
      return d;
    },
    async subscribe(filter = 'dockd/test-st/#', url = station.broker.url) {
      const s = await recordTopics(url, filter);
      subs.push(s);
      station.sub = s;
      return s;
    },
    async subscribeAs(user: string, filter = 'dockd/test-st/#') {
      const s = await recordTopics(station.broker.url, filter, station.broker.clientOptions(user));
      subs.push(s);
      station.sub = s;
      return s;
    },
    onCleanup(fn: () => unknown) {
      cleanups.push(fn);
    },
  } as Station;

  beforeEach(async () => {
    daemons = [];
    subs = [];
    cleanups = [];
    station.daemon = null;
    station.sub = null;
    station.broker = undefined as unknown as Mosquitto;
    station.tus = undefined as unknown as TusTestServer;
    await opts.precondition?.();
    station.dir = await tempDir(opts.prefix);
    if (opts.broker !== false) {
      station.broker = new Mosquitto(path.join(station.dir, 'mosquitto'), opts.broker === true ? {} : opts.broker);
      await station.broker.start();
    }
    if (opts.tus !== false) {
      station.tus = new TusTestServer(path.join(station.dir, 'hq'));
      await station.tus.start();
    }
  });

  afterEach(async () => {
    if (!station.dir) return;
    const steps: (() => unknown)[] = [
      ...[...new Set([...daemons, station.daemon])].map((d) => () => d?.kill9()),
      ...[...new Set([...subs, station.sub])].map((s) => () => s?.close()),
      ...cleanups.reverse(),
      () => station.tus?.stop(),
      () => station.broker?.stop(),
      () => fs.rm(station.dir, { recursive: true, force: true }),
    ];
    const failures: unknown[] = [];
    for (const step of steps)
      await Promise.resolve()
        .then(step)
        .catch((e: unknown) => failures.push(e));
    station.dir = '';
    if (failures.length) throw failures[0];
  });

  return station;
}

/** The emulated-recorder worlds of a test file: each made by `create` is cleaned up after its test. */
export interface LinkWorlds {
  create(o: LinkWorldOptions): Promise<LinkWorld>;
}

/**
 * Registers the clean-up of LinkWorlds (recorder emulators, broker, tus server, dockd) for every test of the file:
 * after each test its world is cleaned up; when the test failed, dockd's last `tail` log lines are printed first.
 */
export function useLinkWorld(tail = 80): LinkWorlds {
  let world: LinkWorld | null = null;
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && world?.daemon)
      console.error(
        world.daemon.logs
          .slice(-tail)
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
    await world?.cleanup();
    world = null;
  });
  return {
    async create(o) {
      world = await LinkWorld.create(o);
      return world;
    },
  };
}
