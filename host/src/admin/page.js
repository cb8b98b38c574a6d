'use strict';
// The admin console: a thin client of /admin/api, routed by the URL's hash
// (#/events?status=failed, #/event/evt_…), so links can be shared and a reload
// keeps the view. Every value is put into the page as text: the `h` helper
// builds elements and text nodes, never markup from data, and refuses
// attributes that could run code; the Content-Security-Policy allows no
// inline script or style besides. The view refreshes itself every few
// seconds unless the operator is typing in it.

const $ = (s) => document.querySelector(s);
const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 5000;
/** The signed-in caller: {mode, name, scope, csrf_token}. The key itself is never kept. */
let session = null;

function setAttr(el, k, v) {
  // Data never becomes a handler, a style or a link elsewhere.
  if (/^on/i.test(k) || k === 'style' || k === 'srcdoc') throw new Error('refused attribute ' + k);
  if ((k === 'href' || k === 'src' || k === 'action') && !String(v).startsWith('#')) throw new Error('refused link');
  el.setAttribute(k, String(v));
}

/** Builds an element; `attrs.onclick`/`onsubmit`/`oninput`/`onchange` are listeners, other attributes are set as text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (['onclick', 'onsubmit', 'onchange', 'oninput'].includes(k)) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = Boolean(v);
    else setAttr(el, k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false || c === '') continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An SVG element (numbers and class names only). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) setAttr(el, k, v);
  for (const c of children.flat(Infinity)) {
    if (c == null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const safeClass = (v) => String(v ?? '').replace(/[^a-z-]/g, '');
const pill = (v) => h('span', {class: 'pill s-' + safeClass(v)}, v);
const time = (v) => {
  if (v == null || v === '') return '';
  const d = new Date(typeof v === 'number' ? v : String(v));
  return isNaN(d) ? String(v) : d.toISOString().replace('T', ' ').slice(0, 19);
};
const age = (ms) => {
  if (ms == null) return '—';
  const sec = Math.round(ms / 1000);
  if (sec < 60) return sec + ' s';
  if (sec < 3600) return Math.floor(sec / 60) + ' min ' + (sec % 60) + ' s';
  return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
};
const canWrite = () => session && session.scope === 'admin';
const row = (...cells) => h('tr', null, cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', null, c))));
const table = (heads, rows, cls) => h('div', {class: 'scroll'}, h('table', {class: cls},
  h('thead', null, h('tr', null, heads.map((t) => h('th', null, t)))), h('tbody', null, rows)));
const link = (label, route) => h('a', {href: '#' + route}, label);
const enc = encodeURIComponent;

// ------------------------------------------------------------------ errors

/** Shows an error that stays until dismissed (a refresh does not clear it). */
function showError(message) {
  const box = h('div', {class: 'error'}, h('span', null, message),
    h('button', {type: 'button', title: 'dismiss', onclick: () => box.remove()}, '×'));
  $('#errors').append(box);
  while ($('#errors').children.length > 5) $('#errors').firstChild.remove();
}

async function api(path, options = {}) {
  const method = options.method || 'GET';
  const headers = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session && session.csrf_token) headers['x-csrf-token'] = session.csrf_token;
  const res = await fetch('/admin/api' + path, {method, headers, body: options.body, credentials: 'same-origin'});
  if (res.status === 401 && path !== '/session') {
    signedOut();
    throw Object.assign(new Error('signed out: sign in again'), {status: 401});
  }
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const message = body.error || body.detail || `${method} ${path}: ${res.status} ${res.statusText}`;
    throw Object.assign(new Error(message), {status: res.status, field: body.field || null});
  }
  return body;
}

/** A state change; its error stays on screen. Returns the answer, or undefined. */
async function act(path, body, method = 'POST') {
  try {
    return await api(path, {method, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    showError(e.message);
    return undefined;
  }
}

const button = (label, onclick, attrs = {}) => (canWrite() ? h('button', {type: 'button', onclick, ...attrs}, label) : '');

// ------------------------------------------------------------------ routing

/** The current route: {view, arg, params}. `#/events?status=failed` → events, {status: failed}. */
function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const [view, ...rest] = (path || 'dashboard').split('/');
  return {view: view || 'dashboard', arg: rest.map(decodeURIComponent).join('/'), params: new URLSearchParams(query || '')};
}

function go(path, params) {
  const q = params && [...params].filter(([, v]) => v !== '' && v != null).length
    ? '?' + new URLSearchParams([...params].filter(([, v]) => v !== '' && v != null)).toString() : '';
  const target = '#/' + path + q;
  if (location.hash === target) render();
  else location.hash = target;
}

const tabOf = {event: 'events', connection: 'connections', job: 'jobs'};

let rendering = 0;
async function render(auto = false) {
  if (!session) return;
  const r = route();
  const view = views[r.view] ? r.view : 'dashboard';
  if (auto && views[view].live === false) return;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('on', b.dataset.tab === (tabOf[view] || view)));
  const ticket = ++rendering;
  try {
    const nodes = [await views[view](r.arg, r.params)].flat(Infinity).filter((n) => n !== '' && n != null);
    if (ticket !== rendering) return; // a newer render won
    if (auto && busy()) return; // the operator started something meanwhile
    $('#view').replaceChildren(...nodes);
    $('#live').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    if (ticket !== rendering) return;
    if (auto) $('#live').textContent = 'refresh failed: ' + e.message;
    else showError(e.message);
  }
  refreshAlertCount();
}

async function refreshAlertCount() {
  try {
    const {open} = await api('/alerts?state=open&limit=1');
    $('#alert-count').hidden = !open;
    $('#alert-count').textContent = String(open);
  } catch (e) { /* the view shows errors */ }
}

/** True while the operator is typing in the view or answering a confirmation. */
function busy() {
  const active = document.activeElement;
  if (active && $('#view').contains(active) && ['INPUT', 'SELECT', 'TEXTAREA'].includes(active.tagName)) return true;
  return Boolean($('#view .confirm') || $('#view .notice') || $('#view form.edit'));
}

/** Re-renders the current view unless the operator is busy in it. */
function autoRefresh() {
  if (!session || document.hidden || busy()) return;
  render(true);
}

// ------------------------------------------------------------------ chart

const STATUSES = ['processed', 'queued', 'failed', 'invalid', 'ignored', 'skipped'];

/** Events per minute by status over 24 h, as stacked bars (one per 10 minutes). */
function chart(d) {
  const bucketMin = 10;
  const buckets = 24 * 60 / bucketMin;
  const counts = Array.from({length: buckets}, () => ({}));
  // Counted back from the current minute (`since` is 24 h before it), so the
  // minute in progress falls in the last bar rather than past the end.
  const end = d.since + 24 * 60 * 60000;
  const bucketStart = (i) => end - (buckets - i) * bucketMin * 60000 + 60000;
  for (const m of d.minutes) {
    const i = buckets - 1 - Math.floor((end - m.at) / 60000 / bucketMin);
    if (i < 0 || i >= buckets) continue;
    for (const [st, n] of Object.entries(m.counts)) counts[i][st] = (counts[i][st] || 0) + n;
  }
  const per = counts.map((c) => Object.values(c).reduce((a, b) => a + b, 0) / bucketMin);
  const max = Math.max(1, ...per);
  const W = 960, H = 160, top = 10, bottom = 20, left = 36;
  const bw = (W - left) / buckets;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const bars = [];
  counts.forEach((c, i) => {
    let base = 0;
    for (const st of STATUSES) {
      const v = (c[st] || 0) / bucketMin;
      if (!v) continue;
      const y0 = y(base), y1 = y(base + v);
      bars.push(s('rect', {x: (left + i * bw).toFixed(1), y: y1.toFixed(1), width: Math.max(bw - 0.5, 0.5).toFixed(1),
        height: Math.max(y0 - y1, 0.5).toFixed(1), class: 'c-' + safeClass(st), 'data-status': st},
      s('title', null, `${time(bucketStart(i))}: ${c[st]} ${st} (${v.toFixed(2)}/min)`)));
      base += v;
    }
  });
  const axis = [];
  for (let hr = 0; hr <= 24; hr += 6) {
    const x = left + (hr * 60 / bucketMin) * bw;
    const at = new Date(d.since + hr * 3600000);
    axis.push(s('line', {x1: x.toFixed(1), x2: x.toFixed(1), y1: top, y2: H - bottom, class: 'grid'}));
    axis.push(s('text', {x: Math.min(x, W - 30).toFixed(1), y: H - 5}, at.toISOString().slice(11, 16)));
  }
  axis.push(s('text', {x: 0, y: top + 8}, max.toFixed(max < 10 ? 1 : 0)));
  axis.push(s('text', {x: 0, y: H - bottom}, '0'));
  const svg = s('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'events per minute by status, last 24 hours'},
    axis, bars);
  const legend = h('div', {class: 'legend'}, STATUSES.map((st) => h('span', null, h('i', {class: 'l-' + st}), st)),
    h('span', {class: 'muted'}, `events per minute (10-minute bars), peak ${Math.max(0, ...per).toFixed(2)}/min, ${d.events_24h} in 24 h`));
  return [svg, legend];
}

// ------------------------------------------------------------------ task progress

/** Running tasks the operator started here: job id → {connection, task}. Kept across views. */
const watched = new Map();

function progressPanel(jobId) {
  const info = watched.get(jobId) || {};
  const bar = h('progress', {max: 1, value: 0});
  const text = h('span', {class: 'progress-text'}, 'queued');
  const state = h('span', {class: 'run-state'}, pill('queued'));
  const panel = h('div', {class: 'task-run', 'data-job': jobId},
    h('div', null, h('b', null, `${info.connection || ''} · ${info.task || ''} `), state, ' ', link(jobId, '/jobs?state=any&id=' + enc(jobId))),
    bar, text);
  const tick = async () => {
    if (!panel.isConnected) return; // the view changed; the next render makes a new panel
    try {
      const j = await api('/jobs/' + enc(jobId));
      state.replaceChildren(pill(j.state));
      const p = j.progress;
      if (p) {
        bar.max = p.total || Math.max(p.done, 1);
        bar.value = p.done;
        bar.setAttribute('data-done', String(p.done));
      }
      text.textContent = (p ? `${p.done}${p.total != null ? ' / ' + p.total : ''} ${p.message || ''}` : '') +
        (j.summary ? ' — ' + j.summary : '') + (j.last_error ? ' — ' + j.last_error : '');
      if (['succeeded', 'failed', 'dead', 'discarded'].includes(j.state)) {
        if (j.state === 'succeeded' && !p) { bar.max = 1; bar.value = 1; }
        info.done = true; // shown until five newer runs push it out
        return;
      }
    } catch (e) {
      text.textContent = e.message;
    }
    setTimeout(tick, 400);
  };
  setTimeout(tick, 0);
  return panel;
}

async function runTask(connection, task) {
  const r = await act(`/connections/${enc(connection)}/tasks/${enc(task)}`, {});
  if (!r) return;
  watched.set(r.job_id, {connection, task});
  while (watched.size > 5) watched.delete(watched.keys().next().value);
  const area = $('#task-runs');
  if (area) area.prepend(progressPanel(r.job_id));
}

// ------------------------------------------------------------------ views

const views = {
  async dashboard() {
    const d = await api('/console/dashboard');
    const q = d.queue;
    const card = (title, big, ...rest) => h('div', {class: 'card'}, h('b', null, title), h('div', {class: 'big'}, big), rest);
    return [
      h('div', {class: 'cards'},
        card('Queue depth', q.depth, h('div', {class: 'muted'}, 'due now')),
        card('Oldest due job', age(q.oldest_due_age_ms), h('div', {class: 'muted'}, `${q.running} running · ${q.backoff} in backoff`)),
        card('Needs attention', q.failed + q.dead, h('div', {class: 'muted'}, [link(`${q.failed} failed`, '/jobs?state=failed'), ' · ', link(`${q.dead} dead`, '/jobs?state=dead')])),
        card('Paused / waiting', q.paused + q.waiting, h('div', {class: 'muted'}, `${q.paused} paused · ${q.waiting} waiting`)),
        card('Open alerts', d.open_alerts.length, h('div', {class: 'muted'}, link('see alerts', '/alerts')))),
      h('div', {class: 'panel'}, h('h3', null, 'Events per minute, last 24 h'), chart(d)),
      h('div', {class: 'panel', id: 'open-alerts'}, h('h3', null, 'Open alerts'),
        d.open_alerts.length ? table(['Opened', 'Connection', 'Reason', 'Summary'], d.open_alerts.map((a) => row(
          time(a.opened_at), a.connection, pill(a.reason), h('td', {class: 'err'}, a.summary)))) : h('p', {class: 'muted'}, 'none')),
      h('div', {class: 'panel'}, h('h3', null, 'Failing connections'),
        d.failing.length ? table(['Connection', 'Circuit', 'Consecutive failures', 'Failed', 'Dead', 'Last error', 'Alert'], d.failing.map((c) => row(
          link(c.name, '/jobs?connection=' + enc(c.name)), pill(c.circuit), c.consecutive_failures, c.failed_jobs, c.dead_jobs,
          h('td', {class: 'err'}, c.last_error), c.open_alert ? pill('open') : ''))) : h('p', {class: 'muted'}, 'none')),
      h('div', {class: 'panel'}, h('h3', null, 'Paused connections'),
        d.paused.length ? table(['Connection', 'Why', 'Paused jobs'], d.paused.map((c) => row(
          link(c.name, '/connections'), pill(c.why), c.paused_jobs))) : h('p', {class: 'muted'}, 'none')),
    ];
  },

  async events(_arg, params) {
    const qs = new URLSearchParams(params);
    if (!qs.get('limit')) qs.set('limit', '50');
    const [page, {sources}] = await Promise.all([api('/console/events?' + qs), api('/sources')]);
    const field = (name, label, attrs = {}) => h('label', null, label, h('input', {name, value: params.get(name) || '', ...attrs}));
    const select = (name, label, options) => h('label', null, label, h('select', {name},
      options.map((o) => h('option', {value: o, selected: (params.get(name) || '') === o}, o || 'any'))));
    const localTime = (name, label) => {
      const v = params.get(name);
      const d = v ? new Date(v) : null;
      const local = d && !isNaN(d) ? new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16) : '';
      return h('label', null, label, h('input', {name, type: 'datetime-local', value: local}));
    };
    const form = h('form', {class: 'filters', onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      for (const t of ['since', 'until']) {
        const v = data.get(t);
        if (v) data.set(t, new Date(v).toISOString());
      }
      data.delete('before');
      go('events', data);
    }},
    field('q', 'Search', {type: 'search', placeholder: 'id, object id, text in body or error'}),
    select('source', 'Source', ['', ...sources.map((x) => x.code)]),
    field('topic', 'Topic'), field('object_type', 'Object type'), field('object_id', 'Object id'),
    select('status', 'Status', ['', 'queued', 'processed', 'failed', 'ignored', 'skipped', 'invalid']),
    localTime('since', 'Since'), localTime('until', 'Until'),
    h('button', {type: 'submit'}, 'Filter'), h('a', {href: '#/events'}, 'clear'));
    const pager = h('div', {class: 'bar'}, h('span', {class: 'muted'}, `${page.total} event(s)`),
      params.get('before') ? h('button', {type: 'button', onclick: () => history.back()}, '← Newer') : '',
      page.next_before ? h('button', {type: 'button', onclick: () => {
        const next = new URLSearchParams(params);
        next.set('before', page.next_before);
        go('events', next);
      }}, 'Older →') : '');
    return [
      form, pager,
      table(['Received', 'Id', 'Source', 'Topic', 'Object', 'Status', 'Jobs', 'Error'], page.events.map((e) => row(
        time(e.received_at), link(e.id, '/event/' + enc(e.id)), e.source, e.topic, [e.object_type, ' ', e.object_id], pill(e.status), e.jobs,
        h('td', {class: 'err'}, e.error)))),
    ];
  },

  async event(id) {
    const e = await api('/events/' + enc(id));
    const again = () => render();
    const jobRows = e.jobs.map((j) => [
      row(link(j.id, '/jobs?state=any&id=' + enc(j.id)), j.connection, pill(j.state), `${j.attempts}/${j.max_attempts}`,
        h('td', {class: 'err'}, j.last_error || j.summary),
        runNowButton(j, again)),
      j.attempts_log.map((a) => h('tr', {class: 'attempt'}, h('td', {class: 'sub', colspan: 6}, `attempt #${a.number} `, pill(a.outcome),
        ` ${time(a.started_at)} · ${a.plugin ?? ''} ${a.plugin_version ?? ''} (${(a.plugin_hash || '').slice(0, 12)}) · ${a.duration_ms} ms `,
        h('span', {class: a.error ? 'err' : ''}, a.error || a.summary)))),
    ]);
    return [
      h('div', {class: 'bar'}, link('← events', '/events')),
      h('h3', {id: 'event-title'}, `Event ${e.id} `, pill(e.status)),
      table(['Source', 'Topic', 'Object', 'Action', 'Received', 'Webhook uuid', 'Remote'], [row(e.source, e.topic,
        [e.object_type, ' ', e.object_id], e.action, time(e.received_at), e.webhook_uuid, e.remote_addr)]),
      e.error ? h('p', {class: 'err'}, e.error) : '',
      (e.filtered || []).length ? h('p', {class: 'muted'}, 'Dropped by filters: ', e.filtered.map((f) => `${f.connection}: ${f.reason}`).join('; ')) : '',
      h('div', {class: 'bar'}, button('Replay', async () => { if (await act('/events/' + enc(e.id) + '/replay')) again(); }, {id: 'replay'})),
      h('h4', null, 'Jobs and every attempt'),
      table(['Job', 'Connection', 'State', 'Attempts', 'Last error / summary', ''], jobRows, 'jobs'),
      h('h4', null, 'Headers'), h('pre', {id: 'event-headers'}, JSON.stringify(e.headers, null, 2)),
      h('h4', null, 'Payload'), h('pre', {id: 'event-payload'}, typeof e.body === 'string' ? e.body : JSON.stringify(e.body, null, 2)),
    ];
  },

  async jobs(_arg, params) {
    const state = params.get('state') || 'failed,dead,paused,waiting,backoff';
    const any = state === 'any' || params.get('id');
    const [{connections}] = await Promise.all([api('/connections')]);
    let list, total, next;
    if (params.get('id')) {
      list = [await api('/jobs/' + enc(params.get('id')))];
      total = 1;
    } else if (any) {
      const qs = new URLSearchParams({limit: '100'});
      if (params.get('connection')) qs.set('connection', params.get('connection'));
      ({jobs: list} = await api('/jobs?' + qs));
      total = list.length;
    } else {
      const qs = new URLSearchParams(params);
      qs.set('state', state);
      qs.set('limit', qs.get('limit') || '50');
      ({jobs: list, total, next_before: next} = await api('/console/jobs?' + qs));
    }
    const stateOptions = [['failed,dead,paused,waiting,backoff', 'needs attention'], ['failed,dead', 'failed or dead'], ['failed', 'failed'],
      ['dead', 'dead'], ['paused', 'paused'], ['waiting', 'waiting'], ['backoff', 'in backoff'], ['any', 'recent, any state']];
    const form = h('form', {class: 'filters', onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      for (const t of ['since', 'until']) { const v = data.get(t); if (v) data.set(t, new Date(v).toISOString()); }
      go('jobs', data);
    }},
    h('label', null, 'State', h('select', {name: 'state'}, stateOptions.map(([v, l]) => h('option', {value: v, selected: v === state}, l)))),
    h('label', null, 'Connection', h('select', {name: 'connection'}, h('option', {value: ''}, 'any'),
      connections.map((c) => h('option', {value: c.name, selected: params.get('connection') === c.name}, c.name)))),
    h('label', null, 'Error contains', h('input', {name: 'error', value: params.get('error') || ''})),
    h('label', null, 'Changed since', h('input', {name: 'since', type: 'datetime-local'})),
    h('label', null, 'Changed before', h('input', {name: 'until', type: 'datetime-local'})),
    h('button', {type: 'submit'}, 'Filter'));
    const bulkArea = h('div', {id: 'bulk'});
    const bulk = (action) => async () => {
      const selection = {
        action, connection: params.get('connection') || null, error: params.get('error') || null,
        since: params.get('since') || null, until: params.get('until') || null,
        states: state.split(',').filter((x) => x === 'failed' || x === 'dead'),
      };
      if (!selection.states.length) selection.states = ['failed', 'dead'];
      const dry = await act('/console/jobs/bulk', {...selection, confirm: false});
      if (!dry) return;
      const what = `${dry.matched} ${selection.states.join('/')} job(s)` + (selection.connection ? ` of ${selection.connection}` : '') +
        (selection.error ? ` whose error contains "${selection.error}"` : '');
      bulkArea.replaceChildren(h('div', {class: 'confirm'},
        h('span', {class: 'confirm-text'}, dry.matched ? `${action === 'retry' ? 'Retry' : 'Discard'} ${what}?` : `No job matches (${what}).`),
        dry.matched ? h('button', {type: 'button', class: 'confirm-yes', onclick: async () => {
          const done = await act('/console/jobs/bulk', {...selection, confirm: true});
          bulkArea.replaceChildren(done ? h('div', {class: 'notice'}, `${done.changed} job(s) ${action === 'retry' ? 'queued again' : 'discarded'}.`) : '');
          if (done) setTimeout(() => render(), 300);
        }}, `Yes, ${action} ${dry.matched}`) : '',
        h('button', {type: 'button', onclick: () => bulkArea.replaceChildren()}, 'Cancel')));
    };
    return [
      form,
      h('div', {class: 'bar'}, h('span', {class: 'muted'}, `${total} job(s)`),
        any ? '' : [button('Retry matching…', bulk('retry'), {id: 'bulk-retry'}), button('Discard matching…', bulk('discard'), {id: 'bulk-discard'})],
        next ? h('button', {type: 'button', onclick: () => { const n = new URLSearchParams(params); n.set('before', next); go('jobs', n); }}, 'Older →') : ''),
      bulkArea,
      table(['Updated', 'Id', 'Connection', 'What', 'State', 'Attempts', 'Next run', 'Progress', 'Last error / summary', ''], list.map((j) => row(
        time(j.updated_at), j.id, j.connection,
        j.kind === 'event' ? link(j.event_id, '/event/' + enc(j.event_id)) : ['task ', j.task_name],
        pill(isBackoff(j) ? 'backoff' : j.state), `${j.attempts}/${j.max_attempts}`, j.state === 'queued' ? time(j.run_at) : '',
        j.progress ? `${j.progress.done}${j.progress.total != null ? '/' + j.progress.total : ''} ${j.progress.message ?? ''}` : '',
        h('td', {class: 'err'}, j.last_error || j.summary),
        runNowButton(j, () => render()))), 'jobs'),
    ];
  },

  async connections() {
    const [{connections}, {sources}, {circuits}] = await Promise.all([api('/connections'), api('/sources'), api('/circuits')]);
    const circuitOf = Object.fromEntries(circuits.map((c) => [c.connection, c]));
    const toggle = (kind, name, enabled) => button(enabled ? 'Disable' : 'Enable',
      async () => { if (await act(`/${kind}/${enc(name)}/${enabled ? 'disable' : 'enable'}`)) render(); }, {'data-toggle': `${kind}/${name}`});
    const runs = h('div', {id: 'task-runs'}, [...watched.keys()].reverse().map(progressPanel));
    return [
      h('div', {class: 'bar'}, canWrite() ? h('a', {href: '#/connection/new', id: 'new-connection'}, '+ New connection') : ''),
      runs,
      h('h3', null, 'Connections'),
      table(['Name', 'Owner', 'Source', 'Plugin', 'Status', 'Circuit', 'Allowed hosts', 'Config', 'Tasks', ''], connections.map((c) => {
        const circuit = circuitOf[c.name];
        const owner = c.owner || 'file';
        return row(
          [c.name, ' ', c.enabled ? '' : pill('disabled')], pill(owner), c.source, [c.plugin, ' ', c.plugin_loaded ? '' : pill('waiting')],
          [pill(c.status), c.invalid_reason ? h('div', {class: 'err'}, c.invalid_reason) : ''],
          circuit ? [pill(circuit.circuit), circuit.consecutive_failures ? ` ${circuit.consecutive_failures} failures` : ''] : pill('closed'),
          c.allowed_hosts.join(', '),
          [h('pre', null, JSON.stringify(c.config, null, 1)), h('span', {class: 'err'}, c.config_problem)],
          c.tasks.map((t) => [canWrite()
            ? h('button', {type: 'button', class: 'task', title: t.description, 'data-task': t.name, 'data-connection': c.name,
              onclick: () => runTask(c.name, t.name)}, t.name)
            : h('span', {class: 'task', title: t.description}, t.name), ' ']),
          [toggle('connections', c.name, c.enabled), ' ',
            owner === 'database' && canWrite() ? [h('a', {href: '#/connection/' + enc(c.name)}, 'Edit'), ' ',
              button('Delete', () => confirmDelete('delete-area', '/connections/' + enc(c.name),
                `Delete connection ${c.name}? Its pending jobs are cancelled; its events are kept.`))] : h('span', {class: 'muted', title: 'declared in the configuration file'}, owner === 'file' ? 'read-only (file)' : '')]);
      }), 'connections'),
      h('div', {id: 'delete-area'}),
      h('h3', null, 'Sources'),
      canWrite() ? sourceForm() : '',
      h('div', {id: 'source-area'}),
      table(['Code', 'Owner', 'Webhook path', 'API', 'Secrets', 'Enabled', ''], sources.map((x) => row(
        x.code, pill(x.owner || 'file'), x.webhook_path, x.api_url, x.secrets, String(x.enabled),
        [toggle('sources', x.code, x.enabled), ' ',
          button('Rotate secret', () => rotateSecret(x.code), {'data-rotate': x.code}), ' ',
          x.owner === 'database' ? button('Delete', () => confirmDelete('source-area', '/sources/' + enc(x.code),
            `Delete source ${x.code}? Its webhooks are then refused; its events are kept.`), {'data-delete-source': x.code}) : ''])), 'sources'),
    ];
  },

  async connection(name) {
    return connectionForm(name === 'new' ? null : name);
  },

  async plugins() {
    const {plugins, refused, replicas, served_by: servedBy} = await api('/plugins');
    return [
      table(['Name', 'Version', 'Hash', 'Origin', 'Loaded', 'Replicas', 'Subscriptions', 'Tasks', 'Description', 'Last error'], plugins.map((p) => row(
        p.name, p.version, h('span', {title: p.hash}, (p.hash || '').slice(0, 12)), [p.origin.kind, ' ', p.origin.path], time(p.loaded_at),
        servedBy[p.name],
        p.subscriptions.join(', '), p.tasks.map((t) => h('span', {class: 'task', title: t.description}, t.name, ' ')),
        p.description, h('td', {class: 'err'}, p.last_error)))),
      h('h3', null, 'Replicas'),
      table(['Replica', 'State', 'Version', 'Listen', 'Started', 'Last seen', 'Plugins'], replicas.map((r) => row(
        [r.id, r.this ? ' (this one)' : ''], pill(r.state), r.version, r.listen, time(r.started_at), time(r.last_seen_at),
        r.plugins.map((x) => `${x.name} ${x.version}`).join(', ')))),
      h('h3', null, 'Refused files'),
      refused.length ? table(['File', 'Why', 'At'], refused.map((f) => row(f.path, h('td', {class: 'err'}, f.error), time(f.at))))
        : h('p', {class: 'muted'}, 'none'),
    ];
  },

  async alerts(_arg, params) {
    const state = params.get('state') || '';
    const {alerts, open} = await api('/alerts?' + new URLSearchParams(state ? {state} : {}));
    return [
      h('div', {class: 'bar'}, `${open} open · show: `, [['', 'all'], ['open', 'open'], ['resolved', 'resolved']].map(([v, l], i) =>
        [i ? ' · ' : '', v === state ? h('b', null, l) : link(l, '/alerts' + (v ? '?state=' + v : ''))])),
      table(['Opened', 'State', 'Connection', 'Reason', 'Summary', 'Job / event', 'Attempt', 'Plugin', 'Resolved', 'Notified', 'Last error'], alerts.map((a) => row(
        time(a.opened_at), pill(a.state), link(a.connection, '/jobs?connection=' + enc(a.connection)), pill(a.reason), a.summary,
        [a.job_id ? link(a.job_id, '/jobs?state=any&id=' + enc(a.job_id)) : '', ' ', a.event_id ? link(a.event_id, '/event/' + enc(a.event_id)) : ''],
        a.attempt, [a.plugin, ' ', a.plugin_version], time(a.resolved_at),
        [a.opened_notified_at ? 'opened ✓ ' : '', a.resolved_notified_at ? 'resolved ✓' : '', a.notify_error ? h('div', {class: 'err'}, a.notify_error) : ''],
        h('td', {class: 'err'}, a.last_error))), 'alerts'),
    ];
  },
};
views.connection.live = false;
views.event.live = false;

const isBackoff = (j) => j.state === 'queued' && j.attempts > 0 && j.run_at > Date.now();

function runNowButton(j, after) {
  if (!(['failed', 'dead'].includes(j.state) || isBackoff(j))) return '';
  return button(['failed', 'dead'].includes(j.state) ? 'Retry now' : 'Run now', async () => {
    if (await act('/console/jobs/' + enc(j.id) + '/run-now')) after();
  }, {class: 'run-now', 'data-job': j.id});
}

/** Asks before deleting `path`, in the element `areaId`; `what` says what happens. */
function confirmDelete(areaId, path, what) {
  const area = $('#' + areaId);
  area.replaceChildren(h('div', {class: 'confirm'},
    h('span', null, what),
    h('button', {type: 'button', onclick: async () => {
      if (await act(path, undefined, 'DELETE') !== undefined) { area.replaceChildren(); render(); }
    }}, 'Yes, delete'),
    h('button', {type: 'button', onclick: () => area.replaceChildren()}, 'Cancel')));
}

/** A secret shown once, with why. */
function showOnce(text, secret) {
  $('#source-area').replaceChildren(h('div', {class: 'notice'}, text, ' ', h('code', {class: 'secret-once'}, secret),
    h('button', {type: 'button', onclick: () => $('#source-area').replaceChildren()}, 'Done')));
}

/** New database-owned source; its generated secret is shown once. */
function sourceForm() {
  const code = h('input', {name: 'code', placeholder: 'code', required: true, pattern: '[A-Za-z0-9._-]+'});
  const apiUrl = h('input', {name: 'api_url', placeholder: 'API URL (optional)'});
  const scheme = h('select', {name: 'scheme'}, h('option', {value: 'recoco'}, 'recoco'), h('option', {value: 'standard-webhooks'}, 'standard-webhooks'));
  return h('form', {class: 'bar', id: 'source-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {code: code.value.trim(), scheme: scheme.value};
    if (apiUrl.value.trim()) body.api_url = apiUrl.value.trim();
    const created = await act('/sources', body);
    if (created) { await render(); showOnce(`Source ${created.code} created; its signing secret (shown only now):`, created.generated_secret); }
  }}, code, scheme, apiUrl, h('button', {type: 'submit'}, '+ New source'));
}

async function rotateSecret(code) {
  const done = await act('/sources/' + enc(code) + '/rotate-secret', {grace: '24h'});
  if (done) showOnce(`Source ${code}: new secret (shown only now); the previous ones validate until ${done.previous_expire_at}:`, done.generated_secret);
}

/** Create (name null) or edit a database-owned connection, on the managed API. */
async function connectionForm(name) {
  const [{sources}, {plugins}] = await Promise.all([api('/sources'), api('/plugins')]);
  let current = null;
  if (name) {
    current = await api('/connections/' + enc(name));
    if (current.owner === 'file') {
      return [h('p', null, `Connection ${name} is declared in the configuration file: edit the file (it is read-only here).`), link('← connections', '/connections')];
    }
  }
  const fieldErrors = {};
  const labelled = (key, label, input, help) => {
    fieldErrors[key] = h('span', {class: 'field-error', 'data-field': key});
    return h('label', null, label, input, help ? h('span', {class: 'muted'}, help) : '', fieldErrors[key]);
  };
  const schemaTemplate = (schema) => {
    const out = {};
    for (const [k, p] of Object.entries((schema && schema.properties) || {})) out[k] = p.default ?? (p.type === 'array' ? [] : p.type === 'boolean' ? false : p.type === 'integer' || p.type === 'number' ? 0 : '');
    return out;
  };
  const inputs = {
    name: h('input', {name: 'name', value: current ? current.name : '', required: true, disabled: Boolean(current), pattern: '[a-z0-9][a-z0-9-]*'}),
    source: h('select', {name: 'source'}, sources.map((x) => h('option', {value: x.code, selected: current && current.source === x.code}, x.code))),
    plugin: h('select', {name: 'plugin'}, plugins.map((p) => h('option', {value: p.name, selected: current && current.plugin === p.name}, `${p.name} ${p.version}`))),
    config: h('textarea', {name: 'config', rows: 10, spellcheck: 'false'}),
    allowed_hosts: h('input', {name: 'allowed_hosts', value: current && !current.allowed_hosts_from_plugin ? (current.allowed_hosts || []).join(', ') : '', placeholder: 'default: the plugin\'s'}),
    filter: h('textarea', {name: 'filter', rows: 3, spellcheck: 'false'}),
    enabled: h('input', {name: 'enabled', type: 'checkbox', checked: current ? current.enabled : true}),
  };
  inputs.config.value = JSON.stringify(current ? current.config : {}, null, 2);
  inputs.filter.value = current && current.filter ? current.filter : '';
  if (current && current.config_schema) inputs.config.title = 'schema: ' + JSON.stringify(current.config_schema);
  const form = h('form', {class: 'edit', id: 'connection-form', onsubmit: async (ev) => {
    ev.preventDefault();
    for (const el of Object.values(fieldErrors)) el.textContent = '';
    for (const el of Object.values(inputs)) el.classList.remove('bad');
    const fail = (field, message) => {
      const key = Object.keys(fieldErrors).find((k) => field === k || String(field || '').startsWith(k + '.') || String(field || '').startsWith(k + '/'));
      if (key) { fieldErrors[key].textContent = message; inputs[key].classList.add('bad'); }
      showError(message);
    };
    const body = {};
    if (!current) body.name = inputs.name.value.trim();
    body.source = inputs.source.value;
    body.plugin = inputs.plugin.value;
    try { body.config = JSON.parse(inputs.config.value || '{}'); } catch (e) { return fail('config', 'config is not JSON: ' + e.message); }
    const hosts = inputs.allowed_hosts.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (hosts.length) body.allowed_hosts = hosts;
    const filter = inputs.filter.value.trim();
    if (filter) body.filter = filter;
    else if (current) body.filter = null;
    if (current && !hosts.length) body.allowed_hosts = null;
    body.enabled = inputs.enabled.checked;
    try {
      await api(current ? '/connections/' + enc(current.name) : '/connections', {method: current ? 'PATCH' : 'POST', body: JSON.stringify(body)});
      go('connections');
    } catch (e) {
      fail(e.field, e.message);
    }
  }},
  h('h3', null, current ? `Edit connection ${current.name}` : 'New connection'),
  labelled('name', 'Name', inputs.name, 'lower case, digits and dashes'),
  labelled('source', 'Source', inputs.source),
  labelled('plugin', 'Plugin', inputs.plugin),
  labelled('config', 'Config (JSON)', inputs.config, 'secrets show as "[redacted]": leave them so to keep them, or write a new value'),
  labelled('allowed_hosts', 'Allowed hosts (comma separated)', inputs.allowed_hosts),
  labelled('filter', 'Filter (CEL, optional)', inputs.filter, "e.g. object_type == 'projects.Project'"),
  h('label', {class: 'check'}, inputs.enabled, 'Enabled'),
  h('div', {class: 'bar'}, h('button', {type: 'submit', id: 'connection-save'}, current ? 'Save' : 'Create'), link('Cancel', '/connections')));
  if (!current) {
    const fill = () => {
      if (inputs.config.value.trim() && inputs.config.value.trim() !== '{}') return;
      const p = plugins.find((x) => x.name === inputs.plugin.value);
      if (p && p.config_schema) inputs.config.value = JSON.stringify(schemaTemplate(p.config_schema), null, 2);
    };
    inputs.plugin.addEventListener('change', fill);
    fill();
  }
  return [form];
}

// ------------------------------------------------------------------ session

function signedIn(who) {
  session = who;
  $('#signin').hidden = true;
  $('#tabs').hidden = false;
  $('#who').hidden = false;
  $('#who-name').textContent = `${who.name} (${who.scope})`;
  $('#signout').hidden = who.mode !== 'session';
}

function signedOut() {
  session = null;
  $('#signin').hidden = false;
  $('#tabs').hidden = true;
  $('#who').hidden = true;
  $('#view').replaceChildren();
}

async function start() {
  document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => go(b.dataset.tab)));
  window.addEventListener('hashchange', () => render());
  $('#signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('#key');
    try {
      const who = await api('/session', {method: 'POST', body: JSON.stringify({key: input.value})});
      input.value = '';
      signedIn(who);
      await render();
    } catch (e) {
      showError(e.message);
    }
  });
  $('#signout').addEventListener('click', async () => {
    try { await api('/session', {method: 'DELETE'}); } catch (e) { /* signed out anyway */ }
    signedOut();
  });
  setInterval(autoRefresh, REFRESH_MS);
  try {
    signedIn(await api('/session'));
    await render();
  } catch (e) {
    signedOut();
    if (e.status !== 401) showError(e.message);
  }
}

start();
