// bench/console-hosts's browser half: times the console's host list in Debian's chromium
// (playwright-core) against a hub bench/console-hosts filled; prints JSON.
import { chromium } from 'playwright-core';

const URL = process.env.OUTPOST_URL;
const ROUNDS = Number(process.env.ROUNDS || 5);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
const page = await context.newPage();
await page.goto(URL + '/console');
await page.fill('#token', process.env.OUTPOST_ADMIN_TOKEN);
await page.click('#signin');
await page.waitForSelector('#who[data-role]');

const out = {};
const record = (k, ms) => (out[k] ||= []).push(ms);
const rendered = () => page.evaluate(() => Number(document.querySelector('main').dataset.rendered || 0));

for (let i = 0; i < ROUNDS; i++) {
  // The first page: from the click on "Hosts" to 50 rows drawn (the whole page load, cold
  // each round: the list is rebuilt).
  await page.evaluate(() => { location.hash = '#/overview'; });
  await page.waitForSelector('[data-state=up]');
  const ms = await page.evaluate(() => new Promise((resolve) => {
    const t0 = performance.now();
    location.hash = '#/hosts';
    const check = () => {
      const m = document.querySelector('main');
      if (m.dataset.rendered && document.querySelectorAll('#hosts-body tr').length) resolve(performance.now() - t0);
      else requestAnimationFrame(check);
    };
    check();
  }));
  record('host list, first page of 50', Math.round(ms));
  // Cold: a new tab, the page and its scripts loaded, signed in from sessionStorage.
}
for (let i = 0; i < ROUNDS; i++) {
  const p2 = await context.newPage();
  await p2.goto(URL + '/console');
  await p2.evaluate((t) => sessionStorage.setItem('outpost.token', t), process.env.OUTPOST_ADMIN_TOKEN);
  const t0 = Date.now();
  await p2.goto(URL + '/console#/hosts');
  await p2.waitForSelector('#hosts-body tr');
  record('host list, new tab (page, scripts, first page)', Date.now() - t0);
  await p2.close();
}
const filters = ['role=db', 'role=web and id!=sim-0*', 'sim-0[1000-1200]', 'version=0.2.0 and dc=dc1', 'state=down'];
// From the keystroke to the table drawn: includes the 150 ms the list waits for typing to
// pause (debounce), reported apart below.
const setFilter = (f) => page.evaluate((f) => new Promise((resolve) => {
  const n = Number(document.querySelector('main').dataset.rendered || 0);
  const el = document.querySelector('#filter');
  const t0 = performance.now();
  el.value = f;
  el.dispatchEvent(new Event('input'));
  const check = () => {
    if (Number(document.querySelector('main').dataset.rendered) > n) resolve(performance.now() - t0);
    else requestAnimationFrame(check);
  };
  check();
}), f);
await page.evaluate(() => { location.hash = '#/hosts'; });
await page.waitForSelector('#hosts-body tr');
for (let i = 0; i < ROUNDS; i++) {
  for (const f of filters) {
    const ms = await setFilter(f);
    record('filter, keystroke to table (150 ms debounce included)', Math.round(ms));
    record('filter, request to table (debounce excluded)', Math.round(ms - 150));
    await setFilter('');
  }
}
await browser.close();
const summary = {};
for (const [k, v] of Object.entries(out)) {
  v.sort((a, b) => a - b);
  summary[k] = { median: v[Math.floor(v.length / 2)], max: v[v.length - 1], n: v.length };
}
console.log(JSON.stringify(summary));
