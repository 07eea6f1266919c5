import http from 'node:http';

/** Small clients for dockd's HTTP API in tests: JSON requests, a server-sent events reader, a metrics parser. */

export interface Reply<T = any> { status: number; json: T; text: string; headers: Headers }

export async function request<T = any>(base: string, method: string, path: string, o: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  let body: string | undefined;
  if (o.raw !== undefined) body = o.raw;
  else if (o.body !== undefined) { body = JSON.stringify(o.body); headers['content-type'] ??= 'application/json'; }
  const r = await fetch(`${base}${path}`, { method, headers, body });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

/** A GET with a chosen Host header (fetch does not let a caller set Host). */
export function getWithHost(base: string, path: string, host: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { headers: { host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => { try { resolve({ status: res.statusCode!, json: JSON.parse(text) }); } catch (e) { reject(e); } });
    });
    req.on('error', reject);
  });
}

/** Reads `event: state` frames from /api/events into `states` until closed. */
export async function openEvents(url: string): Promise<{ states: any[]; close: () => void; ended: Promise<void> }> {
  const controller = new AbortController();
  const r = await fetch(url, { signal: controller.signal, headers: { accept: 'text/event-stream' } });
  if (r.status !== 200) throw new Error(`events: HTTP ${r.status}`);
  if (!r.headers.get('content-type')?.startsWith('text/event-stream')) throw new Error(`events: content-type ${r.headers.get('content-type')}`);
  const states: any[] = [];
  const reader = r.body!.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const lines = frame.split('\n');
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (event === 'state' && data) states.push(JSON.parse(data));
        }
      }
    } catch { /* aborted or the server went away */ }
  })();
  return { states, close: () => controller.abort(), ended };
}

export interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parses the Prometheus text format strictly: every line is a comment, blank, or a well-formed sample. */
export function parseMetrics(text: string): { samples: Sample[]; types: Record<string, string>; help: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  const help: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) { (m[1] === 'HELP' ? help : types)[m[2]] = m[3]; continue; }
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
