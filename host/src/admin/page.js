'use strict';
// The admin page: a thin client of /admin/api. Every value is put into the page
// as text (the `h` helper builds elements and text nodes, never markup from
// data), so a task name or summary written by a connector cannot become HTML.
// The Content-Security-Policy allows no inline script besides.

const $ = (s) => document.querySelector(s);
/** The signed-in caller: {mode, name, scope, csrf_token}. The key itself is never kept. */
let session = null;

/** Builds an element; `attrs.onclick` is a listener, other attributes are set as text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'onclick') el.addEventListener('click', v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const pill = (s) => h('span', {class: 'pill s-' + String(s ?? '').replace(/[^a-z-]/g, '')}, s);
const time = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');
const canWrite = () => session && session.scope === 'admin';
const row = (...cells) => h('tr', null, cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', null, c))));
const table = (heads, rows) => h('table', null, h('tr', null, heads.map((t) => h('th', null, t))), rows);

async function api(path, options = {}) {
  const method = options.method || 'GET';
  const headers = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session && session.csrf_token) headers['x-csrf-token'] = session.csrf_token;
  const res = await fetch('/admin/api' + path, {method, headers, body: options.body, credentials: 'same-origin'});
  if (res.status === 401 && path !== '/session') {
    signedOut();
    throw new Error('signed out: sign in again');
  }
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.detail || res.statusText), {status: res.status});
  return body;
}

/** A state change, then `after` (usually a view to show). */
async function act(path, body, after) {
  try {
    await api(path, {method: 'POST', body: body === undefined ? undefined : JSON.stringify(body)});
    $('#msg').textContent = '';
    if (after) await after();
  } catch (e) {
    $('#msg').textContent = e.message;
  }
}

const button = (label, onclick) => (canWrite() ? h('button', {type: 'button', onclick}, label) : '');

const views = {
  async overview() {
    const o = await api('/overview');
    const card = (title, obj) => {
      const entries = Object.entries(obj);
      return h('div', {class: 'card'}, h('b', null, title), entries.length ? entries.map(([k, n]) => [h('br'), pill(k), ' ', n]) : [h('br'), 'none']);
    };
    return [
      h('div', {class: 'cards'}, card('Events', o.events), card('Jobs', o.jobs),
        h('div', {class: 'card'}, h('b', null, 'Setup'), h('br'), `${o.sources} source(s)`, h('br'), `${o.connections} connection(s)`,
          h('br'), `${o.plugins} plugin(s)`, h('br'), `${o.refused_plugin_files} refused file(s)`)),
      h('div', {class: 'bar'}, button('Retry every failed job', () => act('/jobs/retry-failed', undefined, () => show('jobs')))),
    ];
  },
  async events(filter = '') {
    const {events} = await api('/events?limit=100' + filter);
    const statuses = ['', 'queued', 'processed', 'failed', 'ignored', 'skipped', 'invalid'];
    return [
      h('div', {class: 'bar'}, 'Status: ', statuses.map((s, i) => [i ? ' · ' : '', h('a', {onclick: () => show('events', s ? '&status=' + s : '')}, s || 'all')])),
      table(['Received', 'Id', 'Source', 'Topic', 'Object', 'Status', 'Error'], events.map((e) => row(
        e.received_at, h('a', {onclick: () => show('event', e.id)}, e.id), e.source, e.topic, e.object_id, pill(e.status),
        h('td', {class: 'err'}, e.error)))),
    ];
  },
  async event(id) {
    const e = await api('/events/' + encodeURIComponent(id));
    const again = () => show('event', e.id);
    const jobRows = e.jobs.map((j) => [
      row(j.id, j.connection, pill(j.state), `${j.attempts}/${j.max_attempts}`, h('td', {class: 'err'}, j.last_error || j.summary),
        ['failed', 'dead'].includes(j.state) ? button('Retry', () => act('/jobs/' + encodeURIComponent(j.id) + '/retry', undefined, again)) : ''),
      j.attempts_log.map((a) => h('tr', null, h('td'), h('td', {colspan: 5}, `#${a.number} `, pill(a.outcome),
        ` ${a.plugin ?? ''} ${a.plugin_version ?? ''} (${(a.plugin_hash || '').slice(0, 12)}) ${a.duration_ms} ms `, a.error || a.summary))),
    ]);
    return [
      h('h3', null, `Event ${e.id} `, pill(e.status)),
      h('div', {class: 'bar'}, button('Replay', () => act('/events/' + encodeURIComponent(e.id) + '/replay', undefined, again))),
      table(['Job', 'Connection', 'State', 'Attempts', 'Last error / summary', ''], jobRows),
      h('h4', null, 'Headers'), h('pre', null, JSON.stringify(e.headers, null, 2)),
      h('h4', null, 'Body'), h('pre', null, JSON.stringify(e.body, null, 2)),
    ];
  },
  async jobs(filter = '') {
    const {jobs} = await api('/jobs?limit=100' + filter);
    const states = ['', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'dead'];
    return [
      h('div', {class: 'bar'}, 'State: ', states.map((s, i) => [i ? ' · ' : '', h('a', {onclick: () => show('jobs', s ? '&state=' + s : '')}, s || 'all')])),
      table(['Created', 'Id', 'Connection', 'What', 'State', 'Attempts', 'Progress', 'Last error / summary', ''], jobs.map((j) => row(
        time(j.created_at), j.id, j.connection,
        j.kind === 'event' ? h('a', {onclick: () => show('event', j.event_id)}, j.event_id) : ['task ', j.task_name],
        pill(j.state), `${j.attempts}/${j.max_attempts}`,
        j.progress ? `${j.progress.done}${j.progress.total != null ? '/' + j.progress.total : ''} ${j.progress.message ?? ''}` : '',
        h('td', {class: 'err'}, j.last_error || j.summary),
        ['failed', 'dead'].includes(j.state) ? button('Retry', () => act('/jobs/' + encodeURIComponent(j.id) + '/retry', undefined, () => show('jobs'))) : ''))),
    ];
  },
  async connections() {
    const [{connections}, {sources}] = await Promise.all([api('/connections'), api('/sources')]);
    const toggle = (kind, name, enabled) => button(enabled ? 'Disable' : 'Enable',
      () => act(`/${kind}/${encodeURIComponent(name)}/${enabled ? 'disable' : 'enable'}`, undefined, () => show('connections')));
    return [
      h('h3', null, 'Sources'),
      table(['Code', 'Webhook path', 'API', 'Secrets', 'Enabled', ''], sources.map((s) => row(
        s.code, s.webhook_path, s.api_url, s.secrets, String(s.enabled), toggle('sources', s.code, s.enabled)))),
      h('h3', null, 'Connections'),
      table(['Name', 'Source', 'Plugin', 'Allowed hosts', 'Config', 'Tasks', ''], connections.map((c) => row(
        [c.name, ' ', c.enabled ? '' : pill('disabled')], c.source, [c.plugin, ' ', c.plugin_loaded ? '' : pill('waiting')],
        c.allowed_hosts.join(', '),
        [h('pre', null, JSON.stringify(c.config, null, 1)), h('span', {class: 'err'}, c.config_problem)],
        c.tasks.map((t) => [canWrite()
          ? h('button', {type: 'button', class: 'task', title: t.description,
            onclick: () => act(`/connections/${encodeURIComponent(c.name)}/tasks/${encodeURIComponent(t.name)}`, {}, () => show('jobs'))}, t.name)
          : h('span', {class: 'task', title: t.description}, t.name), ' ']),
        toggle('connections', c.name, c.enabled)))),
    ];
  },
  async plugins() {
    const {plugins, refused} = await api('/plugins');
    return [
      table(['Name', 'Version', 'Hash', 'Source', 'Loaded', 'Subscriptions', 'Description', 'Last error'], plugins.map((p) => row(
        p.name, p.version, (p.hash || '').slice(0, 12), [p.origin.kind, ' ', p.origin.path], time(p.loaded_at),
        p.subscriptions.join(', '), p.description, h('td', {class: 'err'}, p.last_error)))),
      refused.length ? [h('h3', null, 'Refused files'),
        table(['File', 'Why', 'At'], refused.map((f) => row(f.path, h('td', {class: 'err'}, f.error), time(f.at))))] : '',
    ];
  },
};

async function show(name, arg) {
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('on', b.dataset.tab === name));
  try {
    $('#view').replaceChildren(...[await views[name](arg)].flat(Infinity).filter((n) => n !== ''));
    $('#msg').textContent = '';
  } catch (e) {
    $('#msg').textContent = e.message;
  }
}

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
  document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => show(b.dataset.tab)));
  $('#signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('#key');
    try {
      const who = await api('/session', {method: 'POST', body: JSON.stringify({key: input.value})});
      input.value = '';
      signedIn(who);
      await show('overview');
    } catch (e) {
      $('#msg').textContent = e.message;
    }
  });
  $('#signout').addEventListener('click', async () => {
    try { await api('/session', {method: 'DELETE'}); } catch (e) { /* signed out anyway */ }
    signedOut();
  });
  try {
    signedIn(await api('/session'));
    await show('overview');
  } catch (e) {
    signedOut();
    if (e.status !== 401) $('#msg').textContent = e.message;
  }
}

start();
