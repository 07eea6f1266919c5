// The station page: live state over server-sent events, rendered with plain DOM calls (no innerHTML of data).

const I18N = window.DOCKD_I18N;

const REQUIRED = ['caseNo', 'capturedAt', 'place', 'collector', 'purpose'];
const QUEUE_STATES = ['copying', 'stored', 'needs-annotation', 'ready', 'uploading', 'uploaded', 'archived', 'rejected'];
const PURPOSES = ['现场执法', '调查取证', '现场检查', '查封扣押', '询问笔录', '送达'];

let lang = localStorage.getItem('dockd.lang') === 'en' ? 'en' : 'zh';
let state = null;
let heldMark = '';
let queueMark = '';
const held = new Map(); // id -> {li, f} (kept across updates so typing is never lost)
const recent = new Map(); // id -> file annotated from this page
const progress = new Map(); // recorder key -> [{t, done}]
const stateListeners = []; // other scripts' functions called with each new state (pool.js)

const $ = (id) => document.getElementById(id);
function t(key, vars = {}) {
  const s = I18N[lang][key] ?? I18N.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style')
      el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n) || 0,
    i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}
const time = (iso) =>
  iso ? new Date(iso).toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' }) : '—';
// Capture times are ISO 8601 with the station's offset: shown as written (station time), whatever the browser's zone.
const stationTime = (iso) => (iso ? iso.slice(0, 16).replace('T', ' ') : '—');
const dash = (v) => (v === null || v === undefined || v === '' ? '—' : v);
function duration(s) {
  s = Math.max(0, Math.round(s));
  const m = Math.floor(s / 60),
    r = s % 60;
  return lang === 'zh' ? (m ? `${m} 分 ${r} 秒` : `${r} 秒`) : m ? `${m} min ${r} s` : `${r} s`;
}
function toast(msg, kind = 'info') {
  const el = $('toast');
  el.textContent = msg;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

// ---- recorders -----------------------------------------------------------

// Copied and safe, with recordings still going up to HQ (while the link works): 上传中 uploading.
function shownState(r) {
  return r.state === 'done' && r.uploadsPending > 0 && state.links.tus === 'ok' ? 'uploading' : r.state;
}

function eta(r) {
  const key = `${r.volume}#${r.sessionId}`;
  const now = Date.now();
  const list = progress.get(key) ?? [];
  if (!list.length || list[list.length - 1].done !== r.bytes.done) list.push({ t: now, done: r.bytes.done });
  while (list.length > 2 && now - list[0].t > 20000) list.shift();
  progress.set(key, list);
  if (r.state !== 'copying' || list.length < 2) return null;
  const first = list[0],
    last = list[list.length - 1];
  const rate = (last.done - first.done) / ((last.t - first.t) / 1000);
  return rate > 0 ? (r.bytes.total - r.bytes.done) / rate : null;
}

function tile(r) {
  const shown = shownState(r);
  const pct = r.bytes.total > 0 ? Math.min(100, Math.floor((r.bytes.done / r.bytes.total) * 100)) : r.state === 'done' ? 100 : 0;
  const left = eta(r);
  const drift = typeof r.driftMs === 'number' ? `${r.driftMs >= 0 ? '+' : '−'}${duration(Math.abs(r.driftMs) / 1000)}` : null;
  return h(
    'article',
    {
      class: 'tile',
      'data-volume': r.volume,
      'data-state': r.state,
      'data-shown': shown,
      'data-safe': r.safeToUndock ? 'yes' : 'no',
    },
    h(
      'div',
      { class: 'tile-head' },
      h(
        'div',
        { class: 'who' },
        h(
          'strong',
          { class: 'officer-name' },
          r.officerName || (r.officerId ? `${t('officer')} ${r.officerId}` : `${t('officer')} —`),
        ),
        ' ',
        r.officerName ? h('span', { class: 'officer-id' }, `${t('officer')} ${dash(r.officerId)}`) : null,
      ),
      h('span', { class: 'state', 'data-state': shown }, t(`st.${shown}`)),
    ),
    h(
      'div',
      { class: 'meta' },
      h('span', {}, `${t('serial')} `, h('b', { class: 'serial' }, dash(r.serial))),
      h('span', {}, `${t('bay')} `, h('b', {}, dash(r.bay ?? r.name))),
      h('span', {}, `${t('battery')} `, h('b', { class: 'battery' }, typeof r.battery === 'number' ? `${r.battery}%` : '—')),
      h('span', {}, `${t('drift')} `, h('b', { class: 'drift' }, dash(drift))),
    ),
    h(
      'div',
      { class: 'bar', role: 'progressbar', 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100 },
      h('div', { class: 'bar-fill', style: `width:${pct}%` }),
    ),
    h(
      'div',
      { class: 'numbers' },
      h('span', { class: 'files' }, `${r.files.done}/${r.files.total} ${t('files')}`),
      h('span', {}, `${bytes(r.bytes.done)} / ${bytes(r.bytes.total)}`),
      h('span', { class: 'pct' }, `${pct}%`),
      left !== null ? h('span', { class: 'eta' }, t('left', { t: duration(left) })) : null,
      r.uploadsPending > 0 ? h('span', {}, t('uploadsPending', { n: r.uploadsPending })) : null,
    ),
    r.current && r.state === 'copying' ? h('div', { class: 'current small' }, r.current) : null,
    r.error && !(r.leftBehind || []).length ? h('div', { class: 'reason' }, r.error) : null,
    (r.leftBehind || []).length
      ? h(
          'ul',
          { class: 'left-behind reason' },
          ...r.leftBehind.slice(0, 5).map((l) => h('li', {}, t('leftBehind', { p: l.path, r: l.reason }))),
          r.leftBehind.length > 5 ? h('li', {}, `… +${r.leftBehind.length - 5}`) : null,
        )
      : null,
    r.files.settling ? h('div', { class: 'small settling' }, t('settling', { n: r.files.settling })) : null,
    r.files.damaged ? h('div', { class: 'small damaged' }, t('damagedN', { n: r.files.damaged })) : null,
    r.files.superseded ? h('div', { class: 'small superseded' }, t('superseded', { n: r.files.superseded })) : null,
    r.safeToUndock
      ? h('div', { class: 'safe' }, `✔ ${t('safe')}`)
      : ['done', 'error', 'copying', 'paused', 'identifying'].includes(r.state)
        ? h('div', { class: 'not-safe' }, `✖ ${t('notSafe')}`)
        : null,
  );
}

function renderRecorders() {
  const box = $('recorders');
  const recs = state.recorders;
  $('no-recorders').hidden = recs.length > 0;
  $('recorder-count').textContent = recs.length ? String(recs.length) : '';
  box.replaceChildren(...recs.map(tile));
}

// ---- queue, links, disk --------------------------------------------------

function renderQueue() {
  const q = state.queue;
  $('queue-states').replaceChildren(
    ...QUEUE_STATES.map((s) =>
      h(
        'li',
        { 'data-state': s, 'data-count': q[s] ?? 0, class: q[s] ? 'some' : 'none' },
        h('span', {}, t(`q.${s}`)),
        h('b', {}, String(q[s] ?? 0)),
      ),
    ),
  );
  const fact = (k, v, attrs = {}) => [h('dt', {}, t(k)), h('dd', attrs, v)];
  $('queue-facts').replaceChildren(
    ...fact('bytesPending', bytes(q.bytesPending)),
    ...fact('speed', `${bytes(state.uploadBytesPerSecond)}/s`, { id: 'speed' }),
    ...fact('tus', t(state.links.tus), { 'data-link': state.links.tus }),
    ...fact('mqtt', t(state.links.mqtt), { 'data-link': state.links.mqtt }),
    ...fact(
      'awaitingReceipt',
      q.receiptOverdue ? `${q.awaitingReceipt} (${t('overdue', { n: q.receiptOverdue })})` : String(q.awaitingReceipt),
      { 'data-count': q.awaitingReceipt },
    ),
    ...fact('outbox', String(q.outbox)),
    ...(q.waitingFor ? fact('uploadWaiting', q.waitingFor, { id: 'upload-waiting' }) : []),
  );
  for (const [id, link] of [
    ['link-tus', 'tus'],
    ['link-mqtt', 'mqtt'],
  ]) {
    const v = state.links[link];
    $(id).dataset.state = v === 'ok' || v === 'connected' ? 'ok' : 'bad';
    $(id).textContent = `${link === 'tus' ? 'tus' : 'MQTT'} ${t(v)}`;
  }
  const d = state.disk;
  $('disk').hidden = !d;
  if (d) {
    const used = d.totalBytes ? ((d.totalBytes - d.freeBytes) / d.totalBytes) * 100 : 0;
    $('disk-used').style.width = `${used.toFixed(1)}%`;
    $('disk').dataset.level =
      d.reserveBytes !== undefined && d.freeBytes < d.reserveBytes
        ? 'full'
        : d.lowWaterBytes !== undefined && d.freeBytes < d.lowWaterBytes
          ? 'low'
          : 'ok';
    $('disk-text').textContent = t('diskFree', { free: bytes(d.freeBytes), total: bytes(d.totalBytes) });
    const mark = (id, b) => {
      const el = $(id);
      el.hidden = b === undefined || !d.totalBytes;
      if (!el.hidden) el.style.left = `${Math.max(0, Math.min(100, ((d.totalBytes - b) / d.totalBytes) * 100)).toFixed(1)}%`;
    };
    mark('disk-low', d.lowWaterBytes);
    mark('disk-reserve', d.reserveBytes);
    $('disk-marks').textContent =
      d.lowWaterBytes !== undefined ? t('diskMarks', { low: bytes(d.lowWaterBytes), reserve: bytes(d.reserveBytes ?? 0) }) : '';
  }
}

// ---- alarms --------------------------------------------------------------

function renderAlarms() {
  const alarms = state.alarms;
  $('no-alarms').hidden = alarms.length > 0;
  const open = alarms.filter((a) => !a.acknowledged).length;
  $('alarm-count').textContent = alarms.length ? `${open}/${alarms.length}` : '';
  $('alarms-panel').dataset.open = String(open);
  $('alarms').replaceChildren(
    ...alarms.map((a) =>
      h(
        'li',
        { class: 'alarm', 'data-code': a.code, 'data-key': a.key, 'data-acknowledged': a.acknowledged ? 'yes' : 'no' },
        h(
          'div',
          { class: 'alarm-head' },
          h('strong', {}, t(`a.${a.code}`)),
          h('span', { class: 'small' }, t('since', { t: time(a.since) })),
        ),
        h('div', { class: 'alarm-msg small' }, a.message),
        a.acknowledged
          ? h('div', { class: 'acked small' }, t('acked', { by: a.acknowledgedBy, t: time(a.acknowledgedAt) }))
          : h('button', { type: 'button', class: 'ack', onclick: () => acknowledge(a.key) }, t('ack')),
      ),
    ),
  );
}

async function acknowledge(key) {
  const r = await send(`/api/alarms/${encodeURIComponent(key)}/ack`, {});
  if (r) toast(`${t('ack')} ✔`);
}

// ---- recordings that need annotation --------------------------------------

function heldItem(f) {
  const picture =
    f.kind === 'audio'
      ? h('div', { class: 'thumb none' }, `♪ ${t('audio')}`)
      : h('img', {
          class: 'thumb',
          src: `/api/files/${f.id}/thumbnail`,
          alt: f.filename,
          loading: 'lazy',
          width: 160,
          height: 90,
          onerror: (e) => e.target.replaceWith(h('div', { class: 'thumb none' }, t('noPicture'))),
        });
  const input = (name, label, value, required, list) =>
    h(
      'label',
      {},
      h('span', { 'data-label': name }, label, required ? ' *' : ''),
      h('input', { name, value: value ?? '', required, maxlength: 500, autocomplete: 'off', list }),
    );
  const form = h(
    'form',
    {
      class: 'annotate',
      'data-id': f.id,
      onsubmit: (e) => {
        e.preventDefault();
        annotate(f.id, e.target);
      },
    },
    input('caseNo', t('caseNo'), f.caseNo, true),
    input('purpose', t('purpose'), f.purpose, true, 'purposes'),
    input('place', t('place'), f.place, false),
    // A recording whose name and container carry no time: 采集时间 in station time.
    f.capturedAt
      ? null
      : h(
          'label',
          {},
          h('span', { 'data-label': 'capturedAt' }, t('capturedAt'), ' *'),
          h('input', { name: 'capturedAt', type: 'datetime-local', required: true }),
        ),
    h('button', { type: 'submit', class: 'primary' }, t('submit')),
  );
  return h(
    'li',
    { class: 'held-item', 'data-id': f.id },
    picture,
    h(
      'div',
      { class: 'held-info' },
      h(
        'div',
        {},
        h('strong', { class: 'filename' }, f.filename),
        f.important ? h('span', { class: 'tag' }, t('important')) : null,
      ),
      h(
        'div',
        { class: 'small' },
        `${t('capturedAt')} ${stationTime(f.capturedAt)} · ${t('officer')} ${dash(f.officerId)} · ${t('collector')} ${dash(f.collector)}`,
      ),
      h('div', { class: 'reason small' }, missingText(f)),
      form,
    ),
  );
}

function missingText(f) {
  const missing = REQUIRED.filter((k) => !f[k]);
  return missing.length ? t('missing', { f: missing.map((k) => t(k)).join(lang === 'zh' ? '、' : ', ') }) : dash(f.reason);
}

/** A new item for the same recording (new language or data), keeping what was typed into its form. */
function replaceHeld(id, f) {
  const old = held.get(id);
  const li = heldItem(f);
  if (old) {
    for (const input of old.li.querySelectorAll('input')) li.querySelector(`input[name="${input.name}"]`).value = input.value;
    old.li.replaceWith(li);
  }
  held.set(id, { li, f });
  return li;
}

async function refreshHeld() {
  const r = await fetch('/api/files?state=needs-annotation');
  if (!r.ok) return;
  const files = await r.json();
  const ids = new Set(files.map((f) => f.id));
  for (const [id, item] of held)
    if (!ids.has(id)) {
      item.li.remove();
      held.delete(id);
    }
  const list = $('held');
  for (const f of files) {
    const existing = held.get(f.id);
    if (existing) {
      if (existing.f.updatedAt !== f.updatedAt) replaceHeld(f.id, f);
      continue;
    }
    list.append(replaceHeld(f.id, f));
  }
  $('no-held').hidden = files.length > 0;
  $('held-count').textContent = files.length ? String(files.length) : '';
}

async function annotate(id, form) {
  const data = Object.fromEntries(new FormData(form));
  const body = { caseNo: data.caseNo.trim(), purpose: data.purpose.trim() };
  if (data.place.trim()) body.place = data.place.trim();
  if (data.capturedAt) body.capturedAt = data.capturedAt; // station wall time; dockd adds the station's offset
  const r = await send(`/api/files/${id}/annotate`, body);
  if (!r) return;
  recent.set(id, r.file);
  toast(r.missing.length ? t('stillHeld', { id, reason: r.reason }) : t('annotated', { id }), r.missing.length ? 'warn' : 'ok');
  await refreshHeld();
  renderRecent();
}

async function refreshRecent() {
  for (const [id, f] of recent) {
    if (f.state === 'uploaded' || f.state === 'archived') continue;
    const r = await fetch(`/api/files/${id}`);
    if (r.ok) recent.set(id, await r.json());
  }
  renderRecent();
}

function renderRecent() {
  const items = [...recent.values()].slice(-5).reverse();
  $('recent').replaceChildren(
    ...items.map((f) =>
      h(
        'li',
        { 'data-id': f.id, 'data-state': f.state },
        h('span', {}, `#${f.id} ${f.filename} · ${f.caseNo ?? ''}`),
        h('b', { class: 'state', 'data-state': f.state }, t(`q.${f.state}`)),
      ),
    ),
  );
}

// ---- talking to dockd ---------------------------------------------------

/** POSTs JSON; on 401 asks for the admin password once and retries. Returns the JSON body, or null (told). */
async function send(url, body, retried = false) {
  let r;
  try {
    r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    toast(t('unknownError', { m: e.message }), 'error');
    return null;
  }
  const json = await r.json().catch(() => ({}));
  if (r.ok) return json;
  if (r.status === 401 && json.error === 'AUTH_REQUIRED' && !retried) {
    if (await askLogin()) return send(url, body, true);
    return null;
  }
  toast(
    json.error === 'LOCKED_OUT'
      ? t('lockedOut', { s: json.retryAfterSeconds })
      : t('unknownError', { m: json.message ?? r.status }),
    'error',
  );
  return null;
}

$('login').addEventListener('click', loginOrLogout);
$('login-open').addEventListener('click', () => askLogin());

// ---- language and rendering -------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = `${t('title')} · dockd`;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  $('lang').textContent = lang === 'zh' ? 'EN' : '中文';
  const dl = document.getElementById('purposes') ?? document.body.appendChild(h('datalist', { id: 'purposes' }));
  dl.replaceChildren(...PURPOSES.map((p) => h('option', { value: p })));
  for (const [id, { f }] of held) replaceHeld(id, f);
  loadSession();
  if (state) render();
  renderRecent();
}

$('lang').addEventListener('click', () => {
  lang = lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('dockd.lang', lang);
  applyLanguage();
});

function render() {
  $('station').textContent = state.stationId;
  renderRecorders();
  renderQueue();
  renderAlarms();
}

function onState(next) {
  state = next;
  render();
  const hm = `${next.held.count}|${next.held.latest}`;
  if (hm !== heldMark) {
    heldMark = hm;
    refreshHeld();
  }
  const qm = JSON.stringify(next.queue);
  if (qm !== queueMark) {
    queueMark = qm;
    if (recent.size) refreshRecent();
  }
  if (typeof recordingsOnState === 'function') recordingsOnState(next);
  for (const fn of stateListeners) fn(next);
}

applyLanguage();
loadSession().then(connect);
