import type { SpaceClaim } from '../custody/storageKeeper.ts';
import type { RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { StatusBoard } from '../status/board.ts';
import type { FileRow } from '../store/catalog.ts';
import type { GroupCommit } from '../store/groupCommit.ts';
import type { HashThreads } from '../recorder/copyWorkers.ts';
import type { ClassifyDeps } from './classify.ts';

/** What ingest works with: the dock's services, config and hooks, shared by every session. */
export interface IngestContext extends ClassifyDeps {
  config: Config;
  log: Logger;
  board: StatusBoard;
  now: () => Date;
  onReady: () => void;
  /** Disk guard: resolves when a copy of `bytes` fits above the reserve (false: aborted). */
  space?: {
    waitForRoom(bytes: number, signal: AbortSignal, onWait: (reason: string | null) => void): Promise<boolean>;
    /** Whether `bytes` more would leave the reserve free now, beside the copies under way (no waiting, no alarm). */
    hasRoom(bytes: number): Promise<boolean>;
    /** Counts a copy against the free space while it runs (every recorder's copies are counted). */
    claim(bytes: number): SpaceClaim;
  };
  /** Who a volume belongs to, when its recorder identified itself on a control channel (paired by port or name). */
  identityFor?: (volumePath: string) =>
    | {
        serial: string;
        officerId: string;
        officerName: string | null;
        battery: number | null;
        driftMs: number | null;
        bay: string | null;
        portPath: string | null;
      }
    | undefined;
  /** The officer who held a pool recorder at a capture time (ISO 8601), when one had it assigned (daemon/pool). */
  holderAt?: (serial: string, capturedAt: string) => { officerId: string; officerName: string | null } | undefined;
  /** Where a volume dockd mounted itself (USB) sits: its bay (dock.bays) and port path, for a recorder with no control channel. */
  placeFor?: (volumePath: string) => { bay: string | null; portPath: string | null } | undefined;
  /**
   * Verifies a stored recording (probe, metadata, state) off the copy path, in a bounded pool: the officer waits only
   * for the bytes to be durable with their hash. The dock service provides it to its sessions.
   */
  verify?: (fileId: number) => Promise<FileRow>;
  /** Makes copies durable and stored in batches (one per store, shared by the sessions). */
  commits?: GroupCommit;
  /** How the wipe gate deletes from this recorder's storage (control channel, read-write remount); default: the directory itself. */
  volumeFor?: (volumePath: string) => RecorderVolume;
  /** The threads that copy and hash (the host's); default: the process's. */
  threads?: HashThreads;
}

/** A session's context: the dock's, with its verification pool. */
export type SessionContext = IngestContext & Required<Pick<IngestContext, 'verify' | 'commits'>>;
