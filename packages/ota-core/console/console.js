// The console: a small page over the management API (/api/v1, bearer token). It polls every few
// seconds: rollouts with their waves and a chart of devices updated and failed over time, the fleet
// (a page at a time, by product and tag), and the audit log. Buttons that change a rollout are shown
// to operators and admins only (the API refuses a viewer's changes all the same).

const refreshMs = Number(new URLSearchParams(location.search).get('refresh') ?? 3000);
const RANK = { viewer: 0, operator: 1, admin: 2 };
let me = null;
let cursor = undefined;
const charts = new Map();

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

async function api(path, init = {}) {
  const token = sessionStorage.getItem('otadiff-token');
  const res = await fetch(`/api/v1${path}`, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    signOut(body.error ?? 'signed out');
    throw new Error(body.error);
  }
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

function signOut(why) {
  sessionStorage.removeItem('otadiff-token');
  me = null;
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  $('#login').hidden = false;
  $('#login-error').textContent = why ?? '';
}

async function signIn(token) {
  sessionStorage.setItem('otadiff-token', token);
  try {
    me = await api('/whoami');
  } catch (e) {
    $('#login-error').textContent = e.message;
    return;
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${me.name} (${me.role})`;
  document.body.dataset.role = me.role;
  const products = await api('/products');
  const sel = $('#product');
  for (const p of products.products) sel.append(el('option', { value: p.productKey }, p.productKey));
  await refresh();
}

// ------------------------------------------------------------ rollouts

function rolloutButtons(r) {
  if (me === null || RANK[me.role] < RANK.operator) return [];
  const act = (what) => async (ev) => {
    ev.target.disabled = true;
    try {
      await api(`/rollouts/${r.id}/${what}`, { method: 'POST', body: '{}' });
    } catch (e) {
      alert(e.message);
    }
    await refreshRollouts();
  };
  const out = [];
  if (r.state === 'running') out.push(el('button', { class: 'pause', onclick: act('pause') }, 'Pause'));
  if (r.state === 'paused') out.push(el('button', { class: 'resume', onclick: act('resume') }, 'Resume'));
  if (r.state === 'running' || r.state === 'paused') out.push(el('button', { class: 'cancel', onclick: act('cancel') }, 'Cancel'));
  return out;
}

function drawChart(box, r, points) {
  let chart = charts.get(r.id);
  const data = (key) => points.map((p) => ({ x: (p.t - r.createdAt) / 1000, y: p[key] }));
  if (chart === undefined) {
    const canvas = el('canvas');
    box.append(canvas);
    chart = new Chart(canvas, {
      type: 'line',
      data: {
        datasets: [
          { label: 'updated', data: data('updated'), borderColor: '#1a7f37', pointRadius: 0, stepped: true },
          { label: 'failed', data: data('failed'), borderColor: '#cf222e', pointRadius: 0, stepped: true },
          { label: 'notified', data: data('notified'), borderColor: '#8c959f', pointRadius: 0, stepped: true, borderDash: [4, 3] },
        ],
      },
      options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 's since start' } }, y: { beginAtZero: true, suggestedMax: r.devices } } },
    });
    charts.set(r.id, chart);
  } else {
    chart.data.datasets[0].data = data('updated');
    chart.data.datasets[1].data = data('failed');
    chart.data.datasets[2].data = data('notified');
    chart.update();
  }
}

async function refreshRollouts() {
  const { rollouts } = await api('/rollouts?limit=10');
  const box = $('#rollouts');
  const keep = new Set(rollouts.map((r) => r.id));
  for (const node of [...box.children]) if (!keep.has(node.dataset.rollout)) node.remove();
  if (rollouts.length === 0) box.textContent = 'No rollouts yet.';
  for (const r of rollouts) {
    let node = box.querySelector(`[data-rollout="${r.id}"]`);
    if (node === null) {
      if (box.textContent === 'No rollouts yet.') box.textContent = '';
      node = el('div', { class: 'rollout', 'data-rollout': r.id }, el('h3'), el('div', { class: 'actions' }), el('table', { class: 'waves' }), el('div', { class: 'chart' }));
      box.append(node);
    }
    node.dataset.state = r.state;
    node.querySelector('h3').replaceChildren(
      `${r.id}: ${r.productKey} → ${r.version}${r.rollback ? ' (may roll back)' : ''} for ${r.groups ? `tags ${r.groups.join(', ')}` : 'all devices'} (${r.devices}) `,
      el('span', { class: `state ${r.state}` }, r.state),
      ' ',
      el('span', { class: 'reason' }, r.reason ?? ''),
    );
    node.querySelector('.actions').replaceChildren(...rolloutButtons(r));
    node.querySelector('.waves').replaceChildren(
      el('tr', {}, ...['wave', 'up to', 'devices', 'updated', 'failed', 'skipped', 'in progress', ''].map((h) => el('th', {}, h))),
      ...r.waves.map((w) =>
        el(
          'tr',
          { 'data-wave': w.index, class: w.state },
          el('td', {}, `${w.index + 1} (${r.policy.waves[w.index].percent !== undefined ? `${r.policy.waves[w.index].percent}%` : r.policy.waves[w.index].count})`),
          el('td', {}, w.target),
          el('td', {}, w.devices),
          el('td', { class: 'updated' }, w.succeeded),
          el('td', { class: 'failed' }, w.failed),
          el('td', {}, w.skipped),
          el('td', {}, w.inProgress),
          el('td', {}, w.state),
        ),
      ),
    );
    const t = await api(`/rollouts/${r.id}/timeline`);
    drawChart(node.querySelector('.chart'), r, t.points);
  }
}

// ------------------------------------------------------------ fleet and audit

async function refreshFleet(append = false) {
  const q = new URLSearchParams({ limit: '50' });
  if ($('#product').value) q.set('productKey', $('#product').value);
  if ($('#tag').value.trim()) q.set('tag', $('#tag').value.trim());
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
      el('td', {}, d.tags.join(', ')),
      el('td', {}, d.job ? `${d.job.version}${d.job.rolloutId ? ` (${d.job.rolloutId}, wave ${(d.job.wave ?? -1) + 1})` : ''}${d.job.detail ? `: ${d.job.detail}` : ''}` : ''),
    ),
  );
  if (append) $('#fleet tbody').append(...rows);
  else $('#fleet tbody').replaceChildren(...rows);
}

async function refreshAudit() {
  const { entries } = await api('/audit?limit=30');
  $('#audit tbody').replaceChildren(
    ...entries.map((e) => el('tr', {}, el('td', {}, when(e.at)), el('td', {}, `${e.actor} (${e.role})`), el('td', {}, e.action), el('td', {}, e.target), el('td', {}, JSON.stringify(e.detail)))),
  );
}

async function refresh() {
  if (me === null) return;
  try {
    await refreshRollouts();
    if (cursor === undefined || $('#fleet tbody').children.length <= 50) await refreshFleet();
    await refreshAudit();
  } catch (e) {
    console.warn(e);
  }
}

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void signIn($('#token').value.trim());
});
$('#logout').addEventListener('click', () => signOut());
$('#fleet-filter').addEventListener('submit', (ev) => {
  ev.preventDefault();
  cursor = undefined;
  void refreshFleet();
});
$('#more').addEventListener('click', () => void refreshFleet(true));
setInterval(() => void refresh(), refreshMs);
const saved = sessionStorage.getItem('otadiff-token');
if (saved) void signIn(saved);
else signOut();
