// The cogo dashboard: reads the metrics API of the server that served it, with the JWT the
// user gave (kept in sessionStorage: this tab only), and fills the cards. Everything from the
// API is written with textContent, never as HTML. Each figure also carries its raw value in
// data-value, so tests and scripts can compare it with the API.
'use strict';

const REFRESH_MS = 15000;
const TOKEN_KEY = 'cogo.token';
let token = null;
let claims = {};
let timer = null;
let failureChart = null;
let refreshed = false;  // the artifact viewer loads with the first refresh, then on hash changes

// Errors the page hit, counted on <body data-console-errors> for headless checks.
function countError() {
  const n = Number(document.body.dataset.consoleErrors || 0) + 1;
  document.body.dataset.consoleErrors = String(n);
}
window.addEventListener('error', countError);
window.addEventListener('unhandledrejection', countError);

const $ = (id) => document.getElementById(id);

function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - part.length % 4) % 4)));
  } catch (e) {
    return {};
  }
}

function seconds(v) {
  if (v === null || v === undefined) return '–';
  if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 2 : 1) + ' ms';
  if (v < 120) return v.toFixed(2) + ' s';
  if (v < 7200) return (v / 60).toFixed(1) + ' min';
  return (v / 3600).toFixed(1) + ' h';
}
const percent = (v) => (v === null || v === undefined) ? '–' : (v * 100).toFixed(1) + ' %';
const usd = (v) => (v === null || v === undefined) ? '–' : '$' + Number(v).toFixed(v < 1 ? 4 : 2);
const count = (v) => (v === null || v === undefined) ? '–' : String(v);
const time = (epoch) => epoch ? new Date(epoch * 1000).toISOString().replace('T', ' ').slice(0, 19) : '–';

function figure(id, raw, text) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = raw === null || raw === undefined ? '' : String(raw);
}

function cell(tr, value, className) {
  const td = document.createElement('td');
  if (value instanceof Node) td.appendChild(value);
  else td.textContent = value;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

function fill(tableId, rows, render) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement('tr');
    render(tr, row);
    body.appendChild(tr);
  }
}

function link(text, href) {
  // Only http(s) links: a worker-written URL must not become javascript: or data:.
  if (!/^https?:\/\//i.test(href || '')) {
    const span = document.createElement('span');
    span.textContent = text;
    return span;
  }
  const a = document.createElement('a');
  a.href = href;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.textContent = text;
  return a;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.message || ('HTTP ' + res.status));
    err.status = res.status;
    err.code = body.error;
    throw err;
  }
  return body;
}

function renderLatency(d) {
  figure('wait-p50', d.total.wait_seconds.p50, seconds(d.total.wait_seconds.p50));
  figure('wait-p90', d.total.wait_seconds.p90, seconds(d.total.wait_seconds.p90));
  figure('wait-n', d.total.messages, count(d.total.messages));
  fill('wait-routes', d.routes, (tr, r) => {
    cell(tr, r.service + '/' + r.role);
    cell(tr, count(r.messages));
    cell(tr, seconds(r.wait_seconds.p50));
    cell(tr, seconds(r.wait_seconds.p90));
    cell(tr, seconds(r.handler_seconds.p50));
  });
}

function renderDepth(d) {
  figure('depth-queued', d.total.queued, count(d.total.queued));
  figure('depth-running', d.total.running, count(d.total.running));
  figure('depth-lag', d.total.max_lag_seconds, seconds(d.total.max_lag_seconds));
  fill('depth-routes', d.routes, (tr, r) => {
    cell(tr, r.service + '/' + r.role);
    cell(tr, count(r.due));
    cell(tr, count(r.delayed));
    cell(tr, count(r.running));
    cell(tr, seconds(r.lag_seconds));
  });
}

function renderFailures(d) {
  figure('fail-rate', d.total.failure_rate, percent(d.total.failure_rate));
  figure('fail-failed', d.total.failed, count(d.total.failed));
  figure('fail-dead', d.total.dead_lettered, count(d.total.dead_lettered));
  figure('fail-retried', d.total.retried, count(d.total.retried));
  fill('fail-reasons', d.reasons, (tr, r) => {
    cell(tr, r.service + '/' + r.role);
    cell(tr, r.event);
    cell(tr, r.reason);
    cell(tr, count(r.count));
  });
  if (!window.Chart) return;  // Debian's libjs-chart.js not installed: tables only
  // Every bucket of the window, empty ones too, so the axis is the window.
  const byStart = new Map(d.trend.map((p) => [p.bucket_start, p]));
  const step = d.bucket_seconds;
  const last = Math.floor(Date.now() / 1000 / step) * step;
  const points = [];
  for (let t = last - Math.ceil(d.window_seconds / step - 1) * step; t <= last; t += step) {
    points.push(byStart.get(t) || { bucket_start: t, completed: 0, failed: 0, dead_lettered: 0, retried: 0, failure_rate: 0 });
  }
  const data = {
    labels: points.map((p) => time(p.bucket_start).slice(step >= 86400 ? 5 : 11, step >= 86400 ? 10 : 16)),
    datasets: [
      { type: 'line', label: 'failure rate %', data: points.map((p) => +(p.failure_rate * 100).toFixed(2)),
        borderColor: '#b3261e', backgroundColor: '#b3261e', yAxisID: 'rate', pointRadius: 2 },
      { type: 'bar', label: 'completed', data: points.map((p) => p.completed), backgroundColor: '#8cc79a', yAxisID: 'n', stack: 'n' },
      { type: 'bar', label: 'failed + dead', data: points.map((p) => p.failed + p.dead_lettered), backgroundColor: '#e08a84', yAxisID: 'n', stack: 'n' },
      { type: 'bar', label: 'retried', data: points.map((p) => p.retried), backgroundColor: '#f0c070', yAxisID: 'n', stack: 'n' },
    ],
  };
  if (failureChart) {
    failureChart.data = data;
    failureChart.update('none');
  } else {
    failureChart = new window.Chart($('fail-chart'), {
      data,
      options: {
        animation: false, maintainAspectRatio: false,
        scales: { rate: { position: 'right', min: 0, title: { display: true, text: 'failure %' } },
                  n: { position: 'left', min: 0, stacked: true, title: { display: true, text: 'attempts' } },
                  x: { stacked: true } },
      },
    });
  }
}

function renderDecisions(d) {
  figure('dq-quality', d.total.quality, percent(d.total.quality));
  figure('dq-n', d.total.decisions, count(d.total.decisions));
  figure('dq-pending', d.total.pending, count(d.total.pending));
  fill('dq-agents', d.agents, (tr, a) => {
    cell(tr, a.agent_id);
    cell(tr, count(a.decisions));
    cell(tr, count(a.correct));
    cell(tr, count(a.wrong));
    cell(tr, percent(a.quality));
  });
}

function renderSpend(d) {
  figure('spend-usd', d.total.cost_usd, usd(d.total.cost_usd));
  figure('spend-tokens', d.total.tokens, count(d.total.tokens));
  fill('spend-tenants', d.tenants, (tr, t) => {
    cell(tr, t.tenant);
    cell(tr, usd(t.cost_usd));
    cell(tr, usd(t.spent_today_usd));
    cell(tr, t.daily_cap_usd === null ? '–' : usd(t.daily_cap_usd) + ' (' + percent(t.cap_used) + ')');
  });
  const byModel = new Map();
  for (const r of d.rows) {
    const key = r.tenant + '\u0000' + r.model;
    const m = byModel.get(key) || { tenant: r.tenant, model: r.model || '(none)', tokens: 0, usd: 0 };
    m.tokens += r.input_tokens + r.output_tokens;
    m.usd += r.cost_usd;
    byModel.set(key, m);
  }
  fill('spend-models', [...byModel.values()], (tr, m) => {
    cell(tr, m.tenant);
    cell(tr, m.model);
    cell(tr, count(m.tokens));
    cell(tr, usd(m.usd));
  });
}

function renderAlerts(d) {
  figure('alerts-n', d.active.length, count(d.active.length));
  $('alerts-note').textContent = d.rules.map((r) => r.name + ' ' + r.op + ' ' + r.threshold).join(' · ');
  fill('alerts-active', d.active, (tr, a) => {
    cell(tr, a.rule, a.severity === 'critical' ? 'firing' : '');
    cell(tr, a.key);
    cell(tr, String(+a.value.toFixed(4)));
    cell(tr, String(a.threshold));
    cell(tr, time(a.since));
  });
}

function gateList(gates) {
  const span = document.createElement('span');
  for (const g of gates) {
    const s = document.createElement('span');
    const verdict = g.verdict || 'open';
    s.className = verdict === 'pass' ? 'pass' : verdict === 'fail' ? 'fail' : 'muted';
    s.textContent = g.node + ': ' + verdict + ' ';
    span.appendChild(s);
  }
  if (!gates.length) span.textContent = '–';
  return span;
}

function renderWorkflows(d) {
  fill('wf-summary', d.workflows, (tr, w) => {
    cell(tr, w.workflow_id);
    cell(tr, count(w.runs));
    cell(tr, Object.entries(w.by_status).map(([s, n]) => s + ' ' + n).join(', '));
    cell(tr, seconds(w.duration_seconds.p50));
    cell(tr, percent(w.gates.pass_rate));
  });
  fill('wf-recent', d.recent_runs, (tr, r) => {
    const a = document.createElement('a');
    a.className = 'run';
    a.textContent = '#' + r.run_id;
    a.href = '#run=' + r.run_id;
    cell(tr, a);
    cell(tr, r.workflow_id);
    cell(tr, r.tenant);
    cell(tr, r.status + (r.reason ? ' (' + r.reason + ')' : ''), r.status === 'failed' ? 'fail' : r.status === 'succeeded' ? 'pass' : '');
    cell(tr, gateList(r.gates));
    const links = document.createElement('span');
    for (const art of r.artifacts) {
      links.appendChild(art.api ? artifactLink(art.name, art.api) : link(art.name, art.url));
      links.appendChild(document.createTextNode(' '));
    }
    cell(tr, links);
    cell(tr, time(r.created_at));
  });
}

async function showRun(id) {
  const card = $('card-run');
  if (!id) {
    card.hidden = true;
    return;
  }
  const v = await api('/api/metrics/runs/' + encodeURIComponent(id));
  card.hidden = false;
  $('run-id').textContent = '#' + v.runId;
  $('run-summary').textContent = v.workflowId + ' v' + v.version + ' · ' + v.tenant + ' · ' + v.status +
      (v.reason ? ' (' + v.reason + ')' : '');
  fill('run-steps', v.steps, (tr, s) => {
    cell(tr, s.node + (s.activation > 1 ? ' #' + s.activation : ''));
    cell(tr, s.type);
    cell(tr, s.status, s.status === 'failed' ? 'fail' : s.status === 'succeeded' ? 'pass' : '');
    cell(tr, String(s.startedAt || '').slice(11, 23));
    cell(tr, String(s.finishedAt || '').slice(11, 23));
    cell(tr, s.error || '');
  });
  fill('run-trail', v.events, (tr, e) => {
    cell(tr, String(e.at).slice(11, 23));
    cell(tr, String(e.messageId));
    cell(tr, e.route);
    cell(tr, e.event);
  });
}

// Artifacts are read through this origin's /api/artifacts with the token in a header, like every
// other call: a plain link could not send it, and a token in a URL would end up in logs. A link
// only names the artifact in the fragment (#artifact=<taskId>/<path>); the viewer card fetches it.
const ARTIFACT_API = '/api/artifacts/';

function artifactLink(text, apiPath) {
  const a = document.createElement('a');
  a.className = 'artifact';
  a.textContent = text;
  a.href = '#artifact=' + apiPath.slice(ARTIFACT_API.length);
  return a;
}

function artifactFromHash() {
  const m = /(?:^|[#&])artifact=([A-Za-z0-9._\/-]+)/.exec(location.hash);
  return m && !m[1].includes('..') ? m[1] : null;
}

async function showArtifact(path) {
  const card = $('card-artifact');
  if (!path) {
    card.hidden = true;
    return;
  }
  card.hidden = false;
  $('artifact-path').textContent = path;
  $('artifact-files').replaceChildren();
  const body = $('artifact-body');
  body.dataset.state = 'loading';
  try {
    const d = await api(ARTIFACT_API + path.split('/').map(encodeURIComponent).join('/'));
    if (Array.isArray(d.files) && d.taskId !== undefined) {
      // A task: its files, each a link to itself.
      for (const f of d.files) {
        const li = document.createElement('li');
        li.appendChild(artifactLink(f.path + ' (' + f.bytes + ' bytes)', ARTIFACT_API + d.taskId + '/' + f.path));
        $('artifact-files').appendChild(li);
      }
      body.textContent = '';
    } else {
      body.textContent = typeof d.text === 'string' ? d.text : JSON.stringify(d, null, 2);
    }
    body.dataset.state = 'shown';
  } catch (e) {
    body.textContent = e.status === 404 ? 'not found (or not within your tenant)' : 'could not load: ' + e.message;
    body.dataset.state = e.status === 404 ? 'not_found' : 'error';
  }
}

function runFromHash() {
  const m = /(?:^|[#&])run=(\d+)/.exec(location.hash);
  return m ? m[1] : null;
}

async function refresh() {
  clearTimeout(timer);
  const w = encodeURIComponent($('window').value);
  try {
    const jobs = [
      api('/api/metrics/bus/latency?window=' + w).then(renderLatency),
      api('/api/metrics/bus/depth').then(renderDepth),
      api('/api/metrics/bus/failures?window=' + w).then(renderFailures),
      api('/api/metrics/decisions?window=' + w).then(renderDecisions),
      api('/api/metrics/spend?window=' + w).then(renderSpend),
      api('/api/metrics/workflows?window=' + w).then(renderWorkflows),
      showRun(runFromHash()),
    ];
    if (!refreshed) jobs.push(showArtifact(artifactFromHash()));
    refreshed = true;
    if (claims.role === 'service_role') {
      jobs.push(api('/api/alerts').then(renderAlerts));
    } else {
      $('alerts-note').textContent = 'Alerts cover every tenant: they need a service_role token.';
    }
    await Promise.all(jobs);
    $('error').textContent = '';
    $('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
    document.body.dataset.state = 'ready';
    // How many refreshes completed, for headless checks that the page keeps itself current.
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    if (e.status === 401 || e.status === 403) return signIn(e.message);
    $('error').textContent = 'Could not refresh: ' + e.message;
    document.body.dataset.state = 'error';
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function signIn(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  $('cards').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  document.body.dataset.state = 'login';
}

function openDashboard(jwt) {
  token = jwt.trim();
  claims = decodeClaims(token);
  sessionStorage.setItem(TOKEN_KEY, token);
  $('scope').textContent = claims.role === 'service_role' ? 'all tenants (service_role)' : 'tenant ' + (claims.tenant || '?');
  $('login').hidden = true;
  $('cards').hidden = false;
  $('logout').hidden = false;
  refresh();
}

function start() {
  // A token handed over in the fragment (never sent to a server) is taken and removed from the URL.
  const m = /(?:^|[#&])token=([A-Za-z0-9_.-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    const rest = location.hash.replace(m[0], '').replace(/^[#&]+/, '');
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    openDashboard($('token').value);
  });
  $('logout').addEventListener('click', () => signIn(''));
  $('window').addEventListener('change', refresh);
  $('run-close').addEventListener('click', () => {
    history.replaceState(null, '', location.pathname);
    $('card-run').hidden = true;
  });
  $('artifact-close').addEventListener('click', () => {
    history.replaceState(null, '', location.pathname);
    $('card-artifact').hidden = true;
  });
  window.addEventListener('hashchange', () => {
    Promise.all([showRun(runFromHash()), showArtifact(artifactFromHash())])
      .catch((e) => { $('error').textContent = e.message; });
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) openDashboard(saved);
  else signIn('');
}

start();
