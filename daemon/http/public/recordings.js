// The recordings this user may see (an officer their own, an admin all), newest first: details on opening one
// (each look is on the station's record), and for admins an export link that downloads the stored copy.

let recordingsShown = [];
let recordingsMark = '';
let recordingsTimer = null;

async function refreshRecordings() {
  if (!session.authenticated) {
    recordingsShown = [];
    renderRecordings();
    return;
  }
  let r;
  try {
    r = await fetch('/api/files?order=desc&limit=50', { cache: 'no-store' });
  } catch {
    return;
  }
  if (!r.ok) return;
  recordingsShown = await r.json();
  renderRecordings();
}

/** Reloads the list when recordings change state (at most every 5 s: each listing is audited). */
function recordingsOnState(next) {
  const mark = QUEUE_STATES.map((s) => next.queue[s] ?? 0).join(',');
  if (mark === recordingsMark || recordingsTimer) return;
  recordingsMark = mark;
  recordingsTimer = setTimeout(() => {
    recordingsTimer = null;
  }, 5000);
  refreshRecordings();
}

function recordingItem(f) {
  const details = h(
    'details',
    {
      ontoggle: (e) => {
        if (e.target.open) showRecording(f.id, e.target);
      },
    },
    h('summary', {}, `#${f.id} ${f.filename} `, h('b', { class: 'state', 'data-state': f.state }, t(`q.${f.state}`))),
    h('div', { class: 'recording-details small' }, '…'),
  );
  const exportable = f.sha256 && !f.localDeletedAt && session.user?.role === 'admin';
  const damaged = f.integrity === 'damaged';
  const reprobable =
    session.user?.role === 'admin' && f.sha256 && !f.localDeletedAt && (damaged || (f.state === 'stored' && f.probeAfter));
  return h(
    'li',
    { class: 'recording', 'data-id': f.id, 'data-state': f.state, 'data-integrity': f.integrity ?? '' },
    details,
    damaged ? h('span', { class: 'damaged', title: f.integrityNote ?? '' }, ` ${t('damaged')}`) : null,
    exportable ? h('a', { class: 'export', href: `/api/files/${f.id}/export`, download: '' }, t('export')) : null,
    reprobable ? h('button', { class: 'reprobe', type: 'button', onclick: () => reprobeRecording(f.id) }, t('reprobe')) : null,
  );
}

async function reprobeRecording(id) {
  const r = await send(`/api/files/${id}/reprobe`, {});
  if (r) {
    toast(r.message, 'ok');
    refreshRecordings();
  }
}

async function showRecording(id, el) {
  const box = el.querySelector('.recording-details');
  const r = await fetch(`/api/files/${id}`, { cache: 'no-store' }).catch(() => null);
  if (!r?.ok) {
    box.textContent = t('unknownError', { m: r ? r.status : '' });
    return;
  }
  const f = await r.json();
  const row = (k, v) => [h('dt', {}, t(k)), h('dd', { 'data-field': k }, dash(v))];
  box.replaceChildren(
    h(
      'dl',
      {},
      ...row('caseNo', f.caseNo),
      ...row('purpose', f.purpose),
      ...row('place', f.place),
      ...row('collector', f.collector),
      ...row('capturedAt', stationTime(f.capturedAt)),
      ...row('officerId', f.officerId),
      ...row('size', bytes(f.size)),
      ...row('sha256', f.sha256),
      ...(f.integrity === 'damaged' ? row('damaged', f.integrityNote) : []),
      ...(f.playableCopySha256 ? row('playableCopy', f.playableCopySha256) : []),
    ),
  );
}

function renderRecordings() {
  $('no-recordings').hidden = recordingsShown.length > 0;
  $('recordings-count').textContent = recordingsShown.length ? String(recordingsShown.length) : '';
  $('recordings').replaceChildren(...recordingsShown.map(recordingItem));
}

$('lang').addEventListener('click', renderRecordings);
