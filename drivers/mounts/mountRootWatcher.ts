import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChokidarOptions, FSWatcher } from 'chokidar';

export interface VolumeEvents {
  docked: [volumePath: string];
  undocked: [volumePath: string];
  error: [err: Error];
}

/**
 * Watches mount roots: a directory (or mounted volume) appearing directly under a root is a docked recorder, its
 * disappearance an undock. Volumes already present at start count as docked.
 */
export class MountRootWatcher extends EventEmitter<VolumeEvents> {
  private watcher: FSWatcher | null = null;
  private readonly present = new Set<string>();

  constructor(
    private readonly roots: string[],
    /** chokidar's `watch` (the daemon passes its host's). */
    private readonly watchDir: (paths: string[], options: ChokidarOptions) => FSWatcher,
  ) {
    super();
  }

  async start(): Promise<void> {
    for (const root of this.roots) await fs.mkdir(root, { recursive: true });
    const roots = new Set(this.roots.map((r) => path.resolve(r)));
    const isVolume = (p: string) => roots.has(path.dirname(path.resolve(p)));
    this.watcher = this.watchDir([...roots], { depth: 0, ignoreInitial: false, followSymlinks: false, alwaysStat: false });
    this.watcher.on('addDir', (p) => {
      if (!isVolume(p) || this.present.has(p)) return;
      this.present.add(p);
      this.emit('docked', path.resolve(p));
    });
    this.watcher.on('unlinkDir', (p) => {
      if (!isVolume(p) || !this.present.delete(p)) return;
      this.emit('undocked', path.resolve(p));
    });
    this.watcher.on('error', (e) => this.emit('error', e as Error));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    this.watcher = null;
  }
}
