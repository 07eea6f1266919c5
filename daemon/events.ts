import { EventEmitter } from 'node:events';
import type { Logger } from './log.ts';

/** In-process events between services (MQTT events go through the catalog outbox, not here). */
export interface BusEvents {
  /** Something a status snapshot shows has changed. */
  'state.changed': [];
  /** The outbox has new entries to publish. */
  'outbox.added': [];
  /** A file became uploadable (ready), e.g. after ingest or annotation. */
  'upload.wanted': [];
  /** The audit chain head should be published now (e.g. after an archive). */
  'audit.head': [];
  /** A recorder volume is docked: under a mount root, or mounted by dockd itself from USB (intake → dock). */
  'volume.docked': [volume: string];
  /** A docked volume went away (intake → dock). */
  'volume.undocked': [volume: string];
  /** dockd mounted a recorder's USB storage (usb → intake, which pairs the mount point with the port). */
  'usb.mounted': [mountPoint: string, portPath: string];
  /** A USB recorder's storage is going away (usb → intake). */
  'usb.unmounted': [mountPoint: string];
  /** HQ → station receipt (P/S/receipt) as it arrived (status → receipts, applied in arrival order). */
  'receipt.received': [payload: Buffer];
}

/** A typed event bus whose listeners cannot break the emitter: a throwing listener is logged and contained. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor(private readonly log: Logger) {
    this.emitter.setMaxListeners(50);
  }

  on<K extends keyof BusEvents>(event: K, listener: (...args: BusEvents[K]) => void): () => void {
    const wrapped = (...args: BusEvents[K]) => {
      try {
        listener(...args);
      } catch (e) {
        this.log.error({ err: e, event }, 'event listener failed');
      }
    };
    this.emitter.on(event, wrapped as (...a: unknown[]) => void);
    return () => this.emitter.off(event, wrapped as (...a: unknown[]) => void);
  }

  emit<K extends keyof BusEvents>(event: K, ...args: BusEvents[K]): void {
    this.emitter.emit(event, ...args);
  }
}
