/**
 * `dockctl export ID --to DIR` (调阅留痕): a verified copy of a stored recording with its metadata and audit entries,
 * and the export itself audited. Against a running daemon (real mosquitto and tus server) and its real catalog.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { canonicalJson, entryHash } from '../../daemon/store/audit.ts';
import { runDockctl } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/ports.ts';
import { useStation } from '../helpers/station.ts';
import { dockRecordings, type PlacedRecording } from '../helpers/recordings.ts';
import { type AuditJson, dockctlAudit, dockctlFiles, type PublicFile } from '../helpers/dockctlJson.ts';
import { freeBytes, mountTmpfs, unmount } from '../helpers/mounts.ts';
import { sendReceipt } from '../helpers/receipts.ts';
import { exists } from '../helpers/trees.ts';

const ST = 'test-st';
const TIMEOUT = 300_000;

interface Manifest {
  id: number;
  sha256: string;
  size: number;
  state: string;
  metadata: Record<string, string>;
  sourcePath: string;
  history: { to_state: string }[];
  sightings: { source_path: string }[];
  audit: AuditJson[];
  exportedAt: string;
  exportedBy: string;
}

describe('dockctl export', () => {
  const station = useStation({ prefix: 'dockd-export-' });

  async function setup(): Promise<{ configFile: string; storeDir: string; files: PlacedRecording[]; rows: PublicFile[] }> {
    const world = await station.world();
    await station.startDaemon(world.configFile);
    const { files } = await dockRecordings(world.mountRoot, 'REC1', [
      await sampleMedia('video', 1, 621),
      await sampleMedia('video', 1, 622),
    ]);
    await waitFor(
      'both uploaded',
      async () => {
        const rows = await dockctlFiles(world.configFile);
        return rows.length === 2 && rows.every((f) => f.state === 'uploaded');
      },
      120_000,
    );
    // One of them archived by HQ, so the export carries a full history.
    await sendReceipt(station.broker.url, ST, { sha256: files[0].sha256, ok: true });
    const rows = await waitFor(
      'the first archived',
      async () => {
        const r = await dockctlFiles(world.configFile);
        return r.find((f) => f.sha256 === files[0].sha256)?.state === 'archived' ? r : null;
      },
      120_000,
    );
    return { configFile: world.configFile, storeDir: world.storeDir, files, rows };
  }

  it(
    'copies the recording by id with a verified hash, writes .meta.json with metadata and audit entries, and audits the export',
    async () => {
      const { configFile, storeDir, files, rows } = await setup();
      const rec = files[0];
      const row = rows.find((f) => f.sha256 === rec.sha256)!;
      const out = path.join(station.dir, 'export', '案件 C-1'); // created on demand; spaces and CJK in the path are fine
      const auditBefore = await dockctlAudit(configFile);

      const r = await runDockctl(configFile, ['export', String(row.id), '--to', out]);
      expect(r.code, r.stderr).toBe(0);
      const target = path.join(out, `${row.id}-${rec.name}`);
      expect(r.stdout).toContain(target);
      expect(r.stdout).toContain(rec.sha256);

      // The copy is exact and read-only; the stored object is where it was.
      expect(await sha256OfFile(target)).toBe(rec.sha256);
      expect((await fs.stat(target)).size).toBe(rec.size);
      expect((await fs.stat(target)).mode & 0o222).toBe(0);
      expect(
        await sha256OfFile(path.join(storeDir, 'objects', 'sha256', rec.sha256.slice(0, 2), rec.sha256.slice(2, 4), rec.sha256)),
      ).toBe(rec.sha256);

      const manifest = JSON.parse(await fs.readFile(`${target}.meta.json`, 'utf8')) as Manifest;
      expect(manifest).toMatchObject({
        id: row.id,
        sha256: rec.sha256,
        size: rec.size,
        state: 'archived',
        sourcePath: rec.relPath,
      });
      expect(manifest.metadata).toMatchObject({
        filename: rec.name,
        sha256: rec.sha256,
        size: String(rec.size),
        stationId: ST,
        deviceSerial: '1234567',
        officerId: '012345',
        caseNo: 'C-1',
        purpose: '现场执法',
        place: '幸福路12号',
        collector: '张三',
        capturedAt: row.capturedAt,
      });
      expect(manifest.history.map((h) => h.to_state)).toEqual(
        expect.arrayContaining(['stored', 'ready', 'uploading', 'uploaded', 'archived']),
      );
      expect(manifest.sightings.map((s) => s.source_path)).toContain(rec.relPath);
      // Its audit entries: this recording's whole trail, the export included, each still matching its hash.
      const types = manifest.audit.map((a) => a.type);
      expect(types).toEqual(expect.arrayContaining(['file.ingested', 'file.uploaded', 'file.archived', 'file.exported']));
      expect(manifest.audit.every((a) => a.subject === rec.sha256)).toBe(true);
      for (const a of manifest.audit) expect(entryHash({ ...a, data: canonicalJson(a.data) })).toBe(a.hash);
      expect(manifest.audit.some((a) => a.subject === files[1].sha256)).toBe(false);

      // The export is in the audit trail, once, naming the copy.
      const exported = (await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported');
      expect(exported).toHaveLength(1);
      expect(exported[0]).toMatchObject({ subject: rec.sha256, data: { id: row.id, to: target } });
      expect(typeof exported[0].data.by).toBe('string');
      expect(exported[0].seq).toBeGreaterThan(Math.max(...auditBefore.map((e) => e.seq)));
      expect(manifest.audit.find((a) => a.type === 'file.exported')?.seq).toBe(exported[0].seq);
      expect(manifest.exportedAt).toBe(exported[0].at);

      // And the chain is still intact after an outside writer (dockctl) appended to it while the daemon runs.
      const verify = await runDockctl(configFile, ['verify', '--json']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'takes a unique sha256 prefix (and prints JSON), and refuses unknown ids',
    async () => {
      const { configFile, files, rows } = await setup();
      const rec = files[1]; // uploaded, not yet archived: exportable as well
      const row = rows.find((f) => f.sha256 === rec.sha256)!;
      const out = path.join(station.dir, 'by-prefix');
      const r = await runDockctl(configFile, ['export', rec.sha256.slice(0, 10), '--to', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout) as { file: string; metadata: string; sha256: string; auditSeq: number };
      expect(res.file).toBe(path.join(out, `${row.id}-${rec.name}`));
      expect(res.sha256).toBe(rec.sha256);
      expect(await sha256OfFile(res.file)).toBe(rec.sha256);
      expect((JSON.parse(await fs.readFile(res.metadata, 'utf8')) as Manifest).state).toBe('uploaded');
      const audit = await dockctlAudit(configFile);
      expect(audit.find((e) => e.seq === res.auditSeq)).toMatchObject({ type: 'file.exported', subject: rec.sha256 });

      const unknown = await runDockctl(configFile, ['export', '999', '--to', path.join(station.dir, 'nope')]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/no recording/);
      const badPrefix = await runDockctl(configFile, ['export', 'ffffffffffffffff', '--to', path.join(station.dir, 'nope')]);
      expect(badPrefix.code).not.toBe(0);
      expect(await exists(path.join(station.dir, 'nope'))).toBe(false);
      expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toHaveLength(1);
    },
    TIMEOUT,
  );

  it(
    'fails clearly and overwrites nothing when the file exists in DIR already',
    async () => {
      const { configFile, files, rows } = await setup();
      const rec = files[0];
      const row = rows.find((f) => f.sha256 === rec.sha256)!;
      const out = path.join(station.dir, 'taken');
      await fs.mkdir(out);
      const target = path.join(out, `${row.id}-${rec.name}`);
      const squatter = Buffer.from("someone else's file, not the recording\n");
      await fs.writeFile(target, squatter);

      const r = await runDockctl(configFile, ['export', String(row.id), '--to', out]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(target);
      expect(r.stderr).toMatch(/exists/);
      expect((await fs.readFile(target)).equals(squatter)).toBe(true);
      expect(await exists(`${target}.meta.json`)).toBe(false);
      expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toEqual([]);

      // A second export of the same recording into a DIR that already holds a first export fails the same way.
      const again = path.join(station.dir, 'again');
      expect((await runDockctl(configFile, ['export', String(row.id), '--to', again])).code).toBe(0);
      const first = await fs.readFile(`${path.join(again, `${row.id}-${rec.name}`)}.meta.json`);
      const second = await runDockctl(configFile, ['export', String(row.id), '--to', again]);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/exists/);
      expect((await fs.readFile(`${path.join(again, `${row.id}-${rec.name}`)}.meta.json`)).equals(first)).toBe(true);
      expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toHaveLength(1);
    },
    TIMEOUT,
  );

  it(
    'fails without leaving a copy or an audit entry when only the .meta.json name is taken',
    async () => {
      const { configFile, files, rows } = await setup();
      const rec = files[0];
      const row = rows.find((f) => f.sha256 === rec.sha256)!;
      const out = path.join(station.dir, 'meta-taken');
      await fs.mkdir(out);
      const target = path.join(out, `${row.id}-${rec.name}`);
      const squatter = Buffer.from('{"not":"the manifest"}');
      await fs.writeFile(`${target}.meta.json`, squatter);

      const r = await runDockctl(configFile, ['export', String(row.id), '--to', out]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/exists/);
      expect((await fs.readFile(`${target}.meta.json`)).equals(squatter)).toBe(true);
      // No half export: no copy without its manifest, and no audit entry claiming an export that did not complete.
      expect(await exists(target)).toBe(false);
      expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'fails in one line, leaves nothing in DIR and records no export, for /proc/x, a read-only dir and a full tmpfs',
    async () => {
      const { configFile, files, rows } = await setup();
      const rec = files[0];
      const row = rows.find((f) => f.sha256 === rec.sha256)!;
      const name = `${row.id}-${rec.name}`;
      const failed = async () => (await dockctlAudit(configFile)).filter((e) => e.type === 'file.export-failed');
      /** One line on stderr (`why`: the whole line, or a pattern), exit 1, no `file.exported` entry, one more `file.export-failed`. */
      async function refused(to: string, why: string | RegExp): Promise<void> {
        const before = (await failed()).length;
        const r = await runDockctl(configFile, ['export', String(row.id), '--to', to]);
        expect(r.code, r.stdout).toBe(1);
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^dockctl: /);
        if (typeof why === 'string') expect(lines[0]).toBe(why);
        else expect(lines[0]).toMatch(why);
        expect(r.stdout).toBe('');
        expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toEqual([]);
        const after = await failed();
        expect(after).toHaveLength(before + 1);
        expect(after.at(-1)).toMatchObject({
          subject: rec.sha256,
          data: { id: row.id, to: path.join(path.resolve(to), name), error: lines[0].slice('dockctl: '.length) },
        });
      }

      // /proc takes no new directory (Node's recursive mkdir used to spin there at full CPU for minutes).
      await refused(
        '/proc/x',
        'dockctl: export to /proc/x cannot be created: this file system takes no new entries there (ENOENT)',
      );
      await refused(
        '/proc/x/y/z',
        'dockctl: export to /proc/x/y/z cannot be created (at /proc/x): this file system takes no new entries there (ENOENT)',
      );

      // A read-only file system: neither into it nor into a new directory below it.
      const ro = path.join(station.dir, 'read-only');
      await mountTmpfs(ro, 1);
      station.onCleanup(() => unmount(ro));
      await promisify(execFile)('mount', ['-o', 'remount,ro', ro]);
      await refused(ro, `dockctl: ${path.join(ro, `${name}.meta.json`)} cannot be written: read-only file system (EROFS)`);
      await refused(
        path.join(ro, 'case'),
        `dockctl: export to ${path.join(ro, 'case')} cannot be created: read-only file system (EROFS)`,
      );
      expect(await fs.readdir(ro)).toEqual([]);

      // A full tmpfs: the copy does not fit. The partial copy goes; what was there stays.
      const full = path.join(station.dir, 'full');
      await mountTmpfs(full, 1);
      station.onCleanup(() => unmount(full));
      const filler = Buffer.alloc((await freeBytes(full)) - 16 * 1024, 7);
      await fs.writeFile(path.join(full, 'filler'), filler);
      expect(rec.size).toBeGreaterThan(16 * 1024);
      await refused(full, `dockctl: cannot export to ${full}: no space left on the device (ENOSPC)`);
      expect(await fs.readdir(full)).toEqual(['filler']);
      expect((await fs.readFile(path.join(full, 'filler'))).equals(filler)).toBe(true);

      // Room for the copy but not for its manifest: the copy goes too, and the audit entry is rolled back with it.
      await fs.rm(path.join(full, 'filler'));
      const pages = Math.ceil(rec.size / 4096) * 4096;
      expect(pages).toBeLessThan(await freeBytes(full));
      await fs.writeFile(path.join(full, 'filler'), Buffer.alloc((await freeBytes(full)) - pages, 7));
      await refused(
        full,
        `dockctl: ${path.join(full, `${name}.meta.json`)} cannot be written: no space left on the device (ENOSPC)`,
      );
      expect(await fs.readdir(full)).toEqual(['filler']);

      // With room again, the same export completes and is recorded once; the chain stays intact.
      await fs.rm(path.join(full, 'filler'));
      const ok = await runDockctl(configFile, ['export', String(row.id), '--to', full]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(await sha256OfFile(path.join(full, name))).toBe(rec.sha256);
      expect((await fs.readdir(full)).sort()).toEqual([name, `${name}.meta.json`]);
      expect((await dockctlAudit(configFile)).filter((e) => e.type === 'file.exported')).toHaveLength(1);
      const verify = await runDockctl(configFile, ['verify', '--json']);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    },
    TIMEOUT,
  );
});
