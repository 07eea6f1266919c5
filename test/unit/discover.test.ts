import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { discover, SIDECAR_SUFFIX } from '../../daemon/recorder/discover.ts';

/** Every entry under `root` (names as raw bytes, so invalid UTF-8 works too) with type, size, mode, mtime and content hash. */
function fingerprint(root: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (abs: Buffer, rel: string) => {
    const st = lstatSync(abs);
    if (st.isSymbolicLink()) {
      out.set(rel, `link ${readlinkSync(abs, { encoding: 'buffer' }).toString('hex')} ${st.mtimeMs}`);
      return;
    }
    if (st.isDirectory()) {
      out.set(rel, `dir ${st.mode} ${st.mtimeMs}`);
      for (const n of readdirSync(abs, { encoding: 'buffer' }))
        walk(Buffer.concat([abs, Buffer.from('/'), n]), `${rel}/${n.toString('hex')}`);
      return;
    }
    if (st.isFile()) {
      out.set(rel, `file ${st.size} ${st.mode} ${st.mtimeMs} ${createHash('sha256').update(readFileSync(abs)).digest('hex')}`);
      return;
    }
    out.set(rel, `other ${st.mode}`);
  };
  walk(root, '.');
  return out;
}

describe('discover on hostile recorder volumes', () => {
  let dir: string;
  let volume: string;
  let outside: string;
  const servers: net.Server[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dockd-discover-'));
    volume = path.join(dir, 'REC1');
    outside = path.join(dir, 'outside');
    await fs.mkdir(volume);
    await fs.mkdir(outside);
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    await fs.rm(dir, { recursive: true, force: true });
  });

  const put = async (rel: string, content: string | Buffer = 'x') => {
    await fs.mkdir(path.dirname(path.join(volume, rel)), { recursive: true });
    await fs.writeFile(path.join(volume, rel), content);
  };

  it('lists recordings in nested directories with size, mtime and kind, and skips other extensions with a reason', async () => {
    await put('DCIM/100MEDIA/012345_1234567_20261128093000_0001.mp4', 'video bytes');
    await put('DCIM/100MEDIA/012345_1234567_20261128094000_0002IMP.JPG', 'jpg');
    await put('RECORD/2026/11/28/a.wav', 'w'.repeat(1000));
    await put('notes.txt', 'hello');
    await put('README', 'no extension');
    await put('DCIM/clip.mp4.bak', 'b');
    const { recordings, skipped } = await discover(volume);
    expect(recordings.map((r) => r.relPath)).toEqual([
      'DCIM/100MEDIA/012345_1234567_20261128093000_0001.mp4',
      'DCIM/100MEDIA/012345_1234567_20261128094000_0002IMP.JPG',
      'RECORD/2026/11/28/a.wav',
    ]);
    const wav = recordings[2];
    const st = statSync(path.join(volume, 'RECORD/2026/11/28/a.wav'));
    expect(wav).toEqual({
      relPath: 'RECORD/2026/11/28/a.wav',
      relPathHex: null,
      absPath: path.join(volume, 'RECORD/2026/11/28/a.wav'),
      size: 1000,
      mtimeMs: Math.trunc(st.mtimeMs),
      kind: 'audio',
    });
    expect(recordings.map((r) => r.kind)).toEqual(['video', 'photo', 'audio']);
    expect(skipped).toEqual(
      expect.arrayContaining([
        { relPath: 'notes.txt', reason: 'not a recording (extension .txt)' },
        { relPath: 'README', reason: 'not a recording (extension none)' },
        { relPath: 'DCIM/clip.mp4.bak', reason: 'not a recording (extension .bak)' },
      ]),
    );
    expect(skipped).toHaveLength(3);
  });

  it('skips symbolic links (to files and directories, inside and outside the volume, dangling) and never follows them', async () => {
    await fs.writeFile(path.join(outside, 'secret.mp4'), 'not from this recorder');
    await fs.mkdir(path.join(outside, 'tree'));
    await fs.writeFile(path.join(outside, 'tree', 'evil.mp4'), 'evil');
    await put('DCIM/real.mp4', 'real');
    await fs.symlink(path.join(outside, 'secret.mp4'), path.join(volume, 'escape.mp4'));
    await fs.symlink('../outside/tree', path.join(volume, 'escape-dir'));
    await fs.symlink('DCIM/real.mp4', path.join(volume, 'inside.mp4'));
    await fs.symlink('DCIM', path.join(volume, 'loop'));
    await fs.symlink('/', path.join(volume, 'DCIM', 'root'));
    await fs.symlink(path.join(dir, 'does-not-exist.mp4'), path.join(volume, 'dangling.mp4'));
    const before = fingerprint(Buffer.from(volume));

    const { recordings, skipped } = await discover(volume);

    expect(recordings.map((r) => r.relPath)).toEqual(['DCIM/real.mp4']);
    for (const r of recordings) expect(String(r.absPath).startsWith(`${volume}/`)).toBe(true);
    const links = ['escape.mp4', 'escape-dir', 'inside.mp4', 'loop', 'DCIM/root', 'dangling.mp4'];
    for (const l of links) expect(skipped).toContainEqual({ relPath: l, reason: 'symbolic link (never followed)' });
    expect(skipped).toHaveLength(links.length);
    expect(JSON.stringify(skipped)).not.toContain('evil');
    expect(fingerprint(Buffer.from(volume))).toEqual(before);
  });

  it('skips a fifo without opening it (no hang), and a socket', async () => {
    await put('ok.mp4', 'ok');
    execFileSync('mkfifo', [path.join(volume, 'pipe.mp4')]);
    const sock = path.join(volume, 'sock.mp4');
    const server = net.createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const { recordings, skipped } = await discover(volume);
    expect(recordings.map((r) => r.relPath)).toEqual(['ok.mp4']);
    expect(skipped).toEqual(
      expect.arrayContaining([
        { relPath: 'pipe.mp4', reason: 'not a regular file (device, fifo or socket)' },
        { relPath: 'sock.mp4', reason: 'not a regular file (device, fifo or socket)' },
      ]),
    );
    expect(skipped).toHaveLength(2);
  });

  it('pairs a sidecar with the recording of the same base name and reports orphan sidecars', async () => {
    await put('DCIM/A.mp4', 'a');
    await put('DCIM/A.meta.json', '{"caseNo":"C-1"}');
    await put('DCIM/B.MP4', 'b');
    await put('DCIM/B.META.JSON', '{}'); // upper-case suffix is still a sidecar
    await put('DCIM/C.jpg', 'c'); // no sidecar
    await put('DCIM/D.meta.json', '{}'); // no recording D.*
    await put('OTHER/A.meta.json', '{}'); // a sidecar only pairs within its own directory
    await put('DCIM/c.meta.json', '{}'); // base names are compared exactly
    const { recordings, skipped } = await discover(volume);
    const byPath = Object.fromEntries(recordings.map((r) => [r.relPath, r]));
    expect(Object.keys(byPath).sort()).toEqual(['DCIM/A.mp4', 'DCIM/B.MP4', 'DCIM/C.jpg']);
    expect(byPath['DCIM/A.mp4'].sidecarPath).toBe(path.join(volume, 'DCIM/A.meta.json'));
    expect(byPath['DCIM/B.MP4'].sidecarPath).toBe(path.join(volume, 'DCIM/B.META.JSON'));
    expect(byPath['DCIM/C.jpg']).not.toHaveProperty('sidecarPath');
    expect(skipped.sort((a, b) => (a.relPath < b.relPath ? -1 : 1))).toEqual([
      { relPath: 'DCIM/D.meta.json', reason: 'sidecar without a recording of the same name' },
      { relPath: 'DCIM/c.meta.json', reason: 'sidecar without a recording of the same name' },
      { relPath: 'OTHER/A.meta.json', reason: 'sidecar without a recording of the same name' },
    ]);
    expect(recordings.some((r) => r.relPath.endsWith(SIDECAR_SUFFIX))).toBe(false);
  });

  it('does not use a symlinked sidecar (it is skipped as a link instead)', async () => {
    await fs.writeFile(path.join(outside, 'planted.json'), '{"caseNo":"FORGED"}');
    await put('A.mp4', 'a');
    await fs.symlink(path.join(outside, 'planted.json'), path.join(volume, 'A.meta.json'));
    const { recordings, skipped } = await discover(volume);
    expect(recordings).toHaveLength(1);
    expect(recordings[0]).not.toHaveProperty('sidecarPath');
    expect(skipped).toEqual([{ relPath: 'A.meta.json', reason: 'symbolic link (never followed)' }]);
  });

  it('treats a directory with a recording extension as a directory, and walks it', async () => {
    await put('folder.mp4/inner.jpg', 'j');
    await put('X.meta.json/Y.mp4', 'y');
    const { recordings, skipped } = await discover(volume);
    expect(recordings.map((r) => r.relPath)).toEqual(['X.meta.json/Y.mp4', 'folder.mp4/inner.jpg']);
    expect(skipped).toEqual([]);
  });

  it('lists zero-byte recordings (the probe decides about them later)', async () => {
    await put('empty.mp4', '');
    await put('DCIM/empty.jpg', '');
    const { recordings } = await discover(volume);
    expect(recordings.map((r) => [r.relPath, r.size, r.kind])).toEqual([
      ['DCIM/empty.jpg', 0, 'photo'],
      ['empty.mp4', 0, 'video'],
    ]);
  });

  it('takes recordings whose names are not valid UTF-8: shown escaped, kept as raw bytes, opened by those bytes', async () => {
    await put('DCIM/good.mp4', 'g');
    const vol = Buffer.from(volume);
    const bad = Buffer.from([0xff, 0xfe, 0x5f, 0x30, 0x30, 0x30, 0x31, 0x2e, 0x4d, 0x50, 0x34]); // "\xff\xfe_0001.MP4"
    const badGbk = Buffer.concat([Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]), Buffer.from('.mp4')]); // "张三" in GBK
    writeFileSync(Buffer.concat([vol, Buffer.from('/'), bad]), 'bad');
    execFileSync('mkdir', [Buffer.concat([vol, Buffer.from('/'), Buffer.from([0xb2, 0xe2])]).toString('latin1')], {
      encoding: 'latin1',
    } as never);
    writeFileSync(Buffer.concat([vol, Buffer.from('/DCIM/'), badGbk]), 'gbk');
    const before = fingerprint(vol);

    const { recordings, skipped, leftBehind } = await discover(volume);

    expect(skipped).toEqual([]);
    expect(leftBehind).toEqual([]);
    const byPath = Object.fromEntries(recordings.map((r) => [r.relPath, r]));
    expect(Object.keys(byPath).sort()).toEqual(['DCIM/good.mp4', 'DCIM/\\xd5\\xc5\\xc8\\xfd.mp4', '\\xff\\xfe_0001.MP4'].sort());
    expect(byPath['\\xff\\xfe_0001.MP4'].relPathHex).toBe(bad.toString('hex'));
    expect(byPath['DCIM/\\xd5\\xc5\\xc8\\xfd.mp4'].relPathHex).toBe(
      Buffer.concat([Buffer.from('DCIM/'), badGbk]).toString('hex'),
    );
    expect(byPath['DCIM/good.mp4'].relPathHex).toBeNull();
    // The raw path opens the very file.
    expect(readFileSync(byPath['\\xff\\xfe_0001.MP4'].absPath).toString()).toBe('bad');
    expect(readFileSync(byPath['DCIM/\\xd5\\xc5\\xc8\\xfd.mp4'].absPath).toString()).toBe('gbk');
    expect(fingerprint(vol)).toEqual(before);
  });

  it('takes names with control characters, escaped (never a raw newline or bell in a path shown to people)', async () => {
    await put('line\nbreak.mp4', 'n');
    await put('tab\there.jpg', 't');
    await put('bell\u0007.wav', 'b');
    await put('del\u007f.mp4', 'd');
    await put('back\\slash\n.mp4', 's');
    await put('ok.mp4', 'o');
    const { recordings, skipped } = await discover(volume);
    expect(skipped).toEqual([]);
    expect(recordings.map((r) => r.relPath).sort()).toEqual(
      ['bell\\x07.wav', 'del\\x7f.mp4', 'line\\x0abreak.mp4', 'tab\\x09here.jpg', 'back\\x5cslash\\x0a.mp4', 'ok.mp4'].sort(),
    );
    for (const r of recordings) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this checks
      expect(r.relPath).not.toMatch(/[\n\t\u0007\u007f]/);
      expect(readFileSync(r.absPath).length).toBe(1);
    }
  });

  it('walks unicode (Chinese, emoji) names that are valid UTF-8', async () => {
    await put('录像/张三_现场.mp4', 'z');
    await put('📷.jpg', 'p');
    const { recordings, skipped } = await discover(volume);
    expect(recordings.map((r) => r.relPath).sort()).toEqual(['录像/张三_现场.mp4', '📷.jpg'].sort());
    expect(skipped).toEqual([]);
  });

  it('walks any depth (40 levels) and takes what is there', async () => {
    const levels = Array.from({ length: 40 }, (_, i) => `d${i + 1}`);
    await put(`${levels.join('/')}/deep40.mp4`, 'deep');
    const { recordings, skipped, leftBehind } = await discover(volume);
    expect(recordings.map((r) => r.relPath)).toEqual([`${levels.join('/')}/deep40.mp4`]);
    expect(skipped).toEqual([]);
    expect(leftBehind).toEqual([]);
  });

  it('guards against a loop by device and inode (a bind mount of the volume inside itself)', async () => {
    await put('DCIM/a.mp4', 'a');
    await fs.mkdir(path.join(volume, 'DCIM', 'loop'));
    execFileSync('mount', ['--bind', volume, path.join(volume, 'DCIM', 'loop')]);
    try {
      const { recordings, skipped, leftBehind } = await discover(volume);
      expect(recordings.map((r) => r.relPath)).toEqual(['DCIM/a.mp4']);
      expect(skipped).toEqual([{ relPath: 'DCIM/loop', reason: 'directory already walked (a loop: bind mount or hard link)' }]);
      expect(leftBehind).toEqual([]);
    } finally {
      execFileSync('umount', [path.join(volume, 'DCIM', 'loop')]);
    }
  });

  it('counts every skipped entry but names at most 1000 (a volume of 100,000 stray files)', async () => {
    const junk = path.join(volume, 'junk');
    await fs.mkdir(junk);
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(junk, `f${i}.txt`), '');
    await put('zz/last.mp4', 'x');
    const found = await discover(volume);
    expect(found.skippedCount).toBe(3000);
    expect(found.skipped).toHaveLength(1000);
    expect(found.recordings.map((r) => r.relPath)).toEqual(['zz/last.mp4']);
  });

  it('reads nothing but metadata and writes nothing (the volume is unchanged)', async () => {
    await put('DCIM/A.mp4', 'a'.repeat(5000));
    await put('DCIM/A.meta.json', '{}');
    await put('junk.bin', 'j');
    await fs.utimes(path.join(volume, 'DCIM', 'A.mp4'), new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
    const before = fingerprint(Buffer.from(volume));
    const first = await discover(volume);
    const second = await discover(volume);
    expect(second).toEqual(first);
    expect(fingerprint(Buffer.from(volume))).toEqual(before);
    expect(first.recordings[0].mtimeMs).toBe(Date.parse('2026-01-01T00:00:00Z'));
  });

  it('fails (rather than returning nothing) when the volume itself is gone', async () => {
    await expect(discover(path.join(dir, 'unplugged'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('does not descend into another filesystem mounted inside the tree (checked on /dev, whose pts/shm are mounts)', async () => {
    const root = '/dev';
    const rootDev = statSync(root).dev;
    const mounts = readdirSync(root).filter((n) => {
      const st = lstatSync(path.join(root, n));
      return st.isDirectory() && st.dev !== rootDev;
    });
    expect(mounts.length).toBeGreaterThan(0);
    const { recordings, skipped } = await discover(root);
    for (const m of mounts)
      expect(skipped).toContainEqual({ relPath: m, reason: 'another filesystem mounted inside the volume (not entered)' });
    for (const r of recordings) expect(mounts.some((m) => r.relPath.startsWith(`${m}/`))).toBe(false);
    for (const s of skipped) expect(mounts.some((m) => s.relPath.startsWith(`${m}/`))).toBe(false);
  });
});
