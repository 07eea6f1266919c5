import type { RecorderState, RecorderStatus, StatusBoard } from './board.ts';

type Counter = Exclude<keyof RecorderStatus['files'], 'total' | 'done' | 'settling' | 'skipped'>;

/** What a session may read of its tile (it writes only through the tile's methods). */
export type RecorderView = Readonly<Omit<RecorderStatus, 'files' | 'bytes' | 'leftBehind'>> & {
  readonly files: Readonly<RecorderStatus['files']>;
  readonly bytes: Readonly<RecorderStatus['bytes']>;
  readonly leftBehind: readonly RecorderStatus['leftBehind'][number][];
};

/**
 * One docked recorder's tile on the status board, written by its ingest session. Each method changes the tile and
 * tells the board. A change of state or totals shows the tile again even after the undock took it off the board
 * (the session's last word, e.g. `unplugged`, stays visible until the session has wound down); progress and
 * counters only tell the board when the tile is on it.
 */
export class RecorderTile {
  private readonly tile: RecorderStatus;

  constructor(
    private readonly board: StatusBoard,
    initial: RecorderStatus,
  ) {
    this.tile = initial;
    board.upsertRecorder(this.tile);
  }

  get status(): RecorderView {
    return this.tile;
  }

  /** Who docked (from file names or the recorder's control channel) and where it sits. */
  identified(who: Partial<Pick<RecorderStatus, 'serial' | 'officerId' | 'officerName' | 'battery' | 'driftMs' | 'bay'>>): void {
    Object.assign(this.tile, who);
    this.board.recorderChanged(this.tile.volume);
  }

  /** What a scan found still to take (`open` files of `openBytes`), on top of what is already done. */
  totals(open: { files: number; bytes: number; settling: number; skipped: number }): void {
    const { files, bytes } = this.tile;
    files.total = files.done + open.files;
    bytes.total = bytes.done + open.bytes;
    files.settling = open.settling;
    files.skipped = open.skipped;
    this.board.upsertRecorder(this.tile);
  }

  /** The tile's state and the reason shown with it; safe to undock exactly when `done` or `verifying`. */
  recorderState(state: RecorderState, error: string | null): void {
    this.tile.state = state;
    this.tile.error = error;
    this.tile.safeToUndock = state === 'done' || state === 'verifying';
    this.board.upsertRecorder(this.tile);
  }

  /** The recording being copied now (null: none). */
  current(relPath: string | null): void {
    this.tile.current = relPath;
    this.board.recorderChanged(this.tile.volume);
  }

  /** Bytes copied in this session so far. */
  progress(bytesDone: number): void {
    this.tile.bytes.done = bytesDone;
    this.board.recorderChanged(this.tile.volume);
  }

  /** One more recording handled; `bytesDone` counts it in full. */
  fileDone(bytesDone: number): void {
    this.tile.bytes.done = bytesDone;
    this.tile.files.done++;
    this.board.recorderChanged(this.tile.volume);
  }

  /** One more recording in each of the given counters. */
  count(...counters: Counter[]): void {
    for (const c of counters) this.tile.files[c]++;
    this.board.recorderChanged(this.tile.volume);
  }

  /** What stays on the recorder (with why), and how many recordings are still being written. */
  leftBehind(left: RecorderStatus['leftBehind'], settling: number): void {
    this.tile.leftBehind = left;
    this.tile.files.settling = settling;
    this.board.recorderChanged(this.tile.volume);
  }
}
