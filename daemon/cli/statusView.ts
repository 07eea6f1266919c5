import type { Config } from '../config.ts';
import { systemClock } from '../clock.ts';
import type { RecorderStatus } from '../status/board.ts';
import type { StateSnapshot } from '../status/snapshot.ts';
import { FILE_STATES, type Catalog } from '../store/catalog.ts';
import { bar, bytes, table } from './format.ts';
import { pidAlive } from './processAlive.ts';

/** What `dockctl status` shows (also its --json output). */
export interface StatusView {
  stationId: string;
  daemon: 'running' | 'not running';
  snapshotAt: string | null;
  recorders: RecorderStatus[];
  queue: ReturnType<Catalog['counts']> & { bytesPending: number; outbox: number; waitingFor: string | null };
  uploads: StateSnapshot['uploads'];
  disk: StateSnapshot['disk'];
  links: StateSnapshot['links'] | null;
  alarms: StateSnapshot['alarms'];
  /** Every recording held for annotation (--json); the text lists the oldest HELD_LISTED and counts the rest. */
  needsAnnotation: ReturnType<Catalog['heldRecordings']>;
}

/**
 * How many held recordings the text of `dockctl status` lists, oldest first: a station with thousands held would
 * otherwise print them all, below the recorders and alarms an admin looks for. `dockctl files --state
 * needs-annotation` lists them all.
 */
export const HELD_LISTED = 20;

/**
 * The daemon's last snapshot (kept in the catalog) joined with the catalog's own counts. `heldLimit`: list only the
 * oldest that many recordings held for annotation (their count is in `queue`).
 */
export function collectStatus(config: Config, catalog: Catalog, heldLimit?: number): StatusView {
  const snap = catalog.getKv<StateSnapshot>('state');
  const running = Boolean(snap && pidAlive(snap.pid));
  return {
    stationId: config.station.id,
    daemon: running ? 'running' : 'not running',
    snapshotAt: snap?.at ?? null,
    recorders: running ? snap!.recorders : [],
    queue: {
      ...catalog.counts(),
      bytesPending: catalog.bytesPending(),
      outbox: catalog.outboxSize(),
      waitingFor: running ? (snap!.queue.waitingFor ?? null) : null,
    },
    uploads: running ? snap!.uploads : [],
    disk: snap?.disk ?? null,
    links: running ? snap!.links : null,
    alarms: running ? snap!.alarms : [],
    needsAnnotation: catalog.heldRecordings(heldLimit),
  };
}

/** Remembers bytes done per recorder between renders, for a time-left estimate in --watch. */
export class EtaTracker {
  private readonly seen = new Map<string, { at: number; done: number; rate: number }>();

  estimate(r: RecorderStatus, now = systemClock.ms()): string {
    const key = `${r.volume}#${r.sessionId}`;
    const prev = this.seen.get(key);
    let rate = prev?.rate ?? 0;
    if (prev && now > prev.at && r.bytes.done >= prev.done)
      rate = prev.rate
        ? 0.7 * prev.rate + 0.3 * ((r.bytes.done - prev.done) / ((now - prev.at) / 1000))
        : (r.bytes.done - prev.done) / ((now - prev.at) / 1000);
    this.seen.set(key, { at: now, done: r.bytes.done, rate });
    if (r.state !== 'copying' || rate <= 0) return '';
    const s = Math.ceil((r.bytes.total - r.bytes.done) / rate);
    return `~${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} left`;
  }
}

export function renderStatus(v: StatusView, eta?: EtaTracker): string {
  const lines: string[] = [];
  const out = (s: string) => lines.push(s);
  out(`station ${v.stationId} — dockd ${v.daemon}${v.snapshotAt ? ` (state as of ${v.snapshotAt})` : ''}`);
  out('');
  out('recorders:');
  if (!v.recorders.length) out('  none docked');
  else {
    out(
      table([
        ['  BAY', 'RECORDER', 'OFFICER', 'STATE', 'FILES', 'PROGRESS', 'BYTES', 'NOTE'],
        ...v.recorders.map((r) => [
          `  ${r.bay ?? '-'}`,
          r.serial ?? r.name,
          r.officerId ? `${r.officerId}${r.officerName ? ` ${r.officerName}` : ''}` : '-',
          r.state,
          `${r.files.done}/${r.files.total}`,
          bar(r.bytes.done, r.bytes.total),
          `${bytes(r.bytes.done)}/${bytes(r.bytes.total)}`,
          [r.safeToUndock ? '可安全拔出 safe to undock' : '', eta?.estimate(r) ?? ''].filter(Boolean).join(' '),
        ]),
      ]),
    );
    for (const r of v.recorders) {
      if (r.error) out(`  ${r.name} ! ${r.error}`);
      for (const l of r.leftBehind ?? []) out(`  ${r.name} ! 未采集 left behind: ${l.path} — ${l.reason}`);
      if (r.files.settling)
        out(
          `  ${r.name}: ${r.files.settling} recording(s) still being written; copied once they stop changing (not safe to undock yet)`,
        );
      if (r.files.superseded)
        out(
          `  ${r.name}: ${r.files.superseded} recording(s) changed after they were copied; copied again as a new version (supersedes)`,
        );
      if (r.files.rejected || r.files.damaged || r.files.needsAnnotation || r.files.skipped) {
        out(
          `  ${r.name}: damaged ${r.files.damaged ?? 0}, empty (rejected) ${r.files.rejected}, needs annotation ${r.files.needsAnnotation}, skipped (not recordings) ${r.files.skipped}`,
        );
      }
    }
  }
  out('');
  out(
    `queue: ${
      FILE_STATES.filter((s) => v.queue[s])
        .map((s) => `${s} ${v.queue[s]}`)
        .join(', ') || 'empty'
    }; ${bytes(v.queue.bytesPending)} not yet uploaded; ${v.queue.outbox} event(s) waiting for the broker`,
  );
  if (v.queue.waitingFor) out(`  ${v.queue.waitingFor} (important recordings go at once)`);
  for (const u of v.uploads) out(`  uploading #${u.id} ${bar(u.offset, u.size)}`);
  if (v.disk)
    out(
      `disk: ${bytes(v.disk.freeBytes)} free of ${bytes(v.disk.totalBytes)} (${v.disk.path})${v.disk.lowWaterBytes !== undefined ? `; alarm below ${bytes(v.disk.lowWaterBytes)}, copies wait below ${bytes(v.disk.reserveBytes ?? 0)}` : ''}`,
    );
  if (v.links) out(`links: tus ${v.links.tus}, mqtt ${v.links.mqtt}`);
  out('');
  out(`alarms: ${v.alarms.length ? '' : 'none'}`);
  for (const a of v.alarms)
    out(
      `  [${a.code}] since ${a.since}: ${a.message}${a.acknowledged ? ` (acknowledged by ${a.acknowledgedBy} at ${a.acknowledgedAt})` : ''}`,
    );
  if (v.needsAnnotation.length) {
    const held = Math.max(v.queue['needs-annotation'], v.needsAnnotation.length);
    const listed = v.needsAnnotation.slice(0, HELD_LISTED);
    out('');
    out(`待补录 needs annotation (${held}):`);
    out(table(listed.map((f) => [`  #${f.id}`, (f.sha256 ?? '').slice(0, 12), f.filename, f.reason ?? ''])));
    if (held > listed.length)
      out(`  … and ${held - listed.length} more (the oldest are listed): dockctl files --state needs-annotation`);
    out(`  complete with: dockctl annotate ID --case-no X --purpose Y [--place P]`);
  }
  return lines.join('\n');
}

/** `dockctl status --watch`: re-renders every second on a cleared screen until Ctrl-C (then exit 0). */
export async function watchStatus(config: Config, catalog: Catalog, intervalMs = 1000): Promise<number> {
  const eta = new EtaTracker();
  const tty = process.stdout.isTTY;
  return new Promise<number>((resolve) => {
    const draw = () => {
      let text: string;
      try {
        text = renderStatus(collectStatus(config, catalog, HELD_LISTED), eta);
      } catch (e) {
        text = `dockctl: cannot read the catalog: ${(e as Error).message}`;
      }
      // Home, clear the screen, draw; a pipe gets plain frames separated by a blank line.
      process.stdout.write(
        `${tty ? '\x1b[H\x1b[2J' : ''}${text}\n${tty ? '' : '\n'}${tty ? `\n(every ${intervalMs / 1000} s; Ctrl-C to stop)` : ''}`,
      );
    };
    draw();
    const timer = setInterval(draw, intervalMs);
    const stop = () => {
      clearInterval(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (tty) process.stdout.write('\n');
      resolve(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
