import fs from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingName, sampleMedia } from '../../scripts/media.ts';
import { DaemonProcess, makeWorld, tempDir } from '../helpers/daemon.ts';
import { Mosquitto } from '../helpers/mosquitto.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { TusTestServer } from '../helpers/tusServer.ts';
import { dockVolume } from '../helpers/volume.ts';
import { login, openEvents, request, type RequestOptions } from './client.ts';
import { addUser, auditAfter, auditHeadSeq, beyondLoopbackAddress, catalogFiles, selfSignedCert } from './stationUsers.ts';

type Who = 'anonymous' | 'officer' | 'other officer' | 'admin';
const WHO: Who[] = ['anonymous', 'officer', 'other officer', 'admin'];
const USERS = {
  officer: { name: '张三', login: '012345', secret: '246810', officerId: '012345' },
  'other officer': { name: '李四', login: '054321', secret: '135791', officerId: '054321' },
  admin: { name: 'chief', login: 'chief', secret: 'chief-pass-2026', officerId: null },
} as const;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const READ_AUDITS = ['http.files-listed', 'file.viewed', 'file.exported', 'http.denied'];

interface Row {
  method: string;
  path: (ids: Ids) => string;
  body?: unknown;
  /** Expected status per viewer (anonymous, officer, other officer, admin). */
  status: [number, number, number, number];
  /** The audit entry a read writes for each viewer (null: none of the read audits). */
  audit?: [string | null, string | null, string | null, string | null];
  events?: boolean;
}
interface Ids {
  mine: number;
  theirs: number;
}

/** Every HTTP route of the station page, with what each kind of viewer gets. */
const TABLE: Row[] = [
  { method: 'GET', path: () => '/', status: [200, 200, 200, 200] },
  { method: 'GET', path: () => '/app.js', status: [200, 200, 200, 200] },
  { method: 'GET', path: () => '/api/session', status: [200, 200, 200, 200] },
  { method: 'GET', path: () => '/api/state', status: [401, 200, 200, 200], audit: [null, null, null, null] },
  { method: 'GET', path: () => '/api/events', status: [401, 200, 200, 200], events: true },
  { method: 'GET', path: () => '/api/alarms', status: [401, 200, 200, 200], audit: [null, null, null, null] },
  {
    method: 'GET',
    path: () => '/api/files',
    status: [401, 200, 200, 200],
    audit: [null, 'http.files-listed', 'http.files-listed', 'http.files-listed'],
  },
  {
    method: 'GET',
    path: (i) => `/api/files/${i.mine}`,
    status: [401, 200, 404, 200],
    audit: [null, 'file.viewed', 'http.denied', 'file.viewed'],
  },
  {
    method: 'GET',
    path: (i) => `/api/files/${i.mine}/thumbnail`,
    status: [401, 200, 404, 200],
    audit: [null, 'file.viewed', 'http.denied', 'file.viewed'],
  },
  {
    method: 'GET',
    path: (i) => `/api/files/${i.mine}/export`,
    status: [401, 403, 403, 200],
    audit: [null, null, null, 'file.exported'],
  },
  {
    method: 'POST',
    path: (i) => `/api/files/${i.mine}/reprobe`,
    body: {},
    status: [401, 403, 403, 200],
    audit: [null, null, null, 'file.reprobed'],
  },
  {
    method: 'POST',
    path: (i) => `/api/files/${i.mine}/annotate`,
    body: { caseNo: 'T-1', purpose: '调查取证' },
    status: [401, 200, 404, 200],
    audit: [null, 'file.annotated', 'http.denied', 'file.annotated'],
  },
  { method: 'POST', path: () => '/api/alarms/no-such-alarm/ack', body: {}, status: [401, 403, 403, 404] },
  { method: 'GET', path: () => '/api/settings/upload', status: [401, 403, 403, 200] },
  {
    method: 'POST',
    path: () => '/api/settings/upload',
    body: { maxBytesPerSecond: 0, windows: [] },
    status: [401, 403, 403, 200],
    audit: [null, null, null, 'config.edited'],
  },
  { method: 'POST', path: () => '/api/login', body: { user: '', password: '' }, status: [400, 400, 400, 400] },
  { method: 'GET', path: () => '/api/no-such-route', status: [404, 404, 404, 404] },
];

describe('who may use which route: every HTTP route × {anonymous, officer, other officer, admin} × {loopback, beyond loopback}', () => {
  let dir: string;
  let broker: Mosquitto;
  let tus: TusTestServer;
  let daemon: DaemonProcess | null = null;
  let world: Awaited<ReturnType<typeof makeWorld>>;
  let ids: Ids;
  const cookies: Partial<Record<Who, string>> = {};

  beforeAll(async () => {
    dir = await tempDir('dockd-access-');
    broker = new Mosquitto(path.join(dir, 'mosquitto'));
    await broker.start();
    tus = new TusTestServer(path.join(dir, 'hq'));
    await tus.start();
    world = await makeWorld(dir, {
      tusEndpoint: tus.endpoint,
      mqttUrl: broker.url,
      devices: [
        { serial: '1234567', officerId: '012345', officerName: '张三' },
        { serial: '7654321', officerId: '054321', officerName: '李四' },
      ],
    });
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    for (const w of ['officer', 'other officer', 'admin'] as const) {
      const u = USERS[w];
      await addUser(world.configFile, u.name, w === 'admin' ? 'admin' : 'officer', u.secret, u.officerId ?? undefined);
    }
    // One held recording (no sidecar) of each officer.
    const [a, b] = await Promise.all([sampleMedia('video', 2, 81), sampleMedia('video', 2, 82)]);
    await dockVolume(world.mountRoot, 'REC-A', async (v) => {
      await fs.copyFile(a, path.join(v, recordingName({ officerId: '012345', serial: '1234567', at: '20261128090000' })));
    });
    await dockVolume(world.mountRoot, 'REC-B', async (v) => {
      await fs.copyFile(b, path.join(v, recordingName({ officerId: '054321', serial: '7654321', at: '20261128091000' })));
    });
    const files = await waitFor(
      'both recordings held',
      () => {
        const f = catalogFiles(world.storeDir).filter((r) => r.state === 'needs-annotation');
        return f.length === 2 ? f : null;
      },
      120_000,
    );
    ids = { mine: files.find((f) => f.officer_id === '012345')!.id, theirs: files.find((f) => f.officer_id === '054321')!.id };
  }, 300_000);

  afterAll(async () => {
    await daemon?.kill9();
    await tus?.stop();
    await broker?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function runTable(base: string, o: RequestOptions, where: string): Promise<void> {
    const results: string[] = [];
    const expected: string[] = [];
    for (const row of TABLE) {
      for (const [i, who] of WHO.entries()) {
        const headers: Record<string, string> = who === 'anonymous' ? {} : { cookie: cookies[who]! };
        const url = row.path(ids);
        const before = auditHeadSeq(world.storeDir);
        let status: number;
        let text = '';
        if (row.events) {
          const ev = await openEvents(`${base}${url}`, { ...o, headers });
          status = ev.status;
          if (status === 200) await waitFor('the first live state', () => ev.states.length > 0);
          text = JSON.stringify(ev.states[0] ?? ev.json);
          ev.close();
        } else {
          const r = await request(base, row.method, url, { ...o, headers, body: row.body });
          status = r.status;
          text = r.text;
        }
        const label = `${where} ${who} ${row.method} ${url}`;
        results.push(`${label} → ${status}`);
        expected.push(`${label} → ${row.status[i]}`);
        // Anonymous answers carry no case data.
        if (who === 'anonymous')
          for (const secret of ['012345', '054321', '张三', '李四', 'REC-A']) expect(text, label).not.toContain(secret);
        if (row.audit) {
          const written = auditAfter(world.storeDir, before).filter((a) =>
            [...READ_AUDITS, 'file.annotated', 'file.reprobed', 'config.edited'].includes(a.type),
          );
          const want = row.audit[i];
          expect(
            written.map((a) => a.type),
            label,
          ).toEqual(want ? [want] : []);
          if (want) {
            const data = written[0].data;
            // Each entry names the user, the role and the source address.
            const actor = want === 'file.annotated' ? data.by : `${data.by}`;
            expect(actor, label).toContain(USERS[who as Exclude<Who, 'anonymous'>].name);
            if (want !== 'file.annotated')
              expect(data, label).toMatchObject({
                user: USERS[who as Exclude<Who, 'anonymous'>].name,
                role: who === 'admin' ? 'admin' : 'officer',
                from: o.localAddress ?? expect.any(String),
              });
          }
        }
      }
    }
    expect(results).toEqual(expected);
  }

  it('on loopback: login for every read of case data, officers reach only their own recordings, every read audited', async () => {
    const base = `http://127.0.0.1:${await waitFor('the page address', () => daemon!.logs.find((l) => l.msg === 'station page listening')?.url as string).then((u) => new URL(u).port)}`;
    for (const w of ['officer', 'other officer', 'admin'] as const)
      cookies[w] = await login(base, USERS[w].login, USERS[w].secret);
    await runTable(base, { localAddress: '127.0.0.1' }, 'loopback');

    // What each sees of the catalog and of the live picture.
    const list = async (who: Who) =>
      (await request(base, 'GET', '/api/files', { headers: { cookie: cookies[who]! } })).json.map((f: { id: number }) => f.id);
    expect(await list('officer')).toEqual([ids.mine]);
    expect(await list('other officer')).toEqual([ids.theirs]);
    expect(await list('admin')).toEqual([ids.mine, ids.theirs].sort((x, y) => x - y));
    const state = (await request(base, 'GET', '/api/state', { headers: { cookie: cookies.officer! } })).json;
    const tiles = Object.fromEntries(state.recorders.map((r: { name: string }) => [r.name, r]));
    expect(tiles['REC-A']).toMatchObject({ officerId: '012345', officerName: '张三', serial: '1234567' });
    expect(tiles['REC-B']).toMatchObject({
      officerId: null,
      officerName: null,
      serial: null,
      redacted: true,
      safeToUndock: true,
    });
    expect(state.held).toMatchObject({ count: 1 });
    const exported = await request(base, 'GET', `/api/files/${ids.mine}/export`, { headers: { cookie: cookies.admin! } });
    const sha = catalogFiles(world.storeDir).find((f) => f.id === ids.mine)!.sha256!;
    expect(exported.headers.get('x-dockd-sha256')).toBe(sha);
    expect((await import('node:crypto')).createHash('sha256').update(exported.body).digest('hex')).toBe(sha);
    expect(exported.headers.get('content-disposition')).toMatch(
      /^attachment; filename=".*012345_1234567_20261128090000_0001\.mp4"/,
    );
    // On loopback without a token, /metrics answers.
    expect((await request(base, 'GET', '/metrics')).status).toBe(200);
  }, 300_000);

  it('beyond loopback over HTTPS (eth0 address, self-signed certificate): the same answers, the sessions survive the restart, /metrics wants its token', async () => {
    const ip = beyondLoopbackAddress();
    const tls = await selfSignedCert(dir, ip);
    const port = await freePort();
    expect(await daemon!.stop()).toBe(0);
    const config = {
      ...world.config,
      http: { listen: `${ip}:${port}`, tls: { cert: tls.cert, key: tls.key }, kiosk: true, metricsToken: METRICS_TOKEN },
    };
    await fs.writeFile(world.configFile, stringify(config));
    daemon = new DaemonProcess(world.configFile);
    daemon.start();
    await daemon.started();
    const listening = await daemon.waitForLog((l) => l.msg === 'station page listening', 'the page to listen');
    expect(listening).toMatchObject({ url: `https://${ip}:${port}/`, tls: true });
    const base = `https://${ip}:${port}`;
    const o = { ca: tls.pem, localAddress: ip };

    // The sessions opened before the restart still hold (they live in the catalog).
    for (const w of ['officer', 'other officer', 'admin'] as const) {
      const s = await request(base, 'GET', '/api/session', { ...o, headers: { cookie: cookies[w]! } });
      expect(s.json, w).toMatchObject({ authenticated: true, user: { name: USERS[w].name }, kiosk: false, tls: true });
    }
    await runTable(base, o, 'beyond loopback');

    // HTTPS: HSTS, and a new session cookie is Secure, HttpOnly, SameSite=Strict.
    const page = await request(base, 'GET', '/', o);
    expect(page.headers.get('strict-transport-security')).toBe('max-age=31536000');
    const fresh = await request(base, 'POST', '/api/login', { ...o, body: { user: 'chief', password: USERS.admin.secret } });
    expect(fresh.headers.get('set-cookie')).toMatch(
      /^dockd_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure; Max-Age=43200$/,
    );
    // Kiosk mode shows tiles only to the station's own screen (loopback): from the network it is 401 as before.
    expect((await request(base, 'GET', '/api/state', o)).status).toBe(401);
    // /metrics: the bearer token, nothing else.
    expect((await request(base, 'GET', '/metrics', { ...o, headers: { cookie: cookies.admin! } })).status).toBe(401);
    expect(
      (await request(base, 'GET', '/metrics', { ...o, headers: { authorization: 'Bearer wrong-token-0123456789' } })).status,
    ).toBe(401);
    const m = await request(base, 'GET', '/metrics', { ...o, headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(m.status).toBe(200);
    expect(m.text).toContain('dockd_recorders_docked');
    // Plain HTTP on the TLS port gets nowhere.
    await expect(request(`http://${ip}:${port}`, 'GET', '/api/session', { localAddress: ip })).rejects.toThrow();
    expect(JSON.stringify(daemon!.logs)).not.toContain(METRICS_TOKEN);
  }, 300_000);
});
