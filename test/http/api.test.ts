import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordingName, sampleMedia, sha256OfFile } from '../../scripts/media.ts';
import { DOCKCTL_BIN, DaemonProcess, makeWorld, runDockctl, tempDir } from '../helpers/daemon.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockVolume } from '../helpers/volume.ts';
import { getWithHost, metric, openEvents, parseMetrics, request } from './client.ts';

interface AuditRow { seq: number; type: string; subject: string | null; data: Record<string, unknown> }

async function auditRows(configFile: string): Promise<AuditRow[]> {
  const r = await runDockctl(configFile, ['audit', '--json']);
  if (r.code !== 0) throw new Error(`dockctl audit: ${r.stderr}`);
  return JSON.parse(r.stdout) as AuditRow[];
}

describe('the station API: state, catalog, annotation, alarms, live stream and metrics over HTTP', () => {
  let dir: string;
  let broker: Mosquitto;
  let tus: TusTestServer;
  let daemon: DaemonProcess | null = null;
  let port: number;
  let base: string;

  beforeEach(async () => {
    dir = await tempDir('dockd-http-');
    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
  });

  afterEach(async () => {
    await daemon?.kill9();
    daemon = null;
    await tus.stop();
    await broker.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** One clip with a complete sidecar (uploaded at once) and `held` clips without (needs-annotation). */
  async function dockSample(mountRoot: string, held: number, variant: number) {
    const complete = await sampleMedia('video', 2, variant);
    const heldClips = await Promise.all(Array.from({ length: held }, (_, i) => sampleMedia('video', 2, variant + 1 + i)));
    const names = { complete: recordingName({ at: '20261128083000', seq: 1 }), held: heldClips.map((_, i) => recordingName({ at: `2026112809${String(i).padStart(2, '0')}00`, seq: 2 + i })) };
    await dockVolume(mountRoot, 'REC1', async (v) => {
      await fs.mkdir(path.join(v, 'DCIM'));
      await fs.copyFile(complete, path.join(v, 'DCIM', names.complete));
      await fs.writeFile(path.join(v, 'DCIM', names.complete.replace('.mp4', '.meta.json')), JSON.stringify({ caseNo: 'C-1', purpose: '现场检查', place: '幸福路12号' }));
      for (const [i, clip] of heldClips.entries()) await fs.copyFile(clip, path.join(v, 'DCIM', names.held[i]));
    });
    return {
      complete: { sha256: await sha256OfFile(complete), size: (await fs.stat(complete)).size },
      held: await Promise.all(heldClips.map(async (c) => ({ sha256: await sha256OfFile(c), size: (await fs.stat(c)).size }))),
    };
  }

  it('serves the live picture and the catalog, annotates as dockctl does, acknowledges alarms, exports metrics, and answers bad requests with 4xx', async () => {
    const world = await makeWorld(dir, { tusEndpoint: tus.endpoint, mqttUrl: broker.url, extra: { http: { listen: `127.0.0.1:${port}` } } });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');

    const empty = await request(base, 'GET', '/api/state');
    expect(empty.status).toBe(200);
    expect(empty.json).toMatchObject({ stationId: 'test-st', recorders: [], links: { tus: 'ok' }, alarms: [], held: { count: 0 } });
    const page = await request(base, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('执法记录仪采集站');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");

    const events = await openEvents(`${base}/api/events`);
    await waitFor('the first live state on connect', () => events.states.length >= 1);
    expect(events.states[0]).toMatchObject({ stationId: 'test-st' });

    const sample = await dockSample(world.mountRoot, 1, 41);
    const heldSha = sample.held[0].sha256;
    const files = await waitFor('one upload and one held recording in /api/files', async () => {
      const r = await request(base, 'GET', '/api/files');
      const bySha = Object.fromEntries((r.json as { sha256: string; state: string }[]).map((f) => [f.sha256, f]));
      return bySha[sample.complete.sha256]?.state === 'uploaded' && bySha[heldSha]?.state === 'needs-annotation' ? r.json as { id: number; sha256: string; state: string }[] : null;
    }, 120_000);
    const heldId = files.find((f) => f.sha256 === heldSha)!.id;
    const uploadedId = files.find((f) => f.sha256 === sample.complete.sha256)!.id;
    const onlyHeld = await request(base, 'GET', '/api/files?state=needs-annotation');
    expect(onlyHeld.json.map((f: { id: number }) => f.id)).toEqual([heldId]);
    expect(onlyHeld.json[0]).toMatchObject({ caseNo: null, purpose: null, collector: '张三', officerId: '012345', reason: expect.stringMatching(/missing/) });

    // The recorder tile: identity and "safe to undock", in the snapshot and on the live stream.
    const state = await waitFor('the recorder done in /api/state', async () => {
      const r = await request(base, 'GET', '/api/state');
      return r.json.recorders[0]?.state === 'done' ? r.json : null;
    }, 60_000);
    expect(state.recorders[0]).toMatchObject({ serial: '1234567', officerId: '012345', officerName: '张三', safeToUndock: true, files: { total: 2, done: 2 } });
    expect(state.held).toMatchObject({ count: 1 });
    await waitFor('the live stream to show the recorder safe to undock', () => events.states.some((s) => s.recorders.some((r: { safeToUndock: boolean; serial: string }) => r.serial === '1234567' && r.safeToUndock)), 30_000);

    // Bad requests: each a clear 4xx JSON error; nothing changes and dockd keeps serving.
    const annotateUrl = `/api/files/${heldId}/annotate`;
    const bad: [string, string, Parameters<typeof request>[3], number, string][] = [
      ['GET', '/api/files?state=bogus', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/api/files?limit=0', {}, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: {} }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '   ' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 7, purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证', sha256: 'ff' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X'.repeat(501), purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: ['X-1', '取证'] }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { raw: '{"caseNo": "X-1", ', headers: { 'content-type': 'application/json' } }, 400, 'FST_ERR_CTP_INVALID_JSON_BODY'],
      ['POST', annotateUrl, { raw: `{"caseNo":"${'x'.repeat(70_000)}","purpose":"p"}`, headers: { 'content-type': 'application/json' } }, 413, 'FST_ERR_CTP_BODY_TOO_LARGE'],
      ['POST', annotateUrl, { raw: 'caseNo=X-1&purpose=p', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证' }, headers: { origin: 'http://evil.example' } }, 403, 'FORBIDDEN_ORIGIN'],
      ['POST', '/api/files/not-an-id!/annotate', { body: { caseNo: 'X-1', purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/files/987654321/annotate', { body: { caseNo: 'X-1', purpose: '取证' } }, 404, 'NOT_FOUND'],
      ['POST', `/api/files/${uploadedId}/annotate`, { body: { caseNo: 'X-1', purpose: '取证' } }, 409, 'NOT_ANNOTATABLE'],
      ['GET', '/api/files/987654321/thumbnail', {}, 404, 'NOT_FOUND'],
      ['POST', '/api/alarms/no-such-alarm/ack', {}, 404, 'NOT_FOUND'],
      ['POST', '/api/alarms/x/ack', { body: { by: 'me' } }, 400, 'INVALID_REQUEST'],
      ['GET', '/api/no-such-thing', {}, 404, 'NOT_FOUND'],
    ];
    for (const [method, url, opts, status, code] of bad) {
      const r = await request(base, method, url, opts);
      expect({ method, url: url.slice(0, 60), status: r.status, error: r.json?.error }).toEqual({ method, url: url.slice(0, 60), status, error: code });
      expect(typeof r.json.message).toBe('string');
    }
    // A loopback-only page answers only to loopback names (DNS rebinding).
    expect(await getWithHost(base, '/api/state', `rebind.example:${port}`)).toMatchObject({ status: 403, json: { error: 'FORBIDDEN_HOST' } });
    expect((await getWithHost(base, '/api/state', `localhost:${port}`)).status).toBe(200);
    expect((await request(base, 'GET', `/api/files/${heldId}`)).json).toMatchObject({ state: 'needs-annotation', caseNo: null, purpose: null });
    expect(tus.finished.map((u) => u.sha256)).toEqual([sample.complete.sha256]);

    // A thumbnail of the held recording: a JPEG grabbed by ffmpeg, cached under storage.dir/thumbs.
    const thumb = await fetch(`${base}/api/files/${heldId}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    const jpeg = Buffer.from(await thumb.arrayBuffer());
    expect([...jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect(existsSync(path.join(world.storeDir, 'thumbs', `${heldSha}.jpg`))).toBe(true);

    // Annotation over the API: the same rules as dockctl (partial → still held), then released and uploaded.
    const partial = await request(base, 'POST', annotateUrl, { body: { caseNo: 'C-9', purpose: '现场执法' } });
    expect(partial.status).toBe(200);
    expect(partial.json).toMatchObject({ ok: true, state: 'needs-annotation', missing: ['place'], file: { caseNo: 'C-9', place: null } });
    expect(tus.finished).toHaveLength(1);
    const full = await request(base, 'POST', `/api/files/${heldSha.slice(0, 12)}/annotate`, { body: { caseNo: 'C-9', purpose: '现场执法', place: '解放路1号' } });
    expect(full.status).toBe(200);
    expect(full.json).toMatchObject({ ok: true, state: 'ready', missing: [], file: { id: heldId, caseNo: 'C-9', purpose: '现场执法', place: '解放路1号', collector: '张三' } });
    await waitFor('the annotated recording uploaded', () => tus.finished.some((u) => u.sha256 === heldSha), 120_000);
    expect(tus.finished.find((u) => u.sha256 === heldSha)!.metadata).toMatchObject({ caseNo: 'C-9', purpose: '现场执法', place: '解放路1号', collector: '张三' });
    await waitFor('the catalog to call it uploaded', async () => (await request(base, 'GET', `/api/files/${heldId}`)).json.state === 'uploaded', 60_000);
    const annotated = (await auditRows(world.configFile)).filter((a) => a.type === 'file.annotated' && a.subject === heldSha);
    expect(annotated).toHaveLength(2);
    expect(annotated[1].data).toMatchObject({ by: 'station page@127.0.0.1', new: { caseNo: 'C-9', place: '解放路1号' }, old: { caseNo: 'C-9', place: null } });

    // An alarm (the broker goes away), acknowledged once, audited once, shown live; it clears when the broker returns.
    await broker.stop();
    const alarm = await waitFor('MQTT_UNREACHABLE in /api/alarms', async () => (await request(base, 'GET', '/api/alarms')).json.find((a: { code: string }) => a.code === 'MQTT_UNREACHABLE'), 60_000);
    expect(alarm).toMatchObject({ key: 'mqtt', acknowledged: false });
    const ack = await request(base, 'POST', '/api/alarms/mqtt/ack');
    expect(ack.status).toBe(200);
    expect(ack.json).toMatchObject({ ok: true, alreadyAcknowledged: false, alarm: { key: 'mqtt', acknowledged: true, acknowledgedBy: 'station page@127.0.0.1' } });
    const again = await request(base, 'POST', '/api/alarms/mqtt/ack', { body: {} });
    expect(again.json).toMatchObject({ ok: true, alreadyAcknowledged: true });
    expect((await request(base, 'GET', '/api/alarms')).json.find((a: { key: string }) => a.key === 'mqtt')).toMatchObject({ acknowledged: true, acknowledgedAt: expect.any(String) });
    await waitFor('the acknowledgement on the live stream', () => events.states.some((s) => s.alarms.some((a: { key: string; acknowledged: boolean }) => a.key === 'mqtt' && a.acknowledged)), 30_000);
    const acks = (await auditRows(world.configFile)).filter((a) => a.type === 'alarm.acknowledged');
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({ subject: 'mqtt', data: { code: 'MQTT_UNREACHABLE', by: 'station page@127.0.0.1' } });
    await broker.start(broker.port);
    await waitFor('the MQTT alarm to clear', async () => (await request(base, 'GET', '/api/alarms')).json.length === 0, 60_000);

    // /metrics: the Prometheus text format, with the station's numbers.
    const m = await fetch(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(await m.text());
    const bytesBoth = sample.complete.size + sample.held[0].size;
    expect(metric(samples, 'dockd_recorders_docked')).toBe(1);
    expect(metric(samples, 'dockd_recorders_safe_to_undock')).toBe(1);
    expect(metric(samples, 'dockd_ingested_files_total')).toBe(2);
    expect(metric(samples, 'dockd_ingested_bytes_total')).toBe(bytesBoth);
    expect(metric(samples, 'dockd_uploaded_bytes_total')).toBe(bytesBoth);
    expect(metric(samples, 'dockd_upload_sent_bytes_total')).toBeGreaterThanOrEqual(bytesBoth);
    expect(metric(samples, 'dockd_queue_files', { state: 'uploaded' })).toBe(2);
    expect(metric(samples, 'dockd_queue_files', { state: 'needs-annotation' })).toBe(0);
    expect(metric(samples, 'dockd_awaiting_receipt_files')).toBe(2);
    expect(metric(samples, 'dockd_queue_pending_bytes')).toBe(0);
    expect(metric(samples, 'dockd_upload_throughput_bytes_per_second')).toBeGreaterThanOrEqual(0);
    expect(metric(samples, 'dockd_alarms_unacknowledged')).toBe(0);
    expect(metric(samples, 'dockd_disk_free_bytes')).toBeGreaterThan(0);
    expect(metric(samples, 'dockd_disk_low_water_bytes')).toBe(1073741824);
    expect(metric(samples, 'dockd_link_up', { link: 'tus' })).toBe(1);
    expect(types).toMatchObject({ dockd_ingested_bytes_total: 'counter', dockd_uploaded_bytes_total: 'counter', dockd_queue_files: 'gauge', dockd_alarms_active: 'gauge' });

    // A recording with no capture time at all (plain name, no creation_time): the API takes it as station wall time.
    const noTime = await sampleMedia('video-faststart', 2, 45);
    await dockVolume(world.mountRoot, 'REC2', async (v) => { await fs.copyFile(noTime, path.join(v, 'clip.mp4')); });
    const timeless = await waitFor('the timeless recording held', async () => (await request(base, 'GET', '/api/files?state=needs-annotation')).json.find((f: { filename: string }) => f.filename === 'clip.mp4'), 120_000);
    expect(timeless).toMatchObject({ capturedAt: null, reason: expect.stringMatching(/采集时间 capture time/) });
    const timeBody = { caseNo: 'C-10', purpose: '补录', place: '解放路1号', collector: '王五' };
    const badTime = await request(base, 'POST', `/api/files/${timeless.id}/annotate`, { body: { ...timeBody, capturedAt: 'yesterday at nine' } });
    expect(badTime).toMatchObject({ status: 400, json: { error: 'INVALID', message: expect.stringMatching(/ISO 8601/) } });
    const timed = await request(base, 'POST', `/api/files/${timeless.id}/annotate`, { body: { ...timeBody, capturedAt: '2026-11-28T09:30' } });
    expect(timed.status).toBe(200);
    expect(timed.json).toMatchObject({ state: 'ready', file: { capturedAt: '2026-11-28T09:30:00+08:00', collector: '王五' } });
    await waitFor('the timeless recording uploaded with its new capture time', () => tus.finished.find((u) => u.metadata.capturedAt === '2026-11-28T09:30:00+08:00'), 120_000);

    // A clean stop with a browser still connected to the live stream.
    expect(await daemon.stop()).toBe(0);
    await events.ended;
    events.close();
  }, 400_000);

  it('dockctl status --watch re-renders the status every second until Ctrl-C', async () => {
    const world = await makeWorld(dir, { tusEndpoint: tus.endpoint, mqttUrl: broker.url, extra: { http: { listen: `127.0.0.1:${port}` } } });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const watch = spawn(process.execPath, [DOCKCTL_BIN, '--config', world.configFile, 'status', '--watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout!.on('data', (d) => { out += d; });
    const exited = new Promise<number | null>((resolve) => watch.once('exit', (code) => resolve(code)));
    try {
      await waitFor('two frames', () => out.split('station test-st — dockd running').length - 1 >= 2, 60_000);
      await dockSample(world.mountRoot, 0, 71);
      await waitFor('a later frame showing the docked recorder', () => /REC1 +1234567 +012345 张三 +done/.test(out), 120_000);
    } finally { watch.kill('SIGINT'); }
    expect(await exited).toBe(0);
    expect(out).toContain('可安全拔出 safe to undock');
    const both = await runDockctl(world.configFile, ['status', '--watch', '--json']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--watch and --json/);
  }, 300_000);

  it('needs the admin password for changes when listening beyond loopback, and locks out after 5 wrong ones', async () => {
    const password = 'Zhan-san 采集站 #7';
    const pwFile = path.join(dir, 'admin.pw');
    await fs.writeFile(pwFile, `${password}\n`);
    const world = await makeWorld(dir, { tusEndpoint: tus.endpoint, mqttUrl: broker.url, extra: { http: { listen: `0.0.0.0:${port}`, adminPassword: { file: pwFile } } } });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const listening = await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    expect(listening.auth).toBe('admin password for changes');

    const sample = await dockSample(world.mountRoot, 2, 51);
    const held = await waitFor('two held recordings', async () => {
      const r = await request(base, 'GET', '/api/files?state=needs-annotation');
      return r.json.length === 2 ? r.json as { id: number; sha256: string }[] : null;
    }, 120_000);
    const [first, second] = held;

    // Reading stays open; changes do not.
    expect((await request(base, 'GET', '/api/state')).status).toBe(200);
    expect((await request(base, 'GET', '/api/session')).json).toMatchObject({ required: true, configured: true, authenticated: false, lockedForSeconds: 0 });
    const body = { caseNo: 'C-20', purpose: '调查取证', place: '建设路3号' };
    const anonymous = await request(base, 'POST', `/api/files/${first.id}/annotate`, { body });
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.error).toBe('AUTH_REQUIRED');
    expect((await request(base, 'POST', '/api/login', { body: {} })).status).toBe(400);

    const wrong = await request(base, 'POST', '/api/login', { body: { password: 'zhan-san' } });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ error: 'WRONG_PASSWORD', remaining: 4 });
    const login = await request(base, 'POST', '/api/login', { body: { password } });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^dockd_session=[A-Za-z0-9_-]{40,}; Path=\/; HttpOnly; SameSite=Strict/);
    const session = cookie.split(';')[0];
    expect((await request(base, 'GET', '/api/session', { headers: { cookie: session } })).json.authenticated).toBe(true);

    const withSession = await request(base, 'POST', `/api/files/${first.id}/annotate`, { body, headers: { cookie: session } });
    expect(withSession.status).toBe(200);
    expect(withSession.json).toMatchObject({ state: 'ready' });
    const forged = await request(base, 'POST', `/api/files/${second.id}/annotate`, { body, headers: { cookie: 'dockd_session=not-a-session' } });
    expect(forged.status).toBe(401);
    const basic = (p: string) => ({ authorization: `Basic ${Buffer.from(`admin:${p}`).toString('base64')}` });
    const withBasic = await request(base, 'POST', `/api/files/${second.id}/annotate`, { body: { ...body, caseNo: 'C-21' }, headers: basic(password) });
    expect(withBasic.status).toBe(200);
    await waitFor('both annotated recordings uploaded', () => held.every((h) => tus.finished.some((u) => u.sha256 === h.sha256)), 120_000);
    expect(tus.finished.find((u) => u.sha256 === second.sha256)!.metadata).toMatchObject({ caseNo: 'C-21' });
    const annotated = (await auditRows(world.configFile)).filter((a) => a.type === 'file.annotated');
    expect(annotated.map((a) => a.data.by)).toEqual(['admin@127.0.0.1', 'admin@127.0.0.1']);

    // Five wrong passwords in a row (a right one reset the count): locked, and then even the right one is refused.
    for (let i = 1; i <= 4; i++) {
      const r = await request(base, 'POST', '/api/login', { body: { password: `guess-${i}` } });
      expect(r.status).toBe(401);
      expect(r.json.remaining).toBe(5 - i);
    }
    const fifth = await request(base, 'POST', '/api/alarms/x/ack', { headers: basic('guess-5') });
    expect(fifth.status).toBe(429);
    expect(fifth.json.error).toBe('LOCKED_OUT');
    expect(Number(fifth.headers.get('retry-after'))).toBeGreaterThan(290);
    const rightButLocked = await request(base, 'POST', '/api/login', { body: { password } });
    expect(rightButLocked.status).toBe(429);
    expect(rightButLocked.json.retryAfterSeconds).toBeGreaterThan(0);
    expect((await request(base, 'POST', '/api/alarms/x/ack', { headers: basic(password) })).status).toBe(429);
    expect((await request(base, 'GET', '/api/session')).json.lockedForSeconds).toBeGreaterThan(0);
    const trail = await auditRows(world.configFile);
    expect(trail.filter((a) => a.type === 'http.lockout')).toHaveLength(1);
    expect(trail.filter((a) => a.type === 'http.login-failed')).toHaveLength(5);
    expect(trail.filter((a) => a.type === 'http.login')).toHaveLength(1);

    // The password is never logged, and the config keeps only its hash.
    const logs = JSON.stringify(daemon.logs) + daemon.stderr;
    expect(logs).not.toContain(password);
    expect(logs).not.toContain('guess-5');
    expect(sample.held).toHaveLength(2);
    expect(await daemon.stop()).toBe(0);
  }, 400_000);
});
