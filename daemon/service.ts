import type { Config } from './config.ts';
import type { EventBus } from './events.ts';
import type { Clock, Host } from './host.ts';
import type { Logger } from './log.ts';
import type { StatusBoard } from './status/board.ts';
import type { Catalog } from './store/catalog.ts';
import type { ObjectStore } from './store/objects.ts';

/**
 * One part of the daemon with a life cycle: its constructor does nothing, `start()` begins its work, `stop()` ends it
 * and removes its own listeners. The controller starts them in order, contains a failing start, and stops them in
 * reverse order. Model: zigbee2mqtt's `Extension`.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What every service of a station shares. A service that needs more takes it as a second, named argument. */
export interface StationContext {
  config: Config;
  log: Logger;
  host: Host;
  /** `host.clock`: the station's time. */
  clock: Clock;
  catalog: Catalog;
  objects: ObjectStore;
  board: StatusBoard;
  bus: EventBus;
  /** `station.timeZone`, else the system's: recorder clocks and file names are read in it. */
  timeZone: string;
}
