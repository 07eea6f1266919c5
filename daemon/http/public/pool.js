// 领用 / 归还 Pool recorders: an officer takes or returns a docked pool recorder with their officer id (警号) and PIN
// (POST /api/pool/assign | /api/pool/return, checked like a login); an admin's session may return one without a PIN.
// Loaded after app.js (uses $, t, send, toast) and session.js.

(function initPool() {
  const form = $('pool-form');
  const result = $('pool-result');

  /** The serials of docked recorders the page may name (the kiosk names none: the officer types the one on the label). */
  function listSerials(s) {
    const serials = [...new Set((s?.recorders ?? []).map((r) => r.serial).filter((x) => x && x !== '—'))];
    $('pool-serials').replaceChildren(...serials.map((x) => h('option', { value: x })));
  }

  async function submit(op) {
    const serial = $('pool-serial').value.trim();
    const officerId = $('pool-officer').value.trim();
    const pin = $('pool-pin').value;
    result.textContent = '';
    if (!serial) return toast(t('poolNeedSerial'), 'error');
    const adminReturn = op === 'return' && document.body.dataset.role === 'admin' && !officerId && !pin;
    if (!adminReturn && (!officerId || !pin)) return toast(t('poolNeedOfficer'), 'error');
    const body = adminReturn ? { serial } : { serial, officerId, pin };
    const r = await send(`/api/pool/${op}`, body);
    $('pool-pin').value = ''; // a PIN is never kept on the page
    if (!r) return;
    const text = op === 'assign' ? t('poolAssigned', { serial, officer: officerId }) : t('poolReturned', { serial });
    result.textContent = text;
    result.dataset.outcome = op;
    toast(text);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit('assign');
  });
  $('pool-return').addEventListener('click', () => submit('return'));
  stateListeners.push(listSerials); // the state arrives over the live stream (app.js)
  if (state) listSerials(state);
})();
