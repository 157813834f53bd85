// secmon dashboard: plain ES module, no build step. Reads the /v1 API with
// the session cookie (HttpOnly; this script never sees it) and sends the
// CSRF token on every change. The DOM is built with textContent only: no
// server or log value is ever parsed as HTML.

const S = {
  session: null,        // {user, role, csrf, idle_timeout_s, active_sessions}
  dashboards: null,     // dashboards.json
  timer: null,
  charts: new Map(),    // panel id -> uPlot
  route: '',
  gen: 0,               // render generation: stale async results are dropped
};

// ------------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (s, el = document) => el.querySelector(s);

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = S.session ? S.session.csrf : '';
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch { /* empty body */ }
  if (r.status === 401 && !path.startsWith('/ui/api/login')) {
    showLogin('Your session has ended; log in again.');
    throw new HttpError(401, data);
  }
  if (!r.ok) throw new HttpError(r.status, data);
  return data;
}

const canRespond = () => S.session && (S.session.role === 'admin' || S.session.role === 'responder');

function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en');
  return String(Number(v.toFixed(digits)));
}
function fmtTime(t) {
  if (!t) return '–';
  const d = new Date(t);
  return d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}
/// Compact time for table cells: the time of day within the last day, else the date too (UTC).
function fmtShort(t) {
  if (!t) return '–';
  const iso = new Date(t).toISOString();
  return Date.now() - t < 86400e3 ? iso.slice(11, 19) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}
/// Axis numbers with SI suffixes, so millions fit the axis.
function fmtAxis(v) {
  const a = Math.abs(v);
  return a >= 1e9 ? `${+(v / 1e9).toFixed(1)}G` : a >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : a >= 1e4 ? `${+(v / 1e3).toFixed(1)}k` : String(+v.toFixed(3));
}
function fmtLeft(ms) {
  if (ms <= 0) return 'expired';
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600),
    m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}
function groupText(group) {
  return (group || []).map(([k, v]) => `${k.replace(/^fields\./, '')}=${v}`).join(' ');
}

// --------------------------------------------------------------- time range

const DUR = { m: 60e3, h: 3600e3, d: 86400e3 };
function parseDur(s) {
  const m = /^(\d+)([mhd])$/.exec(s || '');
  return m ? Number(m[1]) * DUR[m[2]] : null;
}
function range() {
  const sel = $('#range').value;
  const now = Date.now();
  if (sel === 'custom') {
    const from = Date.parse($('#range-from').value), to = Date.parse($('#range-to').value);
    if (!Number.isNaN(from) && !Number.isNaN(to) && from < to) return { since: from, until: to, label: 'custom' };
    return { since: now - DUR.d, until: now, label: '24h' };
  }
  return { since: now - parseDur(sel), until: now, label: sel };
}
function sinceParam(r) { return `since=${Math.round(r.since)}&until=${Math.round(r.until)}`; }

// -------------------------------------------------------------------- login

function showLogin(msg) {
  S.session = null;
  stopTimer();
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg || '';
  $('#login-user').focus();
}

async function doLogin(ev) {
  ev.preventDefault();
  const btn = $('#login-submit');
  btn.disabled = true;
  $('#login-error').textContent = '';
  try {
    const r = await fetch('/ui/api/login', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ user: $('#login-user').value, password: $('#login-password').value }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      $('#login-error').textContent = body.message || `login failed (${r.status})`;
      return;
    }
    $('#login-password').value = '';
    await start();
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try { await api('/ui/api/logout', { method: 'POST' }); } catch { /* already gone */ }
  showLogin('Logged out.');
}

// ------------------------------------------------------------------- charts

const COLORS = ['#73bf69', '#f2495c', '#5794f2', '#fade2a', '#b877d9', '#ff9830', '#8ab8ff', '#96d98d'];

async function querySeries(q, r) {
  let url = `/v1/series?metric=${encodeURIComponent(q.metric)}&func=${q.func || 'last'}&${sinceParam(r)}`;
  if (q.labels) url += `&labels=${encodeURIComponent(q.labels)}`;
  if (q.step) url += `&step=${q.step}`;
  try {
    return { url, data: await api(url) };
  } catch (e) {
    if (e.status === 404) return { url, data: [], missing: true };
    throw e;
  }
}

function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i][1] !== null) return points[i][1];
  return null;
}
function sumValues(points) {
  let s = null;
  for (const [, v] of points) if (v !== null) s = (s || 0) + v;
  return s;
}
function labelText(s) {
  const l = Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`).join(',');
  return l ? `${s.metric}{${l}}` : s.metric;
}

function classFor(v, th) {
  if (!th || v === null) return '';
  return v >= th[1] ? 'crit' : v >= th[0] ? 'warn' : 'ok';
}

function gaugeSvg(v, p) {
  const max = p.max || 100, f = Math.max(0, Math.min(1, (v || 0) / max));
  const a = Math.PI * (1 - f), x = 90 + 70 * Math.cos(a), y = 90 - 70 * Math.sin(a);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 180 100');
  const bg = document.createElementNS(ns, 'path');
  bg.setAttribute('d', 'M20 90 A70 70 0 0 1 160 90');
  bg.setAttribute('stroke', '#2c3235'); bg.setAttribute('stroke-width', '14'); bg.setAttribute('fill', 'none');
  svg.append(bg);
  if (v !== null && f > 0) {
    const fg = document.createElementNS(ns, 'path');
    fg.setAttribute('d', `M20 90 A70 70 0 0 1 ${x.toFixed(1)} ${y.toFixed(1)}`);
    const c = classFor(v, p.thresholds);
    fg.setAttribute('stroke', c === 'crit' ? '#f2495c' : c === 'warn' ? '#fade2a' : '#73bf69');
    fg.setAttribute('stroke-width', '14'); fg.setAttribute('fill', 'none');
    svg.append(fg);
  }
  return svg;
}

function plot(p, body, series) {
  const xs = new Set();
  for (const s of series) for (const [t] of s.points) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const idx = new Map(x.map((t, i) => [t, i]));
  const ys = series.map(s => {
    const y = new Array(x.length).fill(null);
    for (const [t, v] of s.points) y[idx.get(t)] = v;
    return y;
  });
  const data = [x.map(t => t / 1000), ...ys];
  const width = Math.max(280, body.clientWidth || 320);
  const key = `${p.id}:${series.map(labelText).join('|')}`;
  const old = S.charts.get(p.id);
  if (old && old._key === key && old.root.isConnected) {
    old.setData(data);
    return;
  }
  if (old) old.destroy();
  // A sparkline (stat panels with `spark`): the line alone, under the number.
  const opts = {
    width, height: p.spark ? 48 : 180,
    legend: { show: false },
    cursor: p.spark ? { show: false } : { drag: { x: false, y: false } },
    axes: p.spark ? [{ show: false }, { show: false }]
      : [{ stroke: '#8e8e8e', grid: { stroke: '#2c3235' } }, { stroke: '#8e8e8e', grid: { stroke: '#2c3235' }, size: 50, values: (u, vals) => vals.map(fmtAxis) }],
    scales: p.spark ? { y: { range: (u, lo, hi) => [Math.min(0, lo), Math.max(1, hi)] } } : {},
    series: [{}, ...series.map((s, i) => ({
      label: s._name || labelText(s),
      stroke: COLORS[(p.spark ? 2 : i) % COLORS.length],
      width: 1.5,
      fill: p.type === 'area' || p.spark ? COLORS[(p.spark ? 2 : i) % COLORS.length] + '40' : undefined,
      // A sparkline joins sparse samples, and marks them when there are few
      // (one sample alone draws no line).
      spanGaps: !!p.spark,
      points: p.spark ? { show: series[0].points.filter(x => x[1] !== null).length < 8, size: 5 } : undefined,
    }))],
  };
  const chart = new window.uPlot(opts, data, body);
  chart._key = key;
  S.charts.set(p.id, chart);
}

// ------------------------------------------------------------------- panels

function panelShell(p, page) {
  const rule = (p.rules && p.rules[0]) || (p.type === 'alerts' && p.rule);
  const title = rule
    ? h('a', { href: `#/alerts?rule=${encodeURIComponent(rule)}`, title: 'alerts behind this panel' }, p.title)
    : p.title;
  // The events behind it: the archive's log search for the panel's events.
  const events = p.events || p.where;
  const links = h('span', { class: 'links' },
    rule ? h('a', { href: `#/alerts?rule=${encodeURIComponent(rule)}`, class: 'to-alerts' }, 'alerts') : null,
    events ? h('a', { href: logsLink(events), class: 'to-events' }, 'events') : null);
  const cls = 'panel' + (p.wide ? ' wide' : '') + (p.full ? ' full' : '');
  return h('section', { class: cls, 'data-panel': `${page}/${p.id}`, 'data-type': p.type, 'data-state': 'loading' },
    h('h2', {}, title, links), h('div', { class: 'body' }));
}

/// The log search page for `where`, over the given times or the picker's range.
function logsLink(where, since, until) {
  let q = `#/logs?q=${encodeURIComponent(where)}`;
  if (since !== undefined) q += `&since=${Math.round(since)}&until=${Math.round(until)}`;
  return q;
}

/// A value as a literal of the condition language: numbers bare, the rest quoted.
function literal(v) {
  return /^-?\d+(\.\d+)?$/.test(v) ? v : JSON.stringify(v);
}

/// Matching archived events counted by `p.by` in time buckets (/v1/archive/counts).
function countsUrl(p, r, buckets, top) {
  return `/v1/archive/counts?where=${encodeURIComponent(p.where)}&by=${encodeURIComponent(p.by)}` +
    `&${sinceParam(r)}&buckets=${buckets}&top=${top}`;
}

/// Values of `field` in the groups of the panel's rule's alerts in range:
/// value -> alerts, so rows can link to the alerts behind them.
async function alertedValues(p, r) {
  const out = new Map();
  const rule = p.rules && p.rules[0];
  if (!rule) return out;
  const list = await api(`/v1/alerts?rule=${encodeURIComponent(rule)}&since=${new Date(r.since).toISOString()}&limit=1000`);
  for (const a of list) {
    const v = (a.group || []).find(([k]) => k === p.by)?.[1];
    if (v !== undefined) out.set(String(v), (out.get(String(v)) || 0) + 1);
  }
  return out;
}

/// Archive-backed panels scan the archive on its writer thread (which also
/// makes ingested events durable): on auto-refresh they are re-read at most
/// this often; opening a page or changing the range reads them at once.
const ARCHIVE_REFRESH_MS = 30000;

async function renderPanel(p, el, r) {
  const body = $('.body', el);
  const done = (attrs = {}) => {
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    el.setAttribute('data-state', 'ready');
  };
  switch (p.type) {
    case 'gauge':
    case 'stat': {
      let rr = r;
      if (p.window) {
        const w = parseDur(p.window);
        rr = { since: r.until - 2 * w, until: r.until };
      }
      const q = { metric: p.metric, labels: p.labels, func: p.func, step: p.window };
      const { url, data, missing } = await querySeries(q, rr);
      const pts = data.length ? data[0].points : [];
      const v = p.total ? sumValues(pts) ?? (data.length ? 0 : null) : lastValue(pts);
      // secmon's own dashboard sessions, as a small figure beside the
      // monitored application's (panel option `dashboard_sessions`).
      let own = null;
      if (p.dashboard_sessions) {
        const s = await api('/ui/api/session');
        S.session = s;
        own = s.active_sessions;
      }
      let spark = $('.spark', body);
      body.replaceChildren(
        p.type === 'gauge' ? h('div', { class: 'gauge' }, gaugeSvg(v, p)) : '',
        h('div', { class: `big value ${classFor(v, p.thresholds)}`, 'data-value': v === null ? '' : v }, fmtNum(v)),
        p.spark ? (spark || (spark = h('div', { class: 'spark' }))) : '',
        h('div', { class: 'note' }, missing ? `no data yet (${p.metric} not recorded)` : (p.unit || '') + (p.window ? ` · last ${p.window} window` : '')),
        own === null ? '' : h('div', { class: 'note own-sessions', 'data-value': own },
          `secmon dashboard: ${own} session${own === 1 ? '' : 's'} (idle timeout ${Math.round(S.session.idle_timeout_s / 60)} min)`),
      );
      if (p.spark) {
        if (pts.length) plot({ ...p, spark: true }, spark, [{ metric: p.metric, points: pts, _name: p.title }]);
        else { S.charts.get(p.id)?.destroy(); S.charts.delete(p.id); }
      }
      done({ 'data-query': url, 'data-value': v === null ? '' : String(v), 'data-agg': p.total ? 'sum' : 'last',
        'data-points': pts.length, ...(own === null ? {} : { 'data-dashboard-sessions': own }) });
      break;
    }
    case 'line':
    case 'area': {
      const rr = p.range && $('#range').value !== 'custom' && p.range !== $('#range').value
        ? { since: r.until - parseDur(p.range), until: r.until } : r;
      const results = await Promise.all(p.series.map(q => querySeries(q, rr)));
      const series = [];
      results.forEach((res, i) => res.data.forEach(s => {
        s._name = p.series[i].name ? (res.data.length > 1 ? `${p.series[i].name} ${labelText(s)}` : p.series[i].name) : labelText(s);
        series.push(s);
      }));
      const summary = series.map(s => ({ name: s._name, last: lastValue(s.points), sum: sumValues(s.points) }));
      if (!series.length) {
        S.charts.get(p.id)?.destroy(); S.charts.delete(p.id);
        body.replaceChildren(h('div', { class: 'note' }, `no data yet (${p.series.map(s => s.metric).join(', ')})`));
      } else {
        let chartEl = $('.chart', body);
        let legend = $('.legend', body);
        if (!chartEl) {
          chartEl = h('div', { class: 'chart' });
          legend = h('div', { class: 'legend' });
          body.replaceChildren(chartEl, legend);
        }
        plot(p, chartEl, series);
        legend.replaceChildren(...summary.map((s, i) => h('span', { style: `--c:${COLORS[i % COLORS.length]}`, 'data-series': s.name, 'data-last': s.last ?? '' }, `${s.name}: ${fmtNum(s.last)}`)));
      }
      done({ 'data-queries': JSON.stringify(results.map(x => x.url)), 'data-summary': JSON.stringify(summary) });
      break;
    }
    case 'pie': {
      const res = await Promise.all(p.items.map(it => querySeries({ metric: it.metric, func: 'increase' }, r)));
      const vals = res.map(x => x.data.reduce((a, s) => a + (sumValues(s.points) || 0), 0));
      const total = vals.reduce((a, b) => a + b, 0);
      const ns = 'http://www.w3.org/2000/svg';
      const svg = document.createElementNS(ns, 'svg');
      svg.setAttribute('viewBox', '-1 -1 2 2'); svg.setAttribute('width', '120'); svg.setAttribute('height', '120');
      let a0 = 0;
      vals.forEach((v, i) => {
        if (!total || !v) return;
        const a1 = a0 + 2 * Math.PI * v / total;
        const path = document.createElementNS(ns, v === total ? 'circle' : 'path');
        if (v === total) { path.setAttribute('r', '1'); } else {
          path.setAttribute('d', `M0 0 L${Math.cos(a0)} ${Math.sin(a0)} A1 1 0 ${a1 - a0 > Math.PI ? 1 : 0} 1 ${Math.cos(a1)} ${Math.sin(a1)} Z`);
        }
        path.setAttribute('fill', COLORS[i % COLORS.length]);
        svg.append(path);
        a0 = a1;
      });
      body.replaceChildren(total ? svg : h('div', { class: 'note' }, 'no auth errors in range'),
        h('div', { class: 'legend' }, ...p.items.map((it, i) => h('span', { style: `--c:${COLORS[i % COLORS.length]}`, 'data-series': it.name, 'data-sum': vals[i] }, `${it.name}: ${fmtNum(vals[i])}`))));
      done({ 'data-queries': JSON.stringify(res.map(x => x.url)), 'data-values': JSON.stringify(vals) });
      break;
    }
    case 'alerts': {
      let url = `/v1/alerts?since=${new Date(r.since).toISOString()}&limit=50`;
      if (p.rule) url += `&rule=${encodeURIComponent(p.rule)}`;
      const list = await api(url);
      body.replaceChildren(alertsTable(list, !p.rule));
      done({ 'data-query': url, 'data-count': list.length });
      break;
    }
    case 'logs': {
      // Log table from the archive (the seed's "log table" panels).
      if (el._archiveAt && Date.now() - el._archiveAt < ARCHIVE_REFRESH_MS && el._range === `${r.label}`) {
        done();
        break;
      }
      el._archiveAt = Date.now();
      el._range = `${r.label}`;
      const url = `/v1/archive/search?where=${encodeURIComponent(p.where)}&since=${Math.round(r.since)}&until=${Math.round(r.until)}&limit=${p.limit || 20}`;
      let res;
      try {
        res = await api(url);
      } catch (e) {
        body.replaceChildren(h('div', { class: 'note' }, e.status === 503 ? 'archive disabled' : e.message));
        done({ 'data-query': url, 'data-count': 0 });
        break;
      }
      const hits = res.hits || [];
      body.replaceChildren(hits.length
        ? h('table', {}, h('tbody', {}, ...hits.map(x => {
          const ev = x.event || {};
          const f = ev.fields || {};
          const t = Date.parse(ev.timestamp);
          return h('tr', {}, h('td', { title: String(ev.timestamp || '') }, Number.isNaN(t) ? String(ev.timestamp || '') : fmtShort(t)), h('td', {}, String(ev.service || '')),
            h('td', {}, String(f.message ?? f.key ?? f.key_prefix ?? JSON.stringify(f))));
        })))
        : h('div', { class: 'note' }, 'none in range'));
      done({ 'data-query': url, 'data-count': hits.length });
      break;
    }
    case 'heatmap':
    case 'top': {
      // Every matching event from the archive, counted by p.by in time
      // buckets (heatmap) or over the whole range (top): values below any
      // alert threshold show too, and the counts are events, not alerts.
      if (el._archiveAt && Date.now() - el._archiveAt < ARCHIVE_REFRESH_MS && el._range === `${r.label}`) {
        done();
        break;
      }
      const heat = p.type === 'heatmap';
      const url = countsUrl(p, r, heat ? (p.buckets || 24) : 1, p.top || (heat ? 20 : 10));
      let res;
      try {
        [res] = await Promise.all([api(url)]);
      } catch (e) {
        if (e.status !== 503) throw e;
        body.replaceChildren(h('div', { class: 'note' }, 'archive disabled: no event counts'));
        done({ 'data-query': url, 'data-count': 0 });
        break;
      }
      const [alerted, blocked] = await Promise.all([
        alertedValues(p, r),
        p.decisions ? api('/v1/decisions').then(l => new Set(l.filter(d => d.scope.toLowerCase() === p.decisions).map(d => d.value))) : new Set(),
      ]);
      el._archiveAt = Date.now();
      el._range = `${r.label}`;
      const where = v => `(${p.where}) and ${p.by} = ${literal(v)}`;
      const rule = p.rules && p.rules[0];
      const marks = v => [
        alerted.has(v) ? h('a', { class: 'badge high', href: `#/alerts?rule=${encodeURIComponent(rule)}`, title: `${alerted.get(v)} alert(s) of ${rule}` }, 'alert') : null,
        blocked.has(v) ? h('span', { class: 'badge critical', title: 'a decision is in force' }, 'blocked') : null,
      ];
      const name = v => h('a', { href: logsLink(where(v), r.since, r.until), title: 'the events' }, v);
      let view;
      if (!res.rows.length) {
        view = h('div', { class: 'note' }, `no matching events in range (${p.where})`);
      } else if (heat) {
        const max = Math.max(1, ...res.rows.flatMap(x => x.counts));
        const at = i => res.start + i * res.step_ms;
        const every = Math.max(1, Math.ceil(res.buckets / 8));
        const label = t => {
          const d = new Date(t);
          return res.step_ms >= 86400e3 || (res.until - res.since) > 2 * 86400e3
            ? `${d.getUTCMonth() + 1}/${d.getUTCDate()} ${String(d.getUTCHours()).padStart(2, '0')}h`
            : `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
        };
        const cell = (v, n, i, whereFn) => h('td', {
          'data-count': n,
          style: n ? `background: rgba(242,73,92,${(0.15 + 0.85 * n / max).toFixed(2)})` : '',
        }, n ? h('a', { href: logsLink(whereFn(v), Math.max(at(i), res.since), Math.min(at(i + 1), res.until)), title: `${v}: ${n} event(s) from ${fmtTime(at(i))}` }, '') : '');
        view = h('div', { class: 'heat-wrap' }, h('table', { class: 'heat' },
          h('tr', {}, h('th', {}, p.by.replace(/^fields\./, '')),
            ...res.rows[0].counts.map((_, i) => h('th', { class: 'tick' }, i % every ? '' : label(at(i)))), h('th', {}, 'total')),
          ...res.rows.map(x => h('tr', { 'data-value': x.value, 'data-total': x.total },
            h('th', {}, name(x.value), ' ', ...marks(x.value)),
            ...x.counts.map((n, i) => cell(x.value, n, i, where)),
            h('td', { class: 'total' }, x.total))),
          res.other.total ? h('tr', { class: 'other', 'data-total': res.other.total },
            h('th', {}, `${res.other.values} other value(s)`),
            ...res.other.counts.map((n, i) => cell('', n, i, () => p.where)),
            h('td', { class: 'total' }, res.other.total)) : null));
      } else {
        view = h('table', {}, h('tr', {}, h('th', {}, p.by.replace(/^fields\./, '')), h('th', {}, 'events'), h('th', {}, 'last seen'), h('th', {}, '')),
          ...res.rows.map(x => h('tr', { 'data-value': x.value, 'data-total': x.total },
            h('td', {}, name(x.value)), h('td', {}, x.total), h('td', { title: fmtTime(x.last) }, fmtShort(x.last)), h('td', {}, ...marks(x.value)))),
          res.other.total ? h('tr', { class: 'other', 'data-total': res.other.total },
            h('td', {}, `${res.other.values} other value(s)`), h('td', {}, res.other.total), h('td', {}, ''), h('td', {}, '')) : null);
      }
      body.replaceChildren(view, h('div', { class: 'note' },
        `${res.total} event(s), ${res.distinct} distinct ${p.by.replace(/^fields\./, '')}` +
        (heat ? ` · ${Math.round(res.step_ms / 60e3) || res.step_ms / 1e3 + ' s'}${res.step_ms >= 60e3 ? ' min' : ''} per column` : '') +
        (res.missing ? ` · ${res.missing} without ${p.by}` : '') + (res.capped ? ' · distinct values capped' : '')));
      done({
        'data-query': url, 'data-count': res.rows.length, 'data-total': res.total,
        'data-rows': JSON.stringify(res.rows.map(x => [x.value, x.total, x.counts])),
        'data-alerted': JSON.stringify([...alerted.keys()].sort()),
      });
      break;
    }
    case 'decisions': {
      const list = (await api('/v1/decisions')).filter(d => d.scope.toLowerCase() === p.scope);
      body.replaceChildren(list.length
        ? h('table', {}, h('tr', {}, h('th', {}, 'value'), h('th', {}, 'left'), h('th', {}, 'reason')),
          ...list.map(d => h('tr', { 'data-id': d.id }, h('td', {}, d.value), h('td', {}, fmtLeft(Date.parse(d.until) - Date.now())), h('td', {}, d.scenario))))
        : h('div', { class: 'note' }, 'none in force'));
      done({ 'data-count': list.length });
      break;
    }
    case 'sessions': {
      // secmon's own dashboard sessions (not the monitored application's:
      // that is the auth.sessions.active metric, a stat panel).
      const s = await api('/ui/api/session');
      S.session = s;
      body.replaceChildren(h('div', { class: 'big value', 'data-value': s.active_sessions }, s.active_sessions),
        h('div', { class: 'note' }, `secmon dashboard sessions · idle timeout ${Math.round(s.idle_timeout_s / 60)} min`));
      done({ 'data-value': s.active_sessions });
      break;
    }
    case 'severity': {
      const url = `/v1/alerts?since=${new Date(r.since).toISOString()}&limit=10000`;
      const list = await api(url);
      const by = {};
      for (const a of list) by[a.severity] = (by[a.severity] || 0) + 1;
      const order = ['critical', 'high', 'medium', 'low', 'info'];
      body.replaceChildren(h('table', {}, ...order.filter(s => by[s] || s !== 'info').map(s =>
        h('tr', { 'data-severity': s, 'data-count': by[s] || 0 }, h('td', {}, h('a', { href: '#/alerts' }, h('span', { class: `badge ${s}` }, s))), h('td', { class: 'big' }, by[s] || 0)))));
      done({ 'data-query': url, 'data-count': list.length });
      break;
    }
    case 'rules': {
      const rules = (await api('/v1/rules')).filter(x => x.fired > 0).sort((a, b) => b.fired - a.fired).slice(0, 10);
      body.replaceChildren(rules.length
        ? h('table', {}, h('tr', {}, h('th', {}, 'rule'), h('th', {}, 'fired')),
          ...rules.map(x => h('tr', { 'data-rule': x.id, 'data-fired': x.fired }, h('td', {}, h('a', { href: `#/alerts?rule=${encodeURIComponent(x.id)}` }, x.name)), h('td', {}, x.fired))))
        : h('div', { class: 'note' }, 'no rule has fired since start'));
      done({ 'data-count': rules.length });
      break;
    }
    default:
      body.textContent = `unknown panel type ${p.type}`;
      done();
  }
}

function alertsTable(list, withRule) {
  if (!list.length) return h('div', { class: 'note' }, 'none in range');
  return h('table', {},
    h('tr', {}, h('th', {}, 'first seen'), withRule ? h('th', {}, 'rule') : null, h('th', {}, 'group'), h('th', {}, 'count'), h('th', {}, 'status')),
    ...list.map(a => h('tr', { 'data-id': a.id },
      h('td', {}, fmtTime(a.first_seen)),
      withRule ? h('td', {}, h('a', { href: `#/alerts?rule=${encodeURIComponent(a.rule)}` }, a.rule_name || a.rule)) : null,
      h('td', {}, groupText(a.group)),
      h('td', {}, a.count),
      h('td', {}, h('span', { class: `badge ${a.status}` }, a.status)))));
}

async function chartPage(name) {
  const d = S.dashboards[name];
  const r = range();
  let grid = $(`#page .grid[data-page="${name}"]`);
  if (!grid) {
    for (const c of S.charts.values()) c.destroy();
    S.charts.clear();
    grid = h('div', { class: 'grid', 'data-page': name }, ...d.panels.map(p => panelShell(p, name)));
    $('#page').replaceChildren(h('h1', {}, d.title, ' ', d.seed ? h('span', { class: 'note' }, `(${d.seed})`) : ''), grid);
  }
  await Promise.all(d.panels.map(async p => {
    const el = $(`[data-panel="${name}/${p.id}"]`, grid);
    try {
      await renderPanel(p, el, r);
    } catch (e) {
      if (e.status === 401) return;
      $('.body', el).replaceChildren(h('div', { class: 'error' }, e.message));
      el.setAttribute('data-state', 'error');
    }
  }));
}

// ------------------------------------------------------- alerts, incidents

function params() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}

async function alertsPage() {
  const q = params(), r = range();
  let url = `/v1/alerts?since=${new Date(r.since).toISOString()}&limit=500`;
  for (const k of ['rule', 'status']) if (q.get(k)) url += `&${k}=${encodeURIComponent(q.get(k))}`;
  const list = await api(url);
  const filters = h('div', { class: 'filters' },
    h('label', {}, 'status ', h('select', { id: 'f-status', onchange: e => setParam('status', e.target.value) },
      ...['', 'firing', 'resolved'].map(s => h('option', { value: s, selected: q.get('status') === s || (!q.get('status') && !s) }, s || 'any')))),
    h('label', {}, 'rule ', h('input', { id: 'f-rule', value: q.get('rule') || '', placeholder: 'rule id', onchange: e => setParam('rule', e.target.value) })),
    h('span', { class: 'note' }, `${list.length} alert(s)`));
  $('#page').replaceChildren(h('h1', {}, 'Alerts'), filters,
    h('section', { class: 'panel full', 'data-panel': 'alerts/list', 'data-state': 'ready', 'data-query': url, 'data-count': list.length }, alertsTable(list, true)));
}

function setParam(k, v) {
  const [path, qs] = location.hash.slice(1).split('?');
  const q = new URLSearchParams(qs || '');
  if (v) q.set(k, v); else q.delete(k);
  location.hash = `${path}?${q}`;
}

async function incidentsPage() {
  const q = params();
  let url = '/v1/incidents?limit=500';
  for (const k of ['state', 'priority']) if (q.get(k)) url += `&${k}=${encodeURIComponent(q.get(k))}`;
  const list = await api(url);
  const now = Date.now();
  const filters = h('div', { class: 'filters' },
    h('label', {}, 'state ', h('select', { id: 'f-state', onchange: e => setParam('state', e.target.value) },
      ...['', 'triggered', 'acknowledged', 'resolved'].map(s => h('option', { value: s, selected: (q.get('state') || '') === s }, s || 'any')))),
    h('label', {}, 'priority ', h('select', { id: 'f-priority', onchange: e => setParam('priority', e.target.value) },
      ...['', 'P1', 'P2', 'P3', 'P4'].map(s => h('option', { value: s, selected: (q.get('priority') || '') === s }, s || 'any')))),
    h('span', { class: 'note' }, `${list.length} incident(s)`));
  const table = list.length ? h('table', {},
    h('tr', {}, ...['id', 'priority', 'title', 'group', 'state', 'opened', 'ack deadline'].map(t => h('th', {}, t))),
    ...list.map(i => {
      const breached = i.breached || (i.state === 'triggered' && Date.parse(i.ack_deadline) < now);
      return h('tr', { 'data-id': i.id, class: breached ? 'breached' : '', 'data-breached': breached },
        h('td', {}, h('a', { href: `#/incident/${i.id}` }, `#${i.id}`)),
        h('td', {}, h('span', { class: `badge ${i.priority}` }, i.priority)),
        h('td', {}, h('a', { href: `#/incident/${i.id}` }, i.title)),
        h('td', {}, groupText(i.group)),
        h('td', {}, h('span', { class: `badge ${i.state}` }, i.state)),
        h('td', {}, fmtTime(i.opened)),
        h('td', { class: breached ? 'breach' : '' }, i.state === 'triggered' ? `${fmtTime(i.ack_deadline)}${breached ? ' — BREACHED' : ''}` : '–'));
    })) : h('div', { class: 'note' }, 'no incidents');
  $('#page').replaceChildren(h('h1', {}, 'Incidents'), filters,
    h('section', { class: 'panel full', 'data-panel': 'incidents/list', 'data-state': 'ready', 'data-query': url, 'data-count': list.length }, table));
}

async function incidentPage(id) {
  const d = await api(`/v1/incidents/${id}`);
  const i = d.incident, now = Date.now();
  const breached = i.breached || (i.state === 'triggered' && Date.parse(i.ack_deadline) < now);
  let head = $('#incident-head');
  if (!head || head.getAttribute('data-id') !== String(id)) {
    const note = h('textarea', { id: 'note-text', rows: 2, cols: 50, placeholder: 'note for the timeline' });
    $('#page').replaceChildren(
      h('p', {}, h('a', { href: '#/incidents' }, '← incidents')),
      h('div', { id: 'incident-head', 'data-id': id }),
      h('div', { class: 'filters', id: 'incident-actions' },
        h('button', { id: 'ack', class: 'primary', onclick: () => act(id, 'ack') }, 'Acknowledge'),
        h('button', { id: 'resolve', onclick: () => act(id, 'resolve') }, 'Resolve'),
        note,
        h('button', { id: 'add-note', onclick: () => act(id, 'notes', { text: note.value }) }, 'Add note'),
        h('span', { id: 'action-result', class: 'note', role: 'status' })),
      h('div', { class: 'grid' },
        h('section', { class: 'panel', 'data-panel': 'incident/timeline' }, h('h2', {}, 'Timeline'), h('ul', { class: 'timeline', id: 'timeline' })),
        h('section', { class: 'panel', 'data-panel': 'incident/checklist' }, h('h2', {}, `Checklist (${i.priority})`), h('ul', { class: 'timeline', id: 'checklist' })),
        h('section', { class: 'panel full', 'data-panel': 'incident/evidence' }, h('h2', {}, 'Evidence events'), h('div', { id: 'evidence' }))));
    head = $('#incident-head');
  }
  head.setAttribute('data-state', i.state);
  head.replaceChildren(
    h('h1', {}, h('span', { class: `badge ${i.priority}` }, i.priority), ' ', `#${i.id} ${i.title}`),
    h('p', {}, 'state ', h('span', { class: `badge ${i.state}`, id: 'incident-state' }, i.state),
      ` · opened ${fmtTime(i.opened)} · `, h('a', { href: `#/alerts?rule=${encodeURIComponent(i.rule)}` }, i.rule),
      ` · ${groupText(i.group)} · escalation level ${i.escalation_level}`,
      i.acked_by ? ` · acked by ${i.acked_by}` : '', i.resolved_by ? ` · resolved by ${i.resolved_by}` : ''),
    h('p', { class: breached ? 'breach' : '', id: 'deadline', 'data-breached': breached },
      i.state === 'triggered' ? `ack deadline ${fmtTime(i.ack_deadline)} (${breached ? 'BREACHED' : fmtLeft(Date.parse(i.ack_deadline) - now) + ' left'})` : ''));
  const responder = canRespond();
  for (const b of ['#ack', '#resolve', '#add-note', '#note-text']) {
    const el = $(b);
    el.hidden = !responder;
  }
  $('#ack').disabled = i.state !== 'triggered';
  $('#resolve').disabled = i.state === 'resolved';
  if (!responder) $('#action-result').textContent = `read only (${S.session.role})`;
  $('#timeline').replaceChildren(...d.timeline.map(t => h('li', { 'data-kind': t.kind }, h('time', {}, fmtTime(t.at)), `${t.kind}${t.author ? ' by ' + t.author : ''}: ${t.text}`)));
  $('#checklist').replaceChildren(...d.checklist.map(c => h('li', {}, c.done_at ? '☑ ' : '☐ ', c.text)));
  $('#evidence').replaceChildren(d.evidence.length ? h('pre', {}, d.evidence.map(e => JSON.stringify(e)).join('\n')) : h('div', { class: 'note' }, 'none kept'));
}

async function act(id, what, body) {
  const out = $('#action-result');
  try {
    await api(`/v1/incidents/${id}/${what}`, { method: 'POST', body });
    out.textContent = `${what === 'notes' ? 'note added' : what + ' done'}`;
    if (what === 'notes') $('#note-text').value = '';
  } catch (e) {
    out.textContent = `refused: ${e.message}`;
  }
  await incidentPage(id).catch(() => {});
}

// ---------------------------------------------------------------- decisions

async function decisionsPage() {
  const list = await api('/v1/decisions');
  const now = Date.now();
  const responder = canRespond();
  let form = $('#decision-form');
  if (!form) {
    form = h('form', { id: 'decision-form', class: 'filters', onsubmit: addDecision, hidden: !responder },
      h('select', { id: 'd-scope' }, ...['ip', 'user', 'vault', 'admin'].map(s => h('option', { value: s }, s))),
      h('input', { id: 'd-value', placeholder: 'value (IP or user)', required: true }),
      h('input', { id: 'd-duration', value: '1h', size: 5, title: 'duration' }),
      h('input', { id: 'd-reason', placeholder: 'reason', value: 'manual' }),
      h('button', { class: 'primary', type: 'submit' }, 'Add decision'),
      h('span', { id: 'decision-result', class: 'note', role: 'status' }));
    $('#page').replaceChildren(h('h1', {}, 'Decisions'), form, h('section', { class: 'panel full', id: 'decisions', 'data-panel': 'decisions/list' }));
  }
  const sec = $('#decisions');
  sec.setAttribute('data-count', list.length);
  sec.setAttribute('data-state', 'ready');
  sec.replaceChildren(list.length ? h('table', {},
    h('tr', {}, ...['id', 'scope', 'value', 'action', 'time left', 'until', 'by', 'reason', ''].map(t => h('th', {}, t))),
    ...list.map(d => h('tr', { 'data-id': d.id, 'data-value': d.value },
      h('td', {}, d.id), h('td', {}, d.scope), h('td', {}, d.value), h('td', {}, d.type),
      h('td', { class: 'left' }, fmtLeft(Date.parse(d.until) - now)), h('td', {}, fmtTime(d.until)),
      h('td', {}, d.scenario === 'manual' ? 'manual' : h('a', { href: `#/alerts?rule=${encodeURIComponent(d.scenario)}` }, d.scenario)),
      h('td', {}, d.reason),
      h('td', {}, responder ? h('button', { class: 'danger remove', onclick: () => removeDecision(d.id) }, 'Remove') : ''))))
    : h('div', { class: 'note' }, 'no decision in force'));
}

async function addDecision(ev) {
  ev.preventDefault();
  const out = $('#decision-result');
  try {
    await api('/v1/decisions', {
      method: 'POST', body: {
        scope: $('#d-scope').value, value: $('#d-value').value.trim(),
        duration: $('#d-duration').value.trim(), reason: $('#d-reason').value,
      },
    });
    out.textContent = 'added';
    $('#d-value').value = '';
  } catch (e) { out.textContent = `refused: ${e.message}`; }
  await decisionsPage();
}

async function removeDecision(id) {
  const out = $('#decision-result');
  try {
    await api(`/v1/decisions/${id}`, { method: 'DELETE' });
    out.textContent = `decision ${id} removed`;
  } catch (e) { out.textContent = `refused: ${e.message}`; }
  await decisionsPage();
}

// ------------------------------------------------------------------- health

async function healthPage() {
  const [health, list] = await Promise.all([
    fetch('/health', { credentials: 'same-origin' }).then(r => r.json()),
    api('/v1/series/list').catch(() => []),
  ]);
  const comps = Object.entries(health).filter(([, v]) => v && typeof v === 'object');
  const tiles = comps.map(([name, v]) => {
    const state = v.healthy === false ? 'down' : 'up';
    return h('div', { class: `tile ${state}`, 'data-component': name, 'data-state': state },
      h('strong', {}, name), ' ', h('span', { class: `badge ${state}` }, state),
      h('pre', {}, Object.entries(v).filter(([k]) => k !== 'healthy').map(([k, x]) => `${k}: ${typeof x === 'object' ? JSON.stringify(x) : x}`).join('\n')));
  });
  const probes = new Map();
  for (const s of list) {
    const p = s.labels && s.labels.probe;
    if (!p) continue;
    if (!probes.has(p)) probes.set(p, {});
    if (s.metric === 'probe.up') probes.get(p).up = s.last ?? s.value;
    if (s.metric === 'probe.latency.ms') probes.get(p).latency = s.last ?? s.value;
  }
  // Last failure: the newest window where probe.up was 0, over 7 days.
  const lastFail = new Map();
  await Promise.all([...probes.keys()].map(async p => {
    try {
      const r = await api(`/v1/series?metric=probe.up&labels=probe=${encodeURIComponent(p)}&func=min&since=7d`);
      const pts = r.length ? r[0].points : [];
      for (let i = pts.length - 1; i >= 0; i--) if (pts[i][1] === 0) { lastFail.set(p, pts[i][0]); break; }
    } catch { /* no history yet */ }
  }));
  const probeTiles = [...probes.entries()].map(([p, v]) => {
    const state = v.up === 1 ? 'up' : v.up === 0 ? 'down' : 'degraded';
    return h('div', { class: `tile ${state}`, 'data-probe': p, 'data-state': state, 'data-latency': v.latency ?? '' },
      h('strong', {}, p), ' ', h('span', { class: `badge ${state}` }, state),
      h('div', {}, `latency ${fmtNum(v.latency)} ms`),
      h('div', { class: 'note' }, `last failure ${lastFail.has(p) ? fmtTime(lastFail.get(p)) : 'none in 7 d'}`),
      h('a', { href: '#/alerts?rule=health-check-failing' }, 'alerts'));
  });
  $('#page').replaceChildren(
    h('h1', {}, 'Health ', h('span', { class: `badge ${health.status}`, id: 'health-status', 'data-status': health.status }, health.status)),
    h('h2', {}, 'Probes'),
    h('div', { class: 'tiles', id: 'probes', 'data-count': probeTiles.length, 'data-state': 'ready' }, ...(probeTiles.length ? probeTiles : [h('div', { class: 'note' }, 'no probes configured (probes: in the configuration)')])),
    h('h2', {}, 'secmon'),
    h('div', { class: 'tiles', id: 'components', 'data-state': 'ready' }, ...tiles));
}

// --------------------------------------------------------------------- logs

async function logsPage() {
  let form = $('#log-form');
  if (!form) {
    form = h('form', { id: 'log-form', class: 'filters', onsubmit: e => { e.preventDefault(); S.logsAt = null; runSearch(); } },
      h('input', { id: 'log-q', size: 60, placeholder: 'event = auth.login_failed and fields.ip = 10.0.0.7' }),
      h('button', { class: 'primary', type: 'submit' }, 'Search'),
      h('span', { id: 'log-range', class: 'note' }));
    $('#page').replaceChildren(h('h1', {}, 'Log search'),
      h('p', { class: 'note' }, 'Searches the archive with the query language of `secmon archive search`; every search is recorded in the archive’s access audit.'),
      form, h('section', { class: 'panel full', id: 'log-results', 'data-panel': 'logs/results' }));
    // Opened from a chart (`#/logs?q=…&since=…&until=…`): the events behind it.
    const q = params();
    S.logsAt = q.get('since') && q.get('until') ? { since: Number(q.get('since')), until: Number(q.get('until')) } : null;
    if (q.get('q') !== null) {
      $('#log-q').value = q.get('q');
      await runSearch();
    }
  }
}

async function runSearch() {
  const out = $('#log-results');
  const r = S.logsAt || range();
  $('#log-range').textContent = S.logsAt ? `${fmtTime(r.since)} – ${fmtTime(r.until)}` : '';
  const q = $('#log-q').value;
  const url = `/v1/archive/search?q=${encodeURIComponent(q)}&${sinceParam(r)}&limit=200`;
  out.setAttribute('data-state', 'loading');
  try {
    const res = await api(url);
    const hits = res.hits || [];
    out.setAttribute('data-count', hits.length);
    out.setAttribute('data-query', url);
    const row = x => {
      const ev = x.event || {};
      const f = ev.fields || {};
      return h('tr', {},
        h('td', {}, String(ev.timestamp || '')), h('td', {}, x.category), h('td', {}, String(ev.event || '')),
        h('td', {}, String(ev.level || '')), h('td', {}, String(f.ip ?? f.ip_address ?? '')),
        h('td', {}, h('code', {}, JSON.stringify(f))));
    };
    const note = `${hits.length} match(es), ${res.scanned ?? 0} record(s) scanned` +
      (res.limited ? ' (limited to 200)' : '') + (res.damaged ? ` — ${res.damaged} damaged: run secmon archive verify` : '');
    out.replaceChildren(h('div', { class: 'note' }, note), hits.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ...['time', 'category', 'event', 'level', 'ip', 'fields'].map(t => h('th', {}, t)))),
        h('tbody', {}, ...hits.map(row)))
      : h('div', { class: 'note' }, 'no match'));
  } catch (e) {
    out.replaceChildren(h('div', { class: 'error' }, e.status === 503 ? 'the archive is not enabled on this secmon' : e.message));
  } finally {
    out.setAttribute('data-state', 'ready');
  }
}

// ------------------------------------------------------------------- router

// Dashboard pages come from dashboards.json (the `dashboards:` configuration);
// these are the dashboard's own.
const PAGES = {
  alerts: alertsPage, incidents: incidentsPage, decisions: decisionsPage, health: healthPage, logs: logsPage,
};

/// The navigation: one link per configured dashboard, in order, then the fixed pages.
function buildNav() {
  const fixed = [['alerts', 'Alerts'], ['incidents', 'Incidents'], ['decisions', 'Decisions'], ['health', 'Health'], ['logs', 'Logs']];
  const short = { overview: 'Overview', redis: 'Redis', auth: 'Auth', ratelimit: 'Rate limits', containers: 'Containers', events: 'Events' };
  $('#nav').replaceChildren(
    ...Object.entries(S.dashboards).map(([k, d]) => h('a', { href: `#/${k}` }, short[k] || d.title)),
    ...fixed.map(([k, t]) => h('a', { href: `#/${k}` }, t)));
}

async function render(fresh) {
  const gen = ++S.gen;
  const [path] = location.hash.slice(2).split('?');
  const [name, arg] = path.split('/');
  if (fresh) {
    for (const c of S.charts.values()) c.destroy();
    S.charts.clear();
    $('#page').replaceChildren(h('p', { class: 'note' }, 'loading…'));
  }
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.getAttribute('href').slice(2).split('?')[0] === (name === 'incident' ? 'incidents' : name));
  }
  const t0 = performance.now();
  try {
    if (name === 'incident') await incidentPage(Number(arg));
    else if (PAGES[name]) await PAGES[name]();
    else await chartPage(S.dashboards[name] ? name : Object.keys(S.dashboards)[0]);
    if (gen === S.gen) {
      $('#status').textContent = `updated ${new Date().toLocaleTimeString()} · ${Math.round(performance.now() - t0)} ms`;
      document.body.setAttribute('data-ready', path || 'overview');
    }
  } catch (e) {
    if (e.status !== 401) $('#status').textContent = `error: ${e.message}`;
  }
}

function stopTimer() {
  if (S.timer) clearInterval(S.timer);
  S.timer = null;
}
function startTimer() {
  stopTimer();
  if ($('#auto').checked) S.timer = setInterval(() => { if (!document.hidden) render(false); }, 5000);
}

async function start() {
  try {
    S.session = await api('/ui/api/session');
  } catch (e) {
    if (e.status !== 401) showLogin(e.message);
    return;
  }
  if (!S.dashboards) {
    S.dashboards = await fetch('/ui/dashboards.json').then(r => r.json());
    buildNav();
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#whoami').textContent = `${S.session.user} (${S.session.role})`;
  if (!location.hash || location.hash === '#/') location.hash = `#/${Object.keys(S.dashboards)[0]}`;
  await render(true);
  startTimer();
}

function init() {
  $('#login-form').addEventListener('submit', doLogin);
  $('#logout').addEventListener('click', logout);
  $('#range').addEventListener('change', () => {
    $('#custom-range').hidden = $('#range').value !== 'custom';
    render(true);
  });
  for (const id of ['#range-from', '#range-to']) $(id).addEventListener('change', () => render(true));
  $('#auto').addEventListener('change', startTimer);
  window.addEventListener('hashchange', () => { if (S.session) render(true); });
  window.addEventListener('error', e => { $('#status').textContent = `error: ${e.message}`; });
  start();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
