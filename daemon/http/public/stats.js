// 统计 Statistics: counts per officer, recorder or capture day over a period (GET /api/stats), as charts (Chart.js,
// served by the station: /vendor/chart.umd.min.js), a table and a CSV download. Loaded after app.js and session.js;
// loads when a user logs in and on each query (each look is on the station's record).

let statsShown = null;
const statsCharts = [];

function isoDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function statsParams() {
  const p = new URLSearchParams({ by: $('stats-by').value });
  if ($('stats-from').value) p.set('from', $('stats-from').value);
  if ($('stats-to').value) p.set('to', $('stats-to').value);
  return p;
}

function statsCsvLink() {
  const p = statsParams();
  p.set('format', 'csv');
  $('stats-csv').href = `/api/stats?${p}`;
}

async function refreshStats() {
  statsCsvLink();
  if (!session.authenticated) {
    statsShown = null;
    renderStats();
    return;
  }
  let r;
  try {
    r = await fetch(`/api/stats?${statsParams()}`, { cache: 'no-store' });
  } catch (e) {
    toast(t('unknownError', { m: e.message }), 'error');
    return;
  }
  const json = await r.json().catch(() => ({}));
  if (!r.ok) {
    toast(t('unknownError', { m: json.message ?? r.status }), 'error');
    return;
  }
  statsShown = json;
  renderStats();
}

function groupLabel(s, g) {
  if (g.key === null) return t('statsUnknown');
  if (s.by === 'officer') return g.name ? `${g.name} ${g.key}` : `${t('officer')} ${g.key}`;
  if (s.by === 'device') return g.name ? `${g.key} (${g.name})` : g.key;
  return g.key;
}

function hoursOf(seconds) {
  return Math.round((seconds / 3600) * 10) / 10;
}

function medianText(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 3600) return duration(seconds);
  const m = Math.round(seconds / 60);
  return lang === 'zh' ? `${Math.floor(m / 60)} 小时 ${m % 60} 分` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const STATS_COLUMNS = [
  ['statsRecordings', (c) => c.recordings],
  ['statsHours', (c) => hoursOf(c.durationSeconds).toFixed(1)],
  ['size', (c) => bytes(c.bytes)],
  ['statsImportant', (c) => c.important],
  ['statsLate', (c) => c.late],
  ['statsAwaiting', (c) => c.awaitingAnnotation],
  ['statsAtHq', (c) => c.atHq],
  ['statsMedian', (c) => medianText(c.medianDockToHqSeconds)],
];

function statsRow(label, c, cell = 'td') {
  return h(
    'tr',
    {},
    h('th', { scope: 'row' }, label),
    ...STATS_COLUMNS.map(([k, f]) => h(cell, { 'data-field': k, class: 'num' }, String(f(c)))),
  );
}

function renderStats() {
  const s = statsShown;
  const table = $('stats-table');
  $('no-stats').hidden = Boolean(s?.groups.length);
  table.hidden = !s?.groups.length;
  $('stats-charts').hidden = !s?.groups.length;
  $('stats-rule').textContent = s ? t('statsRule', { h: s.offloadWithinHours }) : '';
  if (!s) return;
  table
    .querySelector('thead')
    .replaceChildren(
      h('tr', {}, h('th', {}, t(`statsBy.${s.by}`)), ...STATS_COLUMNS.map(([k]) => h('th', { class: 'num' }, t(k)))),
    );
  table.querySelector('tbody').replaceChildren(...s.groups.map((g) => statsRow(groupLabel(s, g), g)));
  table.querySelector('tfoot').replaceChildren(statsRow(t('statsTotal'), s.totals));
  drawStatsCharts(s);
}

function drawStatsCharts(s) {
  for (const c of statsCharts.splice(0)) c.destroy();
  if (typeof Chart === 'undefined' || !s.groups.length) return;
  const labels = s.groups.map((g) => groupLabel(s, g));
  const common = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { position: 'bottom' } },
  };
  statsCharts.push(
    new Chart($('stats-chart-files'), {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: t('statsAtHq'), data: s.groups.map((g) => g.atHq), backgroundColor: '#1a7f37' },
          { label: t('statsAwaiting'), data: s.groups.map((g) => g.awaitingAnnotation), backgroundColor: '#b35900' },
          {
            label: t('statsOnStation'),
            data: s.groups.map((g) => g.recordings - g.atHq - g.awaitingAnnotation),
            backgroundColor: '#8792a2',
          },
        ],
      },
      options: {
        ...common,
        plugins: { ...common.plugins, title: { display: true, text: t('statsRecordings') } },
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    }),
    new Chart($('stats-chart-hours'), {
      type: 'bar',
      data: {
        labels,
        datasets: [
          {
            label: t('statsHours'),
            data: s.groups.map((g) => hoursOf(g.durationSeconds)),
            backgroundColor: '#1f6feb',
            yAxisID: 'y',
          },
          { label: t('statsLate'), data: s.groups.map((g) => g.late), backgroundColor: '#c62828', yAxisID: 'late' },
        ],
      },
      options: {
        ...common,
        plugins: { ...common.plugins, title: { display: true, text: `${t('statsHours')} · ${t('statsLate')}` } },
        scales: {
          y: { beginAtZero: true, position: 'left' },
          late: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false }, ticks: { precision: 0 } },
        },
      },
    }),
  );
}

(function initStats() {
  // The last 30 days up to now: no end day, as the browser's today need not be the station's.
  const today = new Date();
  $('stats-from').value = isoDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 29));
  statsCsvLink();
  $('stats-form').addEventListener('submit', (e) => {
    e.preventDefault();
    refreshStats();
  });
  for (const id of ['stats-from', 'stats-to', 'stats-by']) $(id).addEventListener('change', statsCsvLink);
  $('stats-by').addEventListener('change', refreshStats);
  $('lang').addEventListener('click', renderStats);
  // Loaded once a user is logged in (the page marks it on <body data-auth>), cleared on logout.
  let authed = document.body.dataset.auth;
  new MutationObserver(() => {
    if (document.body.dataset.auth === authed) return;
    authed = document.body.dataset.auth;
    refreshStats();
  }).observe(document.body, { attributes: true, attributeFilter: ['data-auth'] });
  if (authed === 'yes') refreshStats();
})();
