import { afterEach } from 'vitest';
import type { LoadedConfig } from '../../daemon/config.ts';
import { Controller } from '../../daemon/controller.ts';
import type { Clock, Host } from '../../daemon/host.ts';
import { createLogger } from '../../daemon/log.ts';
import { LinkWorld, type LinkWorldOptions } from './linkWorld.ts';

/** The system clock plus an offset the test moves: time goes on, from wherever the test put it. */
export class MovedClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(this.ms());
  }
  ms(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** A station run in-process (the Controller, not the dockd command) in a LinkWorld, for one test. */
export interface InProcessStation {
  /** Every line the controller logged (JSON, at level info and above). */
  readonly lines: string[];
  /** The world of emulated recorders, broker and tus server the station runs in. */
  world(o: LinkWorldOptions): Promise<LinkWorld>;
  /** Starts a Controller on `loaded` with `host`, logging into `lines`. */
  start(loaded: LoadedConfig, host: Host): Promise<Controller>;
}

/**
 * Registers the tear-down of an in-process station for every test of the calling describe block: after each test the
 * controller is stopped and the world cleaned up; when the test failed, the controller's last log lines are printed.
 */
export function useInProcessStation(): InProcessStation {
  let world: LinkWorld | null = null;
  let controller: Controller | null = null;
  const lines: string[] = [];

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(lines.slice(-80).join(''));
    await controller?.stop();
    controller = null;
    await world?.cleanup();
    world = null;
    lines.length = 0;
  });

  return {
    lines,
    async world(o) {
      world = await LinkWorld.create(o);
      return world;
    },
    async start(loaded, host) {
      controller = new Controller(loaded, createLogger('info', { write: (s: string) => void lines.push(s) }), host);
      await controller.start();
      return controller;
    },
  };
}
