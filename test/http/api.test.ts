import { spawn } from 'node:child_process';
import net from 'node:net';
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
import { getWithHost, login, metric, openEvents, parseMetrics, request, type RequestOptions } from './client.ts';
import { addUser, beyondLoopbackAddress } from './stationUsers.ts';

interface AuditRow {
  seq: number;
  type: string;
  subject: string | null;
  data: Record<string, unknown>;
}

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
    const names = {
      complete: recordingName({ at: '20261128083000', seq: 1 }),
      held: heldClips.map((_, i) => recordingName({ at: `2026112809${String(i).padStart(2, '0')}00`, seq: 2 + i })),
    };
    await dockVolume(mountRoot, 'REC1', async (v) => {
      await fs.mkdir(path.join(v, 'DCIM'));
      await fs.copyFile(complete, path.join(v, 'DCIM', names.complete));
      await fs.writeFile(
        path.join(v, 'DCIM', names.complete.replace('.mp4', '.meta.json')),
        JSON.stringify({ caseNo: 'C-1', purpose: '现场检查', place: '幸福路12号' }),
      );
      for (const [i, clip] of heldClips.entries()) await fs.copyFile(clip, path.join(v, 'DCIM', names.held[i]));
    });
    return {
      complete: { sha256: await sha256OfFile(complete), size: (await fs.stat(complete)).size },
      held: await Promise.all(heldClips.map(async (c) => ({ sha256: await sha256OfFile(c), size: (await fs.stat(c)).size }))),
    };
  }

  it('serves the live picture and the catalog, annotates as dockctl does, acknowledges alarms, exports metrics, and answers bad requests with 4xx', async () => {
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { http: { listen: `127.0.0.1:${port}` } },
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    await addUser(world.configFile, 'chief', 'admin', 'chief-pass-2026');
    expect((await request(base, 'GET', '/api/state')).status).toBe(401);
    const cookie = await login(base, 'chief', 'chief-pass-2026');
    const as: RequestOptions = { headers: { cookie } };
    const get = (url: string) => request(base, 'GET', url, as);

    const empty = await get('/api/state');
    expect(empty.status).toBe(200);
    expect(empty.json).toMatchObject({
      stationId: 'test-st',
      recorders: [],
      links: { tus: 'ok' },
      alarms: [],
      held: { count: 0 },
    });
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('执法记录仪采集站');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");

    const events = await openEvents(`${base}/api/events`, as);
    await waitFor('the first live state on connect', () => events.states.length >= 1);
    expect(events.states[0]).toMatchObject({ stationId: 'test-st' });

    const sample = await dockSample(world.mountRoot, 1, 41);
    const heldSha = sample.held[0].sha256;
    const files = await waitFor(
      'one upload and one held recording in /api/files',
      async () => {
        const r = await get('/api/files');
        const bySha = Object.fromEntries((r.json as { sha256: string; state: string }[]).map((f) => [f.sha256, f]));
        return bySha[sample.complete.sha256]?.state === 'uploaded' && bySha[heldSha]?.state === 'needs-annotation'
          ? (r.json as { id: number; sha256: string; state: string }[])
          : null;
      },
      120_000,
    );
    const heldId = files.find((f) => f.sha256 === heldSha)!.id;
    const uploadedId = files.find((f) => f.sha256 === sample.complete.sha256)!.id;
    const onlyHeld = await get('/api/files?state=needs-annotation');
    expect(onlyHeld.json.map((f: { id: number }) => f.id)).toEqual([heldId]);
    expect(onlyHeld.json[0]).toMatchObject({
      caseNo: null,
      purpose: null,
      collector: '张三',
      officerId: '012345',
      reason: expect.stringMatching(/missing/),
    });

    // Pages with a cursor: a full page names the next one in X-Next-After; filters narrow the list.
    const ids = (r: { json: { id: number }[] }) => r.json.map((f) => f.id);
    const [first, second] = files.map((f) => f.id).sort((x, y) => x - y);
    const page1 = await get('/api/files?limit=1');
    expect(ids(page1)).toEqual([first]);
    expect(page1.headers.get('x-next-after')).toBe(String(first));
    expect(ids(await get(`/api/files?limit=1&after=${first}`))).toEqual([second]);
    expect(ids(await get(`/api/files?order=desc&after=${second}`))).toEqual([first]);
    expect((await get(`/api/files?after=${second}`)).headers.get('x-next-after')).toBeNull();
    expect(ids(await get('/api/files?officer=012345&from=2000-01-01'))).toEqual([first, second]);
    expect(ids(await get('/api/files?officer=999999'))).toEqual([]);
    expect(ids(await get('/api/files?caseNo=C-1'))).toEqual([uploadedId]);
    expect(ids(await get('/api/files?caseNo=NO-SUCH-CASE'))).toEqual([]);

    // The recorder tile: identity and "safe to undock", in the snapshot and on the live stream.
    const state = await waitFor(
      'the recorder done in /api/state',
      async () => {
        const r = await get('/api/state');
        return r.json.recorders[0]?.state === 'done' ? r.json : null;
      },
      60_000,
    );
    expect(state.recorders[0]).toMatchObject({
      serial: '1234567',
      officerId: '012345',
      officerName: '张三',
      safeToUndock: true,
      files: { total: 2, done: 2 },
    });
    expect(state.held).toMatchObject({ count: 1 });
    await waitFor(
      'the live stream to show the recorder safe to undock',
      () =>
        events.states.some((s) =>
          s.recorders.some((r: { safeToUndock: boolean; serial: string }) => r.serial === '1234567' && r.safeToUndock),
        ),
      30_000,
    );

    // Bad requests: each a clear 4xx JSON error; nothing changes and dockd keeps serving.
    const annotateUrl = `/api/files/${heldId}/annotate`;
    const bad: [string, string, Parameters<typeof request>[3], number, string][] = [
      ['GET', '/api/files?state=bogus', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/api/files?limit=0', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/api/files?from=yesterday', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/api/files?after=-1', {}, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: {} }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '   ' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 7, purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证', sha256: 'ff' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: { caseNo: 'X'.repeat(501), purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', annotateUrl, { body: ['X-1', '取证'] }, 400, 'INVALID_REQUEST'],
      [
        'POST',
        annotateUrl,
        { raw: '{"caseNo": "X-1", ', headers: { 'content-type': 'application/json' } },
        400,
        'FST_ERR_CTP_INVALID_JSON_BODY',
      ],
      [
        'POST',
        annotateUrl,
        { raw: `{"caseNo":"${'x'.repeat(70_000)}","purpose":"p"}`, headers: { 'content-type': 'application/json' } },
        413,
        'FST_ERR_CTP_BODY_TOO_LARGE',
      ],
      [
        'POST',
        annotateUrl,
        { raw: 'caseNo=X-1&purpose=p', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
        415,
        'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      ],
      [
        'POST',
        annotateUrl,
        { raw: '{"caseNo":"X-1","purpose":"p"}', headers: { 'content-type': 'text/plain' } },
        415,
        'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      ],
      // Control characters (ESC, BEL, CR, NUL, a direction override) in a field: refused, nothing stored.
      ['POST', annotateUrl, { body: { caseNo: 'X-1\u001b[2J', purpose: '取证' } }, 400, 'INVALID'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证\u0007' } }, 400, 'INVALID'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证', place: '幸福路\r12号' } }, 400, 'INVALID'],
      ['POST', annotateUrl, { body: { caseNo: 'X\u00001', purpose: '取证' } }, 400, 'INVALID'],
      ['POST', annotateUrl, { body: { caseNo: 'X-1', purpose: '取证', collector: '张三\u202e' } }, 400, 'INVALID'],
      // Ids with path tricks, logins without a password or with 10 KB of one (refused before any hashing).
      ['GET', '/api/files/..%2f..%2fetc%2fpasswd', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/api/files/1%00/thumbnail', {}, 400, 'INVALID_REQUEST'],
      ['GET', '/../../etc/passwd', {}, 403, 'FST_STATIC_FORBIDDEN_PATH'],
      ['GET', '/%2e%2e/%2e%2e/etc/passwd', {}, 403, 'FST_STATIC_FORBIDDEN_PATH'],
      ['POST', '/api/login', { body: { user: 'chief', password: '' } }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/login', { body: { user: 'chief', password: 'x'.repeat(10 * 1024) } }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/login', { body: { user: 'chief' } }, 400, 'INVALID_REQUEST'],
      [
        'POST',
        annotateUrl,
        { body: { caseNo: 'X-1', purpose: '取证' }, headers: { origin: 'http://evil.example' } },
        403,
        'FORBIDDEN_ORIGIN',
      ],
      ['POST', '/api/files/not-an-id!/annotate', { body: { caseNo: 'X-1', purpose: '取证' } }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/files/987654321/annotate', { body: { caseNo: 'X-1', purpose: '取证' } }, 404, 'NOT_FOUND'],
      ['POST', `/api/files/${uploadedId}/annotate`, { body: { caseNo: 'X-1', purpose: '取证' } }, 409, 'NOT_ANNOTATABLE'],
      ['GET', '/api/files/987654321/thumbnail', {}, 404, 'NOT_FOUND'],
      ['POST', '/api/alarms/no-such-alarm/ack', {}, 404, 'NOT_FOUND'],
      ['POST', '/api/alarms/x/ack', { body: { by: 'me' } }, 400, 'INVALID_REQUEST'],
      ['GET', '/api/no-such-thing', {}, 404, 'NOT_FOUND'],
    ];
    for (const [method, url, opts, status, code] of bad) {
      const r = await request(base, method, url, { ...opts, headers: { cookie, ...(opts?.headers ?? {}) } });
      expect({ method, url: url.slice(0, 60), status: r.status, error: r.json?.error }).toEqual({
        method,
        url: url.slice(0, 60),
        status,
        error: code,
      });
      expect(typeof r.json.message).toBe('string');
    }
    // A loopback-only page answers only to loopback names (DNS rebinding).
    expect(await getWithHost(base, '/api/state', `rebind.example:${port}`, as)).toMatchObject({
      status: 403,
      json: { error: 'FORBIDDEN_HOST' },
    });
    expect((await getWithHost(base, '/api/state', `localhost:${port}`, as)).status).toBe(200);
    expect((await get(`/api/files/${heldId}`)).json).toMatchObject({ state: 'needs-annotation', caseNo: null, purpose: null });
    expect(tus.finished.map((u) => u.sha256)).toEqual([sample.complete.sha256]);

    // A thumbnail of the held recording: a JPEG grabbed by ffmpeg, cached under storage.dir/thumbs.
    const thumb = await get(`/api/files/${heldId}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    expect(thumb.headers.get('cache-control')).toBe('no-store');
    const jpeg = thumb.body;
    expect([...jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect(existsSync(path.join(world.storeDir, 'thumbs', `${heldSha}.jpg`))).toBe(true);

    // Annotation over the API: the same rules as dockctl (partial → still held), then released and uploaded.
    const partial = await request(base, 'POST', annotateUrl, { ...as, body: { caseNo: 'C-9', purpose: '现场执法' } });
    expect(partial.status).toBe(200);
    expect(partial.json).toMatchObject({
      ok: true,
      state: 'needs-annotation',
      missing: ['place'],
      file: { caseNo: 'C-9', place: null },
    });
    expect(tus.finished).toHaveLength(1);
    const full = await request(base, 'POST', `/api/files/${heldSha.slice(0, 12)}/annotate`, {
      ...as,
      body: { caseNo: 'C-9', purpose: '现场执法', place: '解放路1号' },
    });
    expect(full.status).toBe(200);
    expect(full.json).toMatchObject({
      ok: true,
      state: 'ready',
      missing: [],
      file: { id: heldId, caseNo: 'C-9', purpose: '现场执法', place: '解放路1号', collector: '张三' },
    });
    await waitFor('the annotated recording uploaded', () => tus.finished.some((u) => u.sha256 === heldSha), 120_000);
    expect(tus.finished.find((u) => u.sha256 === heldSha)!.metadata).toMatchObject({
      caseNo: 'C-9',
      purpose: '现场执法',
      place: '解放路1号',
      collector: '张三',
    });
    await waitFor(
      'the catalog to call it uploaded',
      async () => (await get(`/api/files/${heldId}`)).json.state === 'uploaded',
      60_000,
    );
    const annotated = (await auditRows(world.configFile)).filter((a) => a.type === 'file.annotated' && a.subject === heldSha);
    expect(annotated).toHaveLength(2);
    expect(annotated[1].data).toMatchObject({
      by: 'chief (admin) @127.0.0.1',
      new: { caseNo: 'C-9', place: '解放路1号' },
      old: { caseNo: 'C-9', place: null },
    });

    // An alarm (the broker goes away), acknowledged once, audited once, shown live; it clears when the broker returns.
    await broker.stop();
    const alarm = await waitFor(
      'MQTT_UNREACHABLE in /api/alarms',
      async () => (await get('/api/alarms')).json.find((a: { code: string }) => a.code === 'MQTT_UNREACHABLE'),
      60_000,
    );
    expect(alarm).toMatchObject({ key: 'mqtt', acknowledged: false });
    const ack = await request(base, 'POST', '/api/alarms/mqtt/ack', as);
    expect(ack.status).toBe(200);
    expect(ack.json).toMatchObject({
      ok: true,
      alreadyAcknowledged: false,
      alarm: { key: 'mqtt', acknowledged: true, acknowledgedBy: 'chief (admin) @127.0.0.1' },
    });
    const again = await request(base, 'POST', '/api/alarms/mqtt/ack', { ...as, body: {} });
    expect(again.json).toMatchObject({ ok: true, alreadyAcknowledged: true });
    expect((await get('/api/alarms')).json.find((a: { key: string }) => a.key === 'mqtt')).toMatchObject({
      acknowledged: true,
      acknowledgedAt: expect.any(String),
    });
    await waitFor(
      'the acknowledgement on the live stream',
      () =>
        events.states.some((s) =>
          s.alarms.some((a: { key: string; acknowledged: boolean }) => a.key === 'mqtt' && a.acknowledged),
        ),
      30_000,
    );
    const acks = (await auditRows(world.configFile)).filter((a) => a.type === 'alarm.acknowledged');
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({
      subject: 'mqtt',
      data: { code: 'MQTT_UNREACHABLE', by: 'chief (admin) @127.0.0.1', user: 'chief', role: 'admin', from: '127.0.0.1' },
    });
    await broker.start(broker.port);
    await waitFor('the MQTT alarm to clear', async () => (await get('/api/alarms')).json.length === 0, 60_000);

    // /metrics: the Prometheus text format, with the station's numbers.
    const m = await request(base, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(m.text);
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
    expect(types).toMatchObject({
      dockd_ingested_bytes_total: 'counter',
      dockd_uploaded_bytes_total: 'counter',
      dockd_queue_files: 'gauge',
      dockd_alarms_active: 'gauge',
    });

    // A recording with no capture time at all (plain name, no creation_time): the API takes it as station wall time.
    const noTime = await sampleMedia('video-faststart', 2, 45);
    await dockVolume(world.mountRoot, 'REC2', async (v) => {
      await fs.copyFile(noTime, path.join(v, 'clip.mp4'));
    });
    const timeless = await waitFor(
      'the timeless recording held',
      async () =>
        (await get('/api/files?state=needs-annotation')).json.find((f: { filename: string }) => f.filename === 'clip.mp4'),
      120_000,
    );
    expect(timeless).toMatchObject({ capturedAt: null, reason: expect.stringMatching(/采集时间 capture time/) });
    const timeBody = { caseNo: 'C-10', purpose: '补录', place: '解放路1号', collector: '王五' };
    const badTime = await request(base, 'POST', `/api/files/${timeless.id}/annotate`, {
      ...as,
      body: { ...timeBody, capturedAt: 'yesterday at nine' },
    });
    expect(badTime).toMatchObject({ status: 400, json: { error: 'INVALID', message: expect.stringMatching(/ISO 8601/) } });
    const timed = await request(base, 'POST', `/api/files/${timeless.id}/annotate`, {
      ...as,
      body: { ...timeBody, capturedAt: '2026-11-28T09:30' },
    });
    expect(timed.status).toBe(200);
    expect(timed.json).toMatchObject({ state: 'ready', file: { capturedAt: '2026-11-28T09:30:00+08:00', collector: '王五' } });
    await waitFor(
      'the timeless recording uploaded with its new capture time',
      () => tus.finished.find((u) => u.metadata.capturedAt === '2026-11-28T09:30:00+08:00'),
      120_000,
    );

    // A clean stop with a browser still connected to the live stream.
    expect(await daemon.stop()).toBe(0);
    await events.ended;
    events.close();
  }, 400_000);

  it('dockctl status --watch re-renders the status every second until Ctrl-C', async () => {
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: { http: { listen: `127.0.0.1:${port}` } },
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const watch = spawn(process.execPath, [DOCKCTL_BIN, '--config', world.configFile, 'status', '--watch'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    watch.stdout!.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => watch.once('exit', (code) => resolve(code)));
    try {
      await waitFor('two frames', () => out.split('station test-st — dockd running').length - 1 >= 2, 60_000);
      await dockSample(world.mountRoot, 0, 71);
      await waitFor('a later frame showing the docked recorder', () => / - +1234567 +012345 张三 +done/.test(out), 120_000);
    } finally {
      watch.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(out).toContain('可安全拔出 safe to undock');
    const both = await runDockctl(world.configFile, ['status', '--watch', '--json']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--watch and --json/);
  }, 300_000);

  it("the bootstrap admin of http.adminPassword; lockout per account and per address (one client's wrong passwords lock out nobody else); cross-origin changes refused and nothing changes; live streams capped per user; slow requests cut off; disable ends sessions", async () => {
    const password = 'Zhan-san 采集站 #7';
    const pwFile = path.join(dir, 'admin.pw');
    await fs.writeFile(pwFile, `${password}\n`);
    const world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      extra: {
        http: { listen: `0.0.0.0:${port}`, allowPlainHttp: true, adminPassword: { file: pwFile }, requestTimeoutSeconds: 2 },
      },
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    await daemon.waitForLog((l) => l.msg === 'station page listening', 'the station page to listen');
    expect(daemon.logs.some((l) => /plain HTTP beyond loopback/.test(l.msg))).toBe(true);
    expect(daemon.logs.some((l) => /http.adminPassword is deprecated/.test(l.msg))).toBe(true);
    await addUser(world.configFile, '张三', 'officer', '246810', '012345');
    await addUser(world.configFile, '李四', 'officer', '135791', '054321');

    const sample = await dockSample(world.mountRoot, 2, 51);
    const admin = await login(base, 'admin', password);
    const held = await waitFor(
      'two held recordings',
      async () => {
        const r = await request(base, 'GET', '/api/files?state=needs-annotation', { headers: { cookie: admin } });
        return r.json.length === 2 ? (r.json as { id: number; sha256: string }[]) : null;
      },
      120_000,
    );
    const [first, second] = held;
    const body = { caseNo: 'C-20', purpose: '调查取证', place: '建设路3号' };

    // Cross-origin changes: refused with 403 before anything is read or changed, even with a valid session.
    const seqBefore = (await auditRows(world.configFile)).length;
    const crossSite: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { origin: `http://127.0.0.1:${port + 1}` },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of crossSite) {
      const r = await request(base, 'POST', `/api/files/${first.id}/annotate`, { body, headers: { cookie: admin, ...headers } });
      expect({ headers, status: r.status, error: r.json.error }).toEqual({ headers, status: 403, error: 'FORBIDDEN_ORIGIN' });
      expect((await request(base, 'POST', '/api/logout', { body: {}, headers: { cookie: admin, ...headers } })).status).toBe(403);
    }
    expect((await request(base, 'GET', `/api/files/${first.id}`, { headers: { cookie: admin } })).json).toMatchObject({
      state: 'needs-annotation',
      caseNo: null,
      purpose: null,
    });
    expect(
      (await auditRows(world.configFile))
        .slice(seqBefore)
        .map((a) => a.type)
        .filter((t) => t.startsWith('http.') || t === 'file.annotated' || t === 'file.viewed'),
    ).toEqual(['file.viewed']);
    // The same change from the page itself goes through.
    const same = await request(base, 'POST', `/api/files/${first.id}/annotate`, {
      body,
      headers: { cookie: admin, origin: base },
    });
    expect(same.status).toBe(200);

    // Client A (127.0.0.2) guesses the admin password ten times: the account locks after five; nobody else is locked.
    const A: RequestOptions = { localAddress: '127.0.0.2' };
    const B: RequestOptions = { localAddress: '127.0.0.3' };
    const guesses = [];
    for (let i = 1; i <= 10; i++)
      guesses.push((await request(base, 'POST', '/api/login', { ...A, body: { user: 'admin', password: `guess-${i}` } })).json);
    expect(guesses.map((g) => g.error)).toEqual([...Array(4).fill('WRONG_PASSWORD'), ...Array(6).fill('LOCKED_OUT')]);
    expect(guesses.slice(0, 4).map((g) => g.remaining)).toEqual([4, 3, 2, 1]);
    expect(guesses[4]).toMatchObject({ scope: 'account', retryAfterSeconds: 300 });
    // Another user logs in from another client, and from client A too (the address is not locked by 10 failures).
    expect((await request(base, 'POST', '/api/login', { ...B, body: { user: '012345', password: '246810' } })).status).toBe(200);
    expect((await request(base, 'POST', '/api/login', { ...A, body: { user: '054321', password: '135791' } })).status).toBe(200);
    // The admin account itself stays locked from everywhere, even with the right password; its open session still works.
    const locked = await request(base, 'POST', '/api/login', { ...B, body: { user: 'admin', password } });
    expect(locked).toMatchObject({ status: 429, json: { error: 'LOCKED_OUT', scope: 'account' } });
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(290);
    const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    expect((await request(base, 'POST', '/api/alarms/x/ack', { ...B, headers: basic('admin', password) })).status).toBe(429);
    const withSession = await request(base, 'POST', `/api/files/${second.id}/annotate`, {
      body: { ...body, caseNo: 'C-21' },
      headers: { cookie: admin },
    });
    expect(withSession.status).toBe(200);
    // Client A now sprays other accounts: after 20 failures in all its address is locked, for every account; B is not.
    const spray = [];
    for (let i = 0; i < 10; i++)
      spray.push(
        (await request(base, 'POST', '/api/login', { ...A, body: { user: `0000${i}`, password: 'wrong-pin' } })).json.error,
      );
    expect(spray.at(-1)).toBe('LOCKED_OUT');
    expect(
      (await request(base, 'POST', '/api/login', { ...A, body: { user: '012345', password: '246810' } })).json,
    ).toMatchObject({ error: 'LOCKED_OUT', scope: 'source' });
    expect((await request(base, 'POST', '/api/login', { ...B, body: { user: '012345', password: '246810' } })).status).toBe(200);
    const trail = await auditRows(world.configFile);
    expect(trail.filter((a) => a.type === 'http.lockout').map((a) => a.data)).toEqual([
      expect.objectContaining({ scope: 'account', user: 'admin', lockouts: 1 }),
      expect.objectContaining({ scope: 'source', from: '127.0.0.2', lockouts: 1 }),
    ]);
    // 10 guesses, 2 refused logins of the locked admin from B, 10 sprayed, 1 refused at the locked address.
    expect(trail.filter((a) => a.type === 'http.login-failed').map((a) => a.data.reason)).toEqual([
      ...Array(5).fill('wrong-password'),
      ...Array(7).fill('locked'),
      ...Array(10).fill('wrong-password'),
      'locked',
    ]);
    expect(trail.filter((a) => a.type === 'http.login').map((a) => a.data.user)).toEqual(['admin', '张三', '李四', '张三']);
    expect(trail.find((a) => a.type === 'user.added' && a.subject === 'admin')?.data).toMatchObject({
      role: 'admin',
      by: 'config (http.adminPassword)',
    });
    await waitFor(
      'both annotated recordings uploaded',
      () => held.every((h) => tus.finished.some((u) => u.sha256 === h.sha256)),
      120_000,
    );
    expect(tus.finished.find((u) => u.sha256 === second.sha256)!.metadata).toMatchObject({ caseNo: 'C-21' });
    expect(trail.filter((a) => a.type === 'file.annotated').map((a) => a.data.by)).toEqual([
      'admin (admin) @127.0.0.1',
      'admin (admin) @127.0.0.1',
    ]);

    // Live streams: at most 4 per user; the fifth is refused (503), other users are not affected, anonymous gets 401.
    const officer = await login(base, '012345', '246810', B);
    const mine = await Promise.all(
      Array.from({ length: 4 }, () => openEvents(`${base}/api/events`, { headers: { cookie: officer } })),
    );
    expect(mine.map((e) => e.status)).toEqual([200, 200, 200, 200]);
    const fifth = await openEvents(`${base}/api/events`, { headers: { cookie: officer } });
    expect(fifth).toMatchObject({ status: 503, json: { error: 'TOO_MANY_CONNECTIONS' } });
    const adminStream = await openEvents(`${base}/api/events`, { headers: { cookie: admin } });
    expect(adminStream.status).toBe(200);
    expect((await openEvents(`${base}/api/events`)).status).toBe(401);
    mine[0].close();
    await waitFor('a place for a new stream once one closed', async () => {
      const e = await openEvents(`${base}/api/events`, { headers: { cookie: officer } });
      e.close();
      return e.status === 200;
    });
    // dockctl user disable ends the user's sessions: the cookie stops working and the open streams are closed.
    const disabled = await runDockctl(world.configFile, ['user', 'disable', '张三']);
    expect(disabled).toMatchObject({ code: 0, stdout: expect.stringMatching(/张三 disabled; \d+ open session\(s\) ended/) });
    expect((await request(base, 'GET', '/api/state', { headers: { cookie: officer } })).status).toBe(401);
    await Promise.all(mine.slice(1).map((e) => e.ended));
    expect(mine[1].events.at(-1)).toBe('session-ended');
    expect(adminStream.events.includes('session-ended')).toBe(false);
    adminStream.close();

    // /metrics without a token: loopback clients only.
    expect((await request(base, 'GET', '/metrics', A)).status).toBe(200);
    const ip = beyondLoopbackAddress();
    expect((await request(`http://${ip}:${port}`, 'GET', '/metrics', { localAddress: ip })).json).toMatchObject({
      error: 'LOOPBACK_ONLY',
    });

    // A slow request (headers never finished) is cut off after http.requestTimeoutSeconds, and dockd goes on serving.
    const slow = net.connect(port, '127.0.0.1');
    let answer = '';
    slow.setEncoding('utf8');
    slow.on('data', (d) => {
      answer += d;
    });
    const closed = new Promise<void>((resolve) => slow.on('close', () => resolve()));
    slow.write(`GET /api/state HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect((await request(base, 'GET', '/api/session')).status).toBe(200);

    // The password is never logged, and the config keeps only its hash.
    const logs = JSON.stringify(daemon.logs) + daemon.stderr;
    expect(logs).not.toContain(password);
    expect(logs).not.toContain('guess-5');
    expect(logs).not.toContain('246810');
    expect(sample.held).toHaveLength(2);
    expect(await daemon.stop()).toBe(0);
  }, 400_000);
});
