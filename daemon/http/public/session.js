// Who the page talks as: login (警号 + PIN for officers, name + password for admins), logout, and the live stream,
// which follows the session and reconnects after an error or a refusal (503) with a growing pause.
// Loaded before app.js (nothing runs here at load); its functions use app.js's helpers ($, t, h, toast, held …).

let session = { authenticated: false, user: null, kiosk: false, tls: false };
let live = null;
let liveAttempts = 0;
let liveTimer = null;

function roleName(user) {
  return user.role === 'admin' ? t('roleAdmin') : t('roleOfficer');
}

async function loadSession() {
  try {
    const r = await fetch('/api/session', { cache: 'no-store' });
    if (r.ok) session = await r.json();
  } catch {
    /* offline: keep what we knew */
  }
  const body = document.body;
  body.dataset.role = session.user ? session.user.role : session.kiosk ? 'kiosk' : 'none';
  body.dataset.auth = session.authenticated ? 'yes' : 'no';
  const u = session.user;
  $('who').textContent = u
    ? `${u.name} · ${roleName(u)}${u.officerId ? ` ${u.officerId}` : ''}`
    : session.kiosk
      ? t('kioskView')
      : '';
  const b = $('login');
  b.hidden = false;
  b.textContent = session.authenticated ? t('logout') : t('loginTitle');
  return session;
}

/** The login dialog: resolves true once logged in, false when cancelled. */
function askLogin() {
  const dialog = $('login-dialog');
  if (dialog.open) return Promise.resolve(false);
  $('login-error').hidden = true;
  $('password').value = '';
  dialog.showModal();
  $($('login-name').value ? 'password' : 'login-name').focus();
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.close();
      cleanup();
      resolve(ok);
    };
    const onSubmit = async (e) => {
      e.preventDefault();
      let r,
        json = {};
      try {
        r = await fetch('/api/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: $('login-name').value.trim(), password: $('password').value }),
        });
        json = await r.json().catch(() => ({}));
      } catch (err) {
        json = { message: err.message };
      }
      if (r?.ok) {
        $('password').value = '';
        done(true);
        await sessionChanged();
        return;
      }
      $('login-error').textContent =
        json.error === 'LOCKED_OUT'
          ? t('lockedOut', { s: json.retryAfterSeconds })
          : json.error === 'WRONG_PASSWORD'
            ? `${t('wrongPassword')} (${json.remaining})`
            : json.error === 'ACCOUNT_DISABLED'
              ? t('accountDisabled')
              : (json.message ?? String(r?.status ?? ''));
      $('login-error').hidden = false;
      $('password').value = '';
    };
    const onCancel = (e) => {
      e?.preventDefault?.();
      done(false);
    };
    const cleanup = () => {
      $('login-form').removeEventListener('submit', onSubmit);
      $('login-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
    };
    $('login-form').addEventListener('submit', onSubmit);
    $('login-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
  });
}

/** After a login or a logout: forget what the last user saw, then show what this one may see. */
async function sessionChanged() {
  for (const [, item] of held) item.li.remove();
  held.clear();
  recent.clear();
  heldMark = '';
  queueMark = '';
  renderRecent();
  await loadSession();
  connect();
  if (typeof refreshRecordings === 'function') refreshRecordings();
}

/** The header's button: log in, or log out (the server ends the session; the page forgets what it showed). */
async function loginOrLogout() {
  if (!session.authenticated) {
    await askLogin();
    return;
  }
  await fetch('/api/logout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).catch(() => {});
  toast(t('loggedOut'), 'ok');
  await sessionChanged();
}

function setLive(stateName) {
  const el = $('live');
  el.dataset.state = stateName;
  el.dataset.i18n = stateName;
  el.textContent = t(stateName);
}

/** Opens the live stream (closing the last one). A refused or failed stream is tried again after 1, 2, 4 … 30 s. */
function connect() {
  clearTimeout(liveTimer);
  live?.close();
  if (!session.authenticated && !session.kiosk) {
    live = null;
    setLive('offline');
    askLogin();
    return;
  }
  const es = new EventSource('/api/events');
  live = es;
  es.addEventListener('state', (e) => onState(JSON.parse(e.data)));
  es.addEventListener('session-ended', () => {
    es.close();
    retryLive();
  });
  es.onopen = () => {
    liveAttempts = 0;
    setLive('live');
  };
  es.onerror = () => {
    setLive('offline');
    // CONNECTING: the browser tries again itself. CLOSED: it gave up (401, 503, …): we do, after a pause.
    if (es.readyState === EventSource.CLOSED) retryLive();
  };
}

function retryLive() {
  clearTimeout(liveTimer);
  const wait = Math.min(30, 2 ** Math.min(liveAttempts++, 5)) * 1000;
  liveTimer = setTimeout(async () => {
    const was = session.authenticated;
    await loadSession();
    if (was && !session.authenticated) toast(t('sessionEnded'), 'warn');
    connect();
  }, wait);
}
