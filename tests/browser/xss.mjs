// Signs in on the admin page with a key, visits every view, and reports (JSON on
// stdout) whether markup a connector wrote became elements or ran. Drives the
// system's Chromium (CHROMIUM, default /usr/bin/chromium); never downloads one.
// Usage: node xss.mjs BASE_URL KEY
import { chromium } from 'playwright-core';

const [base, key] = process.argv.slice(2);
const MARK = '<img src=x onerror=';
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const out = { views: {}, errors: [] };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => out.errors.push(String(e)));
  page.on('dialog', (d) => { out.errors.push('dialog: ' + d.message()); d.dismiss(); });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(base + '/admin');
  await page.waitForSelector('#signin:not([hidden])', { timeout: 10000 });
  await page.fill('#key', key);
  await page.click('#signin-button');
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  out.who = await page.textContent('#who-name');
  await page.reload();
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  out.signedInAfterReload = true;
  // Every view, by its deep link, once its data has arrived.
  for (const [name, hash, api] of [['jobs', '#/jobs?state=any', '/jobs?'], ['attention', '#/jobs', '/console/jobs'],
    ['connections', '#/connections', '/circuits'], ['plugins', '#/plugins', '/plugins'], ['dashboard', '#/dashboard', '/console/dashboard'],
    ['alerts', '#/alerts', '/alerts'], ['events', '#/events', '/console/events']]) {
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/admin/api' + api)),
      page.evaluate((h) => { location.hash = h; }, hash),
    ]);
    await page.waitForTimeout(300);
    out.views[name] = await page.evaluate((mark) => ({
      imgs: document.querySelectorAll('img, iframe, script:not([src])').length,
      markAsText: document.querySelector('#view').innerText.split(mark).length - 1,
      markInTitles: [...document.querySelectorAll('#view [title]')].filter((e) => e.title.includes(mark)).length,
      xss: window.__xss ?? null,
      csp: window.__csp.slice(),
    }), MARK);
  }
  // The tabs lead to the same views.
  await page.click('#tabs button[data-tab="plugins"]');
  await page.waitForTimeout(200);
  out.tabHash = await page.evaluate(() => location.hash);
  const session = (await context.cookies()).find((c) => c.name === 'recoco_sync_session');
  out.cookie = session ? { httpOnly: session.httpOnly, sameSite: session.sameSite, path: session.path } : null;
  out.documentCookie = await page.evaluate(() => document.cookie);
  out.localStorage = await page.evaluate(() => localStorage.length + sessionStorage.length);
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])', { timeout: 10000 });
  out.afterSignOut = await page.evaluate(async () => (await fetch('/admin/api/overview')).status);
} catch (e) {
  out.errors.push('driver: ' + (e && e.stack || e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
