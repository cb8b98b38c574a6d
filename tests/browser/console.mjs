// Walks the admin console as an operator does, in the system's Chromium
// (CHROMIUM, default /usr/bin/chromium; never a downloaded browser), and
// reports what it saw as JSON on stdout. Run by tests/it/admin_browser.rs.
// Usage: node console.mjs BASE_URL KEY CONTROL_URL ARTIFACT_DIR
//
// CONTROL_URL is the test's own server on 127.0.0.1: POST /send sends a signed
// webhook (answers {event_id}), POST /fix makes the failing target answer 200.
import { chromium } from 'playwright-core';

const [base, key, control, artifacts] = process.argv.slice(2);
const out = { errors: [], steps: [], screenshots: {} };
const step = (name, data = {}) => out.steps.push({ name, at: Date.now(), ...data });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});

async function ctl(path) {
  const r = await fetch(control + path, { method: 'POST' });
  if (!r.ok) throw new Error(`control ${path}: ${r.status}`);
  return r.json();
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => out.errors.push(String(e)));
  page.on('dialog', (d) => { out.errors.push('dialog: ' + d.message()); d.dismiss(); });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const view = () => page.textContent('#view');
  /** Shows `hash` again every second until `check(text of #view)` holds. */
  async function until(hash, check, what, timeout = 30000) {
    const end = Date.now() + timeout;
    for (;;) {
      await page.evaluate((h) => { if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange')); else location.hash = h; }, hash);
      await page.waitForTimeout(700);
      const text = await view();
      if (check(text)) return text;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; view: ${text.slice(0, 600)}`);
    }
  }

  // Sign in with a key.
  await page.goto(base + '/admin');
  await page.waitForSelector('#signin:not([hidden])', { timeout: 10000 });
  await page.fill('#key', key);
  await page.click('#signin-button');
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  await page.waitForSelector('svg.chart', { timeout: 10000 });
  step('signed-in', { who: await page.textContent('#who-name') });

  // Create a connection with the form (on the managed API).
  await page.click('#tabs button[data-tab="connections"]');
  await page.waitForSelector('#new-connection', { timeout: 10000 });
  await page.click('#new-connection');
  await page.waitForSelector('#connection-form', { timeout: 10000 });
  await page.fill('#connection-form input[name="name"]', 'crm-ui');
  await page.selectOption('#connection-form select[name="plugin"]', 'http-forward');
  await page.fill('#connection-form textarea[name="config"]', JSON.stringify({ url: process.env.BAD_TARGET + '/ui', secret: 'form-secret-0000000001' }));
  await page.fill('#connection-form input[name="allowed_hosts"]', '127.0.0.1');
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith('/admin/api/connections') && r.method() === 'POST'),
    page.click('#connection-save'),
  ]);
  const response = await request.response();
  out.createRequest = { method: request.method(), body: JSON.parse(request.postData() || 'null'), csrf: Boolean(request.headers()['x-csrf-token']) };
  out.createStatus = response ? response.status() : null;
  out.apiPresent = out.createStatus === 201;
  await page.waitForTimeout(300);
  out.createErrorShown = (await page.textContent('#errors')).trim();
  if (!out.apiPresent) throw new Error(`the form's create answered ${out.createStatus}: ${out.createErrorShown}`);
  const failing = 'crm-ui';
  step('create', { status: out.createStatus });

  // A webhook that fails: the alert opens and the job is dead.
  const { event_id: eventId } = await ctl('/send');
  out.eventId = eventId;
  await until('#/alerts', (t) => t.includes(failing) && t.includes('open'), 'the alert');
  out.alertRows = await page.$$eval('table.alerts tbody tr', (rows) => rows.map((r) => r.innerText));
  out.alertBadge = await page.textContent('#alert-count');
  step('alert-seen');
  await until('#/jobs?state=failed%2Cdead&connection=' + failing, (t) => t.includes(eventId) && t.includes('dead'), 'the dead job');
  out.failedJobRows = await page.$$eval('table.jobs tbody tr', (rows) => rows.map((r) => r.innerText));
  step('failed-job-seen');

  // A bad filter typed into the URL: the API's error names the field.
  await page.evaluate(() => { location.hash = '#/events?since=yesterday'; });
  await page.waitForTimeout(800);
  out.filterError = (await page.textContent('#errors')).trim();
  await page.$$eval('#errors .error button', (bs) => bs.forEach((b) => b.click()));

  // Fix the connection: edit its target in the form, keeping its secret as shown.
  await page.evaluate(() => { location.hash = '#/connection/crm-ui'; });
  await page.waitForSelector('#connection-form', { timeout: 10000 });
  out.editShowsSecret = (await page.inputValue('#connection-form textarea[name="config"]')).includes('form-secret');
  await page.fill('#connection-form textarea[name="config"]', JSON.stringify({ url: process.env.GOOD_TARGET + '/ui', secret: '[redacted]' }));
  await page.click('#connection-save');
  await page.waitForSelector('#new-connection', { timeout: 10000 });
  step('fixed');

  // Retry by bulk action, with its confirmation showing the count.
  await page.evaluate((c) => { location.hash = '#/jobs?state=failed%2Cdead&connection=' + c; }, failing);
  await page.waitForSelector('#bulk-retry', { timeout: 10000 });
  await page.click('#bulk-retry');
  await page.waitForSelector('#bulk .confirm', { timeout: 10000 });
  out.confirmText = await page.textContent('#bulk .confirm-text');
  await page.click('#bulk .confirm-yes');
  await page.waitForSelector('#bulk .notice', { timeout: 10000 });
  out.bulkNotice = await page.textContent('#bulk .notice');
  step('retried');

  // It succeeds: the event's detail shows every attempt.
  const detail = await until('#/event/' + eventId, (t) => /succeeded/.test(t) && /attempt #\d+ succeeded/.test(t.replace(/\s+/g, ' ')), 'the job to succeed');
  out.attempts = await page.$$eval('tr.attempt', (rows) => rows.map((r) => r.innerText.replace(/\s+/g, ' ').trim()));
  out.eventDetailHasPayload = (await page.textContent('#event-payload')).includes('projects.Project') || (await page.textContent('#event-payload')).includes('"object"');
  out.eventDetailHasHeaders = (await page.textContent('#event-headers')).length > 2;
  out.screenshots.event = artifacts + '/console-event-detail.png';
  await page.screenshot({ path: out.screenshots.event, fullPage: true });
  void detail;
  // Deep link: a reload keeps the view.
  await page.reload();
  await page.waitForSelector('#event-title', { timeout: 10000 });
  out.deepLinkKept = (await page.textContent('#event-title')).includes(eventId);
  step('succeeded');
  await until('#/alerts?state=resolved', (t) => t.includes(failing) && t.includes('resolved'), 'the alert to be resolved');
  step('alert-resolved');

  // Run sync-all and watch its progress bar move.
  await page.evaluate(() => { location.hash = '#/connections'; });
  await page.waitForSelector('button.task[data-task="sync-all"][data-connection="grist"]', { timeout: 10000 });
  await page.click('button.task[data-task="sync-all"][data-connection="grist"]');
  await page.waitForSelector('.task-run progress', { timeout: 10000 });
  const seen = [];
  const end = Date.now() + 40000;
  for (;;) {
    const p = await page.evaluate(() => {
      const bar = document.querySelector('.task-run progress');
      const st = document.querySelector('.task-run .run-state');
      return bar ? { value: bar.value, max: bar.max, state: st ? st.textContent : '' } : null;
    });
    if (p && (!seen.length || seen[seen.length - 1].value !== p.value || seen[seen.length - 1].state !== p.state)) seen.push(p);
    if (p && ['succeeded', 'failed', 'dead'].includes(p.state)) break;
    if (Date.now() > end) { out.errors.push('sync-all did not finish in 40 s'); break; }
    await page.waitForTimeout(150);
  }
  out.progress = seen;
  out.progressText = await page.textContent('.task-run .progress-text');
  step('sync-all');

  // The dashboard, with its chart.
  await page.evaluate(() => { location.hash = '#/dashboard'; });
  await page.waitForSelector('svg.chart', { timeout: 10000 });
  await page.waitForTimeout(300);
  out.dashboard = await page.evaluate(() => ({
    bars: document.querySelectorAll('svg.chart rect').length,
    failedBars: document.querySelectorAll('svg.chart rect[data-status="failed"], svg.chart rect[data-status="processed"]').length,
    cards: [...document.querySelectorAll('.card')].map((c) => c.innerText.replace(/\s+/g, ' ')),
  }));
  out.screenshots.dashboard = artifacts + '/console-dashboard.png';
  await page.screenshot({ path: out.screenshots.dashboard, fullPage: true });

  // An action's error stays on screen, through navigation and refreshes.
  await page.evaluate(() => { location.hash = '#/connections'; });
  await page.waitForSelector('button[data-toggle="sources/recoco-test"]', { timeout: 10000 });
  await page.click('button[data-toggle="sources/recoco-test"]');
  await page.waitForTimeout(500);
  await page.evaluate((id) => { location.hash = '#/event/' + id; }, eventId);
  await page.waitForSelector('#replay', { timeout: 10000 });
  await page.click('#replay');
  await page.waitForSelector('#errors .error', { timeout: 10000 });
  out.actionError = (await page.textContent('#errors')).trim();
  await page.evaluate(() => { location.hash = '#/dashboard'; });
  await page.waitForTimeout(5800); // past an automatic refresh
  out.actionErrorAfterRefresh = (await page.textContent('#errors')).trim();
  await page.evaluate(() => { location.hash = '#/connections'; });
  await page.waitForSelector('button[data-toggle="sources/recoco-test"]', { timeout: 10000 });
  await page.click('button[data-toggle="sources/recoco-test"]');
  await page.waitForTimeout(300);

  // The plugins view says which version each replica serves.
  await page.evaluate(() => { location.hash = '#/plugins'; });
  await page.waitForSelector('text=(this one)', { timeout: 10000 });
  out.pluginsView = await page.textContent('#view');

  // 400 px wide: every view fits (tables scroll inside their box).
  await page.setViewportSize({ width: 400, height: 800 });
  out.narrow = {};
  for (const hash of ['#/dashboard', '#/events', '#/event/' + eventId, '#/jobs', '#/connections', '#/plugins', '#/alerts']) {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForTimeout(600);
    out.narrow[hash] = await page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      tabsVisible: [...document.querySelectorAll('#tabs button')].every((b) => { const r = b.getBoundingClientRect(); return r.width > 0 && r.right <= window.innerWidth + 1; }),
      text: document.querySelector('#view').innerText.length,
    }));
  }
  out.screenshots.narrow = artifacts + '/console-dashboard-400px.png';
  await page.evaluate(() => { location.hash = '#/dashboard'; });
  await page.waitForTimeout(500);
  await page.screenshot({ path: out.screenshots.narrow, fullPage: true });
  out.csp = await page.evaluate(() => window.__csp.slice());
  // A state change without the session's CSRF token is refused.
  out.bulkStatusWithoutCsrf = await page.evaluate(async () => (await fetch('/admin/api/console/jobs/bulk', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'retry', confirm: true }) })).status);
} catch (e) {
  out.errors.push('driver: ' + (e && e.stack || e));
  try { out.errorsOnScreen = await browser.contexts()[0].pages()[0].textContent('#errors'); } catch (_) { /* closed */ }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
