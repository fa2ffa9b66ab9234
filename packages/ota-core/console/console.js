// The console: a small page over the management API (/api/v1, bearer token). It polls (every 3 s,
// or ?refresh=MS): rollouts with their waves and a chart of devices updated and failed over time,
// the fleet (a summary per product, then a page of devices at a time, by product and tag), and the
// audit log. Buttons that change a rollout are shown to operators and admins only (the API refuses
// a viewer's changes all the same). The token stays in this tab's sessionStorage. Every failure is
// shown on the page: a failed refresh above the sections, a refused button beside it.

const refreshParam = Number(new URLSearchParams(location.search).get('refresh'));
const refreshMs = Number.isFinite(refreshParam) && refreshParam >= 200 ? refreshParam : 3000;
// The per-product summary groups the whole fleet: on a large one, where that takes a while, it is
// read less often (twenty times as long as it took), and says when it was read.
const RANK = { viewer: 0, operator: 1, admin: 2 };
const FINAL = new Set(['completed', 'cancelled']);
const TOKEN_KEY = 'otadiff-token';

let me = null;
// Each sign-in starts a session; a refresh loop or answer of an older one is dropped.
let session = 0;
let timer;
let cursor;
let filter = { productKey: '', tag: '' };
let summaryAt = 0;
let summaryEveryMs = 0;
const charts = new Map();
const timelineState = new Map();

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
};
const when = (ms) => (ms ? new Date(ms).toLocaleString() : '');
/** Seconds as 45 s, 12 min, 3.5 h: a rollout lasts seconds or days. */
const span = (s) => (s < 120 ? `${+s.toFixed(1)} s` : s < 7200 ? `${+(s / 60).toFixed(1)} min` : `${+(s / 3600).toFixed(1)} h`);

/** An answer that arrived after a sign-out (or was one): nothing to show. */
class SignedOut extends Error {}

async function api(path, init = {}) {
  const mine = session;
  const token = sessionStorage.getItem(TOKEN_KEY);
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  } catch (e) {
    throw new Error(`the cloud does not answer (${e.message})`);
  }
  const body = await res.json().catch(() => ({}));
  if (mine !== session) throw new SignedOut('signed out');
  if (res.status === 401) {
    signOut(`error: ${body.error ?? 'signed out'}`);
    throw new SignedOut('signed out');
  }
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

function showError(e) {
  const box = $('#error');
  if (e === undefined) {
    box.hidden = true;
    box.textContent = '';
  } else if (!(e instanceof SignedOut)) {
    box.hidden = false;
    box.textContent = `error: ${e.message}`;
  }
}

function signOut(why) {
  session++;
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  for (const c of charts.values()) c.destroy();
  charts.clear();
  timelineState.clear();
  cursor = undefined;
  filter = { productKey: '', tag: '' };
  summaryAt = 0;
  summaryEveryMs = 0;
  $('#summary-at').textContent = '';
  $('#rollouts').replaceChildren();
  $('#fleet tbody').replaceChildren();
  $('#audit tbody').replaceChildren();
  $('#summary').replaceChildren();
  $('#product').replaceChildren(el('option', { value: '' }, 'all'));
  $('#tag').value = '';
  $('#filter-error').textContent = '';
  showError();
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  $('#updated').textContent = '';
  delete document.body.dataset.role;
  $('#login').hidden = false;
  $('#login-error').textContent = why ?? '';
}

async function signIn(token) {
  signOut();
  const mine = session;
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    me = await api('/whoami');
  } catch (e) {
    if (mine !== session) return;
    sessionStorage.removeItem(TOKEN_KEY);
    $('#login-error').textContent = `error: ${e.message}`;
    return;
  }
  $('#token').value = '';
  $('#login').hidden = true;
  $('#login-error').textContent = '';
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${me.name} (${me.role})`;
  document.body.dataset.role = me.role;
  try {
    const { products } = await api('/products');
    for (const p of products) $('#product').append(el('option', { value: p.productKey }, p.productKey));
  } catch (e) {
    showError(e);
  }
  await loop(mine);
}

async function loop(mine) {
  if (mine !== session) return;
  await refresh();
  if (mine === session) timer = setTimeout(() => void loop(mine), refreshMs);
}

// ------------------------------------------------------------ rollouts

function rolloutButtons(r, errorBox) {
  if (me === null || RANK[me.role] < RANK.operator) return [];
  const act = (what) => async (ev) => {
    if (what === 'cancel' && !confirm(`Cancel rollout ${r.id}? Nothing more is sent; devices downloading are told to stop. It cannot be resumed.`)) return;
    ev.target.disabled = true;
    errorBox.textContent = '';
    try {
      await api(`/rollouts/${r.id}/${what}`, { method: 'POST', body: '{}' });
    } catch (e) {
      if (!(e instanceof SignedOut)) errorBox.textContent = `error: ${what} refused: ${e.message}`;
      ev.target.disabled = false;
      return;
    }
    try {
      await refreshRollouts();
      await refreshAudit();
    } catch (e) {
      showError(e);
    }
  };
  const out = [];
  if (r.state === 'running') out.push(el('button', { class: 'pause', onclick: act('pause') }, 'Pause'));
  if (r.state === 'paused') out.push(el('button', { class: 'resume', onclick: act('resume') }, 'Resume'));
  if (r.state === 'running' || r.state === 'paused') out.push(el('button', { class: 'cancel', onclick: act('cancel') }, 'Cancel'));
  return out;
}

/** Timeline points as chart data, with a last point at the cloud's now (or the end) so the lines reach it. */
function chartData(r, t) {
  const points = [...t.points];
  const end = r.finishedAt ?? t.now;
  const last = points[points.length - 1];
  if (last !== undefined && end > last.t) points.push({ ...last, t: end });
  return (key) => points.map((p) => ({ x: (p.t - r.createdAt) / 1000, y: p[key] }));
}

function drawChart(box, r, t) {
  if (typeof Chart === 'undefined') return;
  const data = chartData(r, t);
  let chart = charts.get(r.id);
  if (chart === undefined) {
    const canvas = el('canvas', { 'aria-label': `devices updated and failed over time in rollout ${r.id}`, role: 'img' });
    box.replaceChildren(canvas);
    chart = new Chart(canvas, {
      type: 'line',
      data: {
        datasets: [
          { label: 'updated', data: data('updated'), borderColor: '#1a7f37', pointRadius: 0, stepped: true },
          { label: 'failed', data: data('failed'), borderColor: '#cf222e', pointRadius: 0, stepped: true },
          { label: 'notified', data: data('notified'), borderColor: '#8c959f', pointRadius: 0, stepped: true, borderDash: [4, 3] },
        ],
      },
      options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'since the start' }, ticks: { callback: (v) => span(v) } }, y: { beginAtZero: true, suggestedMax: r.devices, ticks: { precision: 0 } } } },
    });
    charts.set(r.id, chart);
  } else {
    chart.data.datasets[0].data = data('updated');
    chart.data.datasets[1].data = data('failed');
    chart.data.datasets[2].data = data('notified');
    chart.options.scales.y.suggestedMax = r.devices;
    chart.update();
  }
}

function waveLabel(r, w) {
  const a = r.policy.waves[w.index];
  return `${w.index + 1} (${a === undefined ? '?' : a.percent !== undefined ? `${a.percent}%` : a.count})`;
}

async function refreshRollouts() {
  const { rollouts } = await api('/rollouts?limit=10');
  const box = $('#rollouts');
  const keep = new Set(rollouts.map((r) => r.id));
  for (const node of [...box.querySelectorAll('.rollout')]) {
    if (keep.has(node.dataset.rollout)) continue;
    charts.get(node.dataset.rollout)?.destroy();
    charts.delete(node.dataset.rollout);
    timelineState.delete(node.dataset.rollout);
    node.remove();
  }
  box.querySelector('.empty')?.remove();
  if (rollouts.length === 0) box.append(el('p', { class: 'empty' }, 'No rollouts yet.'));
  for (const [i, r] of rollouts.entries()) {
    let node = box.querySelector(`[data-rollout="${r.id}"]`);
    if (node === null) {
      node = el('div', { class: 'rollout', 'data-rollout': r.id }, el('h3'), el('p', { class: 'policy' }), el('div', { class: 'actions' }), el('p', { class: 'action-error error', role: 'alert' }), el('table', { class: 'waves' }), el('div', { class: 'chart' }));
      // Newest first, as the API lists them.
      box.insertBefore(node, box.querySelectorAll('.rollout')[i] ?? null);
    }
    node.dataset.state = r.state;
    node.querySelector('h3').replaceChildren(
      `${r.id}: ${r.productKey} → ${r.version}${r.rollback ? ' (may roll back)' : ''} for ${r.groups ? `tags ${r.groups.join(', ')}` : 'all devices'} (${r.devices}) `,
      el('span', { class: `state ${r.state}` }, r.state),
      ' ',
      el('span', { class: 'reason' }, r.reason ?? ''),
    );
    const p = r.policyText;
    node.querySelector('.policy').textContent = `waves ${p.waves}; a wave must reach ${p.successThreshold}; stops after ${p.maxFailures} failures; device timeout ${p.timeout}; retries ${p.retries}. Created by ${r.createdBy}, ${when(r.createdAt)}${r.finishedAt ? `; ended ${when(r.finishedAt)}` : ''}.`;
    // The buttons are made again only when the state changes: a refresh never swaps one under a click.
    const actions = node.querySelector('.actions');
    if (actions.dataset.state !== r.state) {
      actions.replaceChildren(...rolloutButtons(r, node.querySelector('.action-error')));
      actions.dataset.state = r.state;
    }
    node.querySelector('.waves').replaceChildren(
      el('tr', {}, ...['wave', 'up to', 'devices', 'updated', 'failed', 'skipped', 'cancelled', 'in progress', ''].map((h) => el('th', {}, h))),
      ...r.waves.map((w) =>
        el(
          'tr',
          { 'data-wave': w.index, class: w.state },
          el('td', {}, waveLabel(r, w)),
          el('td', {}, w.target),
          el('td', { class: 'devices' }, w.devices),
          el('td', { class: 'updated' }, w.succeeded),
          el('td', { class: 'failed' }, w.failed),
          el('td', {}, w.skipped),
          el('td', {}, w.cancelled),
          el('td', { class: 'in-progress' }, w.inProgress),
          el('td', { class: 'wave-state' }, w.state),
        ),
      ),
    );
    // A finished rollout's timeline no longer changes: read once more after it ended, then no more.
    if (!FINAL.has(r.state) || timelineState.get(r.id) !== r.state) {
      const t = await api(`/rollouts/${r.id}/timeline`);
      timelineState.set(r.id, r.state);
      drawChart(node.querySelector('.chart'), r, t);
    }
  }
}

// ------------------------------------------------------------ fleet and audit

async function refreshFleet(append = false) {
  const q = new URLSearchParams({ limit: '50' });
  if (filter.productKey) q.set('productKey', filter.productKey);
  if (filter.tag) q.set('tag', filter.tag);
  if (append && cursor) q.set('cursor', cursor);
  const page = await api(`/devices?${q}`);
  cursor = page.nextCursor;
  $('#more').hidden = cursor === undefined;
  const rows = page.devices.map((d) =>
    el(
      'tr',
      { 'data-device': `${d.productKey}/${d.deviceName}` },
      el('td', {}, `${d.productKey}/${d.deviceName}`),
      el('td', { class: 'version' }, d.version ?? 'never seen'),
      el('td', { class: 'state' }, d.state),
      el('td', { class: 'tags' }, d.tags.join(', ')),
      el('td', {}, when(d.lastSeen)),
      el('td', { class: 'job' }, d.job ? `${d.job.version}${d.job.rolloutId ? ` (${d.job.rolloutId}, ${d.job.wave === null ? 'no wave yet' : `wave ${d.job.wave + 1}`})` : ''}${d.job.detail ? `: ${d.job.detail}` : ''}` : ''),
    ),
  );
  if (append) $('#fleet tbody').append(...rows);
  else $('#fleet tbody').replaceChildren(...rows);
  if (!append && rows.length === 0) $('#fleet tbody').append(el('tr', { class: 'none' }, el('td', { colspan: '6' }, filter.tag ? `No device carries the tag ${filter.tag}.` : 'No devices.')));
}

async function refreshSummary() {
  const t0 = Date.now();
  const { products } = await api('/status');
  summaryEveryMs = Math.max(refreshMs, 20 * (Date.now() - t0));
  summaryAt = Date.now();
  const count = (o) =>
    Object.entries(o)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ×${n}`)
      .join(', ');
  $('#summary').replaceChildren(...products.map((p) => el('li', { 'data-product': p.productKey }, `${p.productKey}: ${p.devices} devices; versions ${count(p.versions) || 'none'}; states ${count(p.states) || 'none'}`)));
  $('#summary-at').textContent = summaryEveryMs > refreshMs ? `(as of ${new Date(summaryAt).toLocaleTimeString()})` : '';
}

async function refreshAudit() {
  const { entries } = await api('/audit?limit=30');
  $('#audit tbody').replaceChildren(
    ...entries.map((e) =>
      el('tr', { 'data-action': e.action }, el('td', {}, when(e.at)), el('td', { class: 'actor' }, `${e.actor} (${e.role})`), el('td', { class: 'action' }, e.action), el('td', { class: 'target' }, e.target), el('td', { class: 'detail' }, JSON.stringify(e.detail))),
    ),
  );
}

async function refresh() {
  if (me === null) return;
  const mine = session;
  // Each part on its own: a failing one does not stop the others; the first failure is shown.
  const errors = typeof Chart === 'undefined' ? [new Error('chart.js did not load (/vendor/chart.umd.min.js): no charts')] : [];
  const parts = [
    refreshRollouts,
    async () => {
      if (Date.now() - summaryAt >= summaryEveryMs) await refreshSummary();
    },
    async () => {
      // Past the first page (More devices), the rows stay as they are until the filter is applied again.
      if ($('#fleet tbody').children.length <= 50) await refreshFleet();
    },
    refreshAudit,
  ];
  for (const part of parts) {
    try {
      await part();
    } catch (e) {
      if (e instanceof SignedOut || mine !== session) return;
      errors.push(e);
    }
  }
  showError(errors[0]);
  if (errors.length === 0) $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void signIn($('#token').value.trim());
});
$('#logout').addEventListener('click', () => signOut());
$('#fleet-filter').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const before = filter;
  filter = { productKey: $('#product').value, tag: $('#tag').value.trim() };
  cursor = undefined;
  $('#filter-error').textContent = '';
  try {
    await refreshFleet();
  } catch (e) {
    // A refused filter (a malformed tag) is not kept: the next refresh shows the previous one.
    filter = before;
    if (!(e instanceof SignedOut)) $('#filter-error').textContent = `error: ${e.message}`;
  }
});
$('#more').addEventListener('click', async () => {
  try {
    await refreshFleet(true);
  } catch (e) {
    showError(e);
  }
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) void signIn(saved);
else signOut();
