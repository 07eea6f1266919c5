// 上传设置 Upload settings, for admins: the upload cap (hq.tus.maxBytesPerSecond) and windows (hq.tus.windows).
// POST /api/settings/upload writes them into the config file and applies them as SIGHUP does. Loaded after app.js.

(function initUploadSettings() {
  const form = $('upload-settings-form');
  let shown = null;

  function describe(s) {
    const rate = s.maxBytesPerSecond ? t('uploadCap', { v: s.maxBytesPerSecond / 1e6 }) : t('uploadNoCap');
    const windows = s.windows.length ? t('uploadInWindows', { w: s.windows.join(', ') }) : t('uploadAnyTime');
    return t('uploadNow', { rate, windows });
  }

  function show(s) {
    shown = s;
    $('upload-rate').value = String(s.maxBytesPerSecond / 1e6);
    $('upload-windows').value = s.windows.join(', ');
    $('upload-settings-now').textContent = describe(s);
    $('upload-settings-file').textContent = s.file ? t('uploadFile', { file: s.file }) : '';
  }

  async function load() {
    if (document.body.dataset.role !== 'admin') return;
    try {
      const r = await fetch('/api/settings/upload', { cache: 'no-store' });
      if (r.ok) show(await r.json());
    } catch {
      /* offline: shown again at the next login */
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const mb = Number($('upload-rate').value);
    if (!Number.isFinite(mb) || mb < 0) return toast(t('uploadBadRate'), 'error');
    const windows = $('upload-windows')
      .value.split(/[\s,，;；]+/)
      .filter(Boolean);
    const r = await send('/api/settings/upload', { maxBytesPerSecond: Math.round(mb * 1e6), windows });
    if (!r) return;
    show({ ...r, file: shown?.file });
    toast(t('uploadSaved'));
  });
  $('lang').addEventListener('click', () => shown && show(shown));
  let role = document.body.dataset.role;
  new MutationObserver(() => {
    if (document.body.dataset.role === role) return;
    role = document.body.dataset.role;
    load();
  }).observe(document.body, { attributes: true, attributeFilter: ['data-role'] });
  load();
})();
