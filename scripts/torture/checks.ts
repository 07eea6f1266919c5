import fs from 'node:fs/promises';
import path from 'node:path';
import { runDockctl } from '../../test/helpers/daemon.ts';
import { sha256OfFile } from '../media.ts';
import type { TortureClip, Wave } from './clips.ts';
import type { TortureStation } from './station.ts';

export interface Figures {
  clips: number;
  clipBytes: number;
  /** Body bytes HQ's tus store took in, over every request of the run. */
  hqBytes: number;
  /** Bytes the proxy forwarded to HQ (requests with their headers). */
  wireBytes: number;
  /** Uploads HQ holds that never finished (created, then abandoned by a restart), and their bytes. */
  orphans: number;
  orphanBytes: number;
}

const AT_HQ = new Set(['uploaded', 'archived']);
const LIST_AT_MOST = 12;

function listed<T>(items: T[], show: (t: T) => string): string {
  const shown = items.slice(0, LIST_AT_MOST).map(show).join('; ');
  return items.length > LIST_AT_MOST ? `${shown}; … and ${items.length - LIST_AT_MOST} more` : shown;
}

/**
 * What must hold once dockd has finished, after every kill: each clip at HQ exactly once and byte for byte what the
 * recorder held, every catalog row at HQ (none stuck half-way), `dockctl verify` clean, no temp files left.
 * Returns the failures in words (empty: all good) and the byte counts.
 */
export async function finalChecks(station: TortureStation, waves: Wave[]): Promise<{ failures: string[]; figures: Figures }> {
  const failures: string[] = [];
  const clips = waves.flatMap((w) => w.clips);
  const bySha = new Map<string, TortureClip>(clips.map((c) => [c.sha256, c]));
  const { hq } = station;

  // HQ: exactly once each, nothing else, nothing refused.
  const finishedBySha = new Map<string, typeof hq.finished>();
  for (const u of hq.finished) finishedBySha.set(u.sha256, [...(finishedBySha.get(u.sha256) ?? []), u]);
  const missing = clips.filter((c) => !finishedBySha.has(c.sha256));
  if (missing.length) {
    failures.push(
      `${missing.length} clip(s) never reached HQ: ${listed(missing, (c) => `${c.name} (volume ${c.wave}${waves[c.wave - 1]?.undocked ? ', undocked after dockd said safe to undock' : ''})`)}`,
    );
  }
  const twice = [...finishedBySha].filter(([, us]) => us.length > 1);
  if (twice.length)
    failures.push(
      `${twice.length} clip(s) reached HQ more than once: ${listed(twice, ([sha, us]) => `${bySha.get(sha)?.name ?? sha} ×${us.length}`)}`,
    );
  const strangers = hq.finished.filter((u) => !bySha.has(u.sha256));
  if (strangers.length)
    failures.push(
      `HQ holds ${strangers.length} upload(s) that are none of the clips: ${listed(strangers, (u) => `${u.metadata.filename} ${u.sha256.slice(0, 12)}`)}`,
    );
  if (hq.refused.length)
    failures.push(
      `HQ refused ${hq.refused.length} upload(s) whose bytes did not hash to their sha256: ${listed(hq.refused, (id) => id)}`,
    );

  // Byte for byte: HQ's stored file re-hashed here against the clip as it was made, and under its own name.
  for (const u of hq.finished) {
    const clip = bySha.get(u.sha256);
    if (!clip) continue;
    const file = path.join(station.hqDir, u.id);
    const [sha256, size] = await Promise.all([sha256OfFile(file), fs.stat(file).then((s) => s.size)]);
    if (sha256 !== clip.sha256 || size !== clip.size)
      failures.push(
        `HQ's copy of ${clip.name} differs from the clip: ${size} bytes hashing to ${sha256}, the clip is ${clip.size} bytes, ${clip.sha256}`,
      );
    if (u.metadata.filename !== clip.name) failures.push(`HQ holds ${clip.name} under the name ${u.metadata.filename}`);
    // Every clip is clean: a kill must never leave one judged damaged.
    if (u.metadata.integrity && u.metadata.integrity !== 'ok')
      failures.push(`HQ got ${clip.name} marked integrity=${u.metadata.integrity}: ${u.metadata.integrityNote ?? ''}`);
  }

  // Catalog: one row per clip, every row at HQ.
  const rows = station.catalogRows();
  const stuck = rows.filter((r) => !AT_HQ.has(r.state));
  if (stuck.length)
    failures.push(`${stuck.length} catalog row(s) not uploaded: ${listed(stuck, (r) => `#${r.id} ${r.filename} ${r.state}`)}`);
  const rowsBySha = new Map<string, number>();
  for (const r of rows) if (r.sha256) rowsBySha.set(r.sha256, (rowsBySha.get(r.sha256) ?? 0) + 1);
  const unrecorded = clips.filter((c) => !rowsBySha.has(c.sha256));
  if (unrecorded.length) failures.push(`${unrecorded.length} clip(s) have no catalog row: ${listed(unrecorded, (c) => c.name)}`);
  const extra = rows.filter((r) => r.sha256 && !bySha.has(r.sha256));
  if (extra.length)
    failures.push(
      `${extra.length} catalog row(s) are none of the clips: ${listed(extra, (r) => `#${r.id} ${r.filename} ${r.sha256?.slice(0, 12)}`)}`,
    );

  const verify = await runDockctl(station.world.configFile, ['verify']);
  if (verify.code !== 0)
    failures.push(
      `dockctl verify exit ${verify.code}: ${(verify.stdout + verify.stderr).trim().split('\n').slice(0, 8).join(' | ')}`,
    );

  const temps = await fs.readdir(path.join(station.world.storeDir, 'tmp')).catch(() => [] as string[]);
  if (temps.length) failures.push(`${temps.length} temp file(s) left in the store: ${listed(temps, (t) => t)}`);

  // Uploads HQ created but that never finished: @tus/file-store keeps <id> (the bytes) beside <id>.json.
  const finishedIds = new Set(hq.finished.map((u) => u.id));
  let orphans = 0;
  let orphanBytes = 0;
  for (const name of await fs.readdir(station.hqDir)) {
    if (name.endsWith('.json') || finishedIds.has(name)) continue;
    orphans++;
    orphanBytes += (await fs.stat(path.join(station.hqDir, name))).size;
  }

  return {
    failures,
    figures: {
      clips: clips.length,
      clipBytes: clips.reduce((n, c) => n + c.size, 0),
      hqBytes: hq.bytesReceived,
      wireBytes: station.proxy.bytesUp,
      orphans,
      orphanBytes,
    },
  };
}
