import http from 'node:http';
import https from 'node:https';

/**
 * Small clients for dockd's HTTP API in tests, on node:http(s) so a test can choose the source address
 * (`localAddress`: 127.0.0.2 and 127.0.0.3 are two clients), trust a self-signed certificate (`ca`) and set any
 * header (Host, Origin, Cookie): JSON requests, a server-sent events reader, a metrics parser.
 */

export interface Reply<T = any> {
  status: number;
  json: T;
  text: string;
  headers: Headers;
  body: Buffer;
}

export interface RequestOptions {
  body?: unknown;
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** The client's source address. */
  localAddress?: string;
  /** CA certificate(s) to trust for https (the test's self-signed one). */
  ca?: string | Buffer;
}

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v)) for (const x of v) h.append(k, x);
    else if (v !== undefined) h.set(k, v);
  }
  return h;
}

export function request<T = any>(base: string, method: string, path: string, o: RequestOptions = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  let body: string | Buffer | undefined;
  if (o.raw !== undefined) body = o.raw;
  else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const url = new URL(base);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // The path is sent as given (no URL normalisation), so a test can send `..` and encoded tricks.
    const target = { protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path };
    const req = lib.request({ ...target, method, headers, localAddress: o.localAddress, ca: o.ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json: any = null;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, json, text, headers: toHeaders(res.headers), body: buf });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A GET with a chosen Host header. */
export async function getWithHost(
  base: string,
  path: string,
  host: string,
  o: RequestOptions = {},
): Promise<{ status: number; json: any }> {
  const r = await request(base, 'GET', path, { ...o, headers: { ...(o.headers ?? {}), host } });
  return { status: r.status, json: r.json };
}

/** The `name=value` of a Set-Cookie header (to send back as Cookie). */
export function cookieOf(r: Reply): string {
  const set = r.headers.get('set-cookie') ?? '';
  return set.split(';')[0];
}

/** Logs in; returns the Cookie header value of the session (throws with the answer when refused). */
export async function login(base: string, user: string, password: string, o: RequestOptions = {}): Promise<string> {
  const r = await request(base, 'POST', '/api/login', { ...o, body: { user, password } });
  if (r.status !== 200) throw new Error(`login ${user}: HTTP ${r.status} ${r.text}`);
  return cookieOf(r);
}

export interface EventsReader {
  status: number;
  states: any[];
  events: string[];
  close: () => void;
  ended: Promise<void>;
  json: any;
}

/** Reads `event: state` frames from /api/events into `states` until closed; a refusal gives its status and JSON. */
export function openEvents(url: string, o: RequestOptions = {}): Promise<EventsReader> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(
      u,
      { headers: { accept: 'text/event-stream', ...(o.headers ?? {}) }, localAddress: o.localAddress, ca: o.ca, agent: false },
      (res) => {
        const states: any[] = [];
        const events: string[] = [];
        const close = () => {
          req.destroy();
        };
        if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('text/event-stream')) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            text += d;
          });
          res.on('end', () => {
            let json = null;
            try {
              json = JSON.parse(text);
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode!, states, events, close, ended: Promise.resolve(), json });
          });
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        const ended = new Promise<void>((done) => {
          res.on('data', (d: string) => {
            buf += d;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const frame = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const lines = frame.split('\n');
              const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
              const data = lines
                .filter((l) => l.startsWith('data: '))
                .map((l) => l.slice(6))
                .join('\n');
              if (event) events.push(event);
              if (event === 'state' && data) states.push(JSON.parse(data));
            }
          });
          res.on('end', () => done());
          res.on('close', () => done());
          res.on('error', () => done());
        });
        resolve({ status: 200, states, events, close, ended, json: null });
      },
    );
    req.on('error', reject);
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format strictly: every line is a comment, blank, or a well-formed sample. */
export function parseMetrics(text: string): { samples: Sample[]; types: Record<string, string>; help: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  const help: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'HELP' ? help : types)[m[2]] = m[3];
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)(?: -?[0-9]+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus text-format line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      for (const part of m[3].match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
        const eq = part.indexOf('=');
        labels[part.slice(0, eq)] = JSON.parse(part.slice(eq + 1));
      }
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return { samples, types, help };
}

export function metric(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
