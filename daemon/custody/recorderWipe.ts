import path from 'node:path';
import { DirectoryVolume, VolumeWriteError, type RecorderVolume } from '../../drivers/volumes/recorderVolume.ts';
import type { Config } from '../config.ts';
import { copyAndHash } from '../recorder/copyAndHash.ts';
import { discover, type FoundRecording } from '../recorder/discover.ts';
import { parseRecordingName } from '../recorder/recordingName.ts';
import type { Logger } from '../log.ts';
import type { Catalog, FileRow } from '../store/catalog.ts';

export interface RecorderWipeDeps {
  config: Config;
  catalog: Catalog;
  log: Logger;
  now: () => Date;
  /** How to delete from this recorder (control channel, read-write remount, plain directory); default: the directory. */
  volumeFor?: (volumePath: string) => RecorderVolume;
}

/** The docked session whose recorder is wiped. */
export interface WipeSession {
  volumePath: string;
  sessionId: number;
  /** The session forgets a path it had taken, so that a new file appearing there is taken again. */
  forget: (relPath: string) => void;
}

/**
 * The wipe gate (dock.wipe: after-archive) for one docked session. Deletes from the recorder each recording whose
 * content HQ has confirmed (archived, with a receipt), and only while the file there still has the archived size and
 * SHA-256, re-hashed just before it is deleted. A file that no longer matches is refused (audited, never deleted); a
 * deletion that fails is logged and audited. Neither is tried again in this session (the next dock tries again), and
 * neither ends the session. Everything else on the recorder is never touched.
 */
export class RecorderWipe {
  /** Paths refused or failed in this session. */
  private readonly passedOver = new Set<string>();
  /** Set when write access to the whole volume could not be had: no more attempts in this session. */
  private halted: string | null = null;
  private readonly log: Logger;

  constructor(
    private readonly deps: RecorderWipeDeps,
    private readonly session: WipeSession,
  ) {
    this.log = deps.log.child({ component: 'wipe', volume: session.volumePath, session: session.sessionId });
  }

  /** One wipe pass over the volume; returns how many recordings were deleted. */
  async run(signal: AbortSignal, serial: string | null): Promise<number> {
    if (this.deps.config.dock.wipe !== 'after-archive' || this.halted) return 0;
    const found = await discover(this.session.volumePath).catch(() => null);
    if (!found) return 0;
    let volume: RecorderVolume | null = null;
    let deleted = 0;
    try {
      for (const rec of found.recordings) {
        if (signal.aborted || this.halted) break;
        if (this.passedOver.has(rec.relPath)) continue;
        const file = this.archivedCopyOf(rec, serial);
        if (!file) continue;
        const now = await copyAndHash(rec.absPath, null, {
          signal,
          copiesAtOnce: this.deps.config.dock.concurrency,
        }).catch((e: Error) => e);
        if (signal.aborted) break;
        if (now instanceof Error) {
          this.failed(file, rec, serial, volume?.method ?? null, `cannot re-hash it before deleting: ${now.message}`);
          continue;
        }
        if (now.sha256 !== file.sha256 || now.size !== file.size) {
          this.passedOver.add(rec.relPath);
          this.deps.catalog.audit('recorder.wipe-refused', file.sha256, {
            id: file.id,
            path: rec.relPath,
            serial,
            why: 'the file on the recorder no longer matches the archived copy',
            found: now.sha256,
            foundSize: now.size,
            size: file.size,
          });
          this.log.warn(
            { path: rec.relPath, id: file.id },
            'not deleting a recording that changed on the recorder since it was archived',
          );
          continue;
        }
        try {
          volume ??= (this.deps.volumeFor ?? ((p: string) => new DirectoryVolume(p)))(this.session.volumePath);
          await volume.remove(rec);
        } catch (e) {
          if (e instanceof VolumeWriteError && e.code === 'NO_ACCESS') this.halted = e.message;
          this.failed(file, rec, serial, volume?.method ?? null, (e as Error).message);
          continue;
        }
        this.deleted(file, rec, serial, volume.method);
        deleted++;
      }
    } finally {
      if (volume) await this.close(volume, serial);
    }
    if (deleted) this.log.info({ deleted, method: volume?.method }, 'deleted archived recordings from the recorder (wipe gate)');
    return deleted;
  }

  /** The archived file this recording is (same recorder, path, size and mtime), when HQ's receipt names it. */
  private archivedCopyOf(rec: FoundRecording, serial: string | null): FileRow | undefined {
    const parsed = parseRecordingName(path.basename(rec.relPath));
    const file = this.deps.catalog.findKnownSource({
      sessionId: this.session.sessionId,
      deviceSerial: parsed?.serial ?? serial,
      sourcePath: rec.relPath,
      size: rec.size,
      mtimeMs: rec.mtimeMs,
    });
    return file && file.state === 'archived' && file.receipt_at && file.size === rec.size ? file : undefined;
  }

  private deleted(file: FileRow, rec: FoundRecording, serial: string | null, method: string): void {
    const { catalog, now } = this.deps;
    catalog.wipedFromRecorder({
      type: 'recorder.file-deleted',
      at: now().toISOString(),
      sha256: file.sha256,
      id: file.id,
      path: rec.relPath,
      deviceSerial: serial,
      method,
      why: 'archived at HQ (receipt) and identical on the recorder',
    });
    this.session.forget(rec.relPath);
  }

  private failed(file: FileRow, rec: FoundRecording, serial: string | null, method: string | null, error: string): void {
    this.passedOver.add(rec.relPath);
    this.deps.catalog.audit('recorder.wipe-failed', file.sha256, { id: file.id, path: rec.relPath, serial, method, error });
    this.log.warn(
      { path: rec.relPath, method, err: error },
      'cannot delete an archived recording from the recorder (it stays there)',
    );
  }

  private async close(volume: RecorderVolume, serial: string | null): Promise<void> {
    try {
      await volume.close();
    } catch (e) {
      // The deletions may not have reached the medium, or the storage may still be writable: say so loudly.
      this.deps.catalog.audit('recorder.wipe-failed', serial, {
        volume: this.session.volumePath,
        method: volume.method,
        step: 'close',
        error: (e as Error).message,
      });
      this.log.error(
        { method: volume.method, err: e },
        'cannot finish the wipe on the recorder (flush or read-only remount failed)',
      );
    }
  }
}
