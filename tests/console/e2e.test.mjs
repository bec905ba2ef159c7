// The web console in a real browser: playwright-core driving Debian's chromium (headless)
// against a real hub with real agents, which tests/integration/test_console.py starts and
// describes in the environment. Every test saves a screenshot in OUTPOST_SHOTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(k + ' is not set: run this through tests/integration/test_console.py');
  return v;
};
const URL = env('OUTPOST_URL');
const ADMIN = env('OUTPOST_ADMIN_TOKEN');
const VIEWER = env('OUTPOST_VIEWER_TOKEN');
const HOSTS = env('OUTPOST_HOSTS').split(',');
const PENDING = env('OUTPOST_PENDING_HOST');
const EVIL = env('OUTPOST_EVIL_HOST');
const SHOTS = env('OUTPOST_SHOTS');
const T = 15000;

let browser, context;
before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
});
after(async () => { await browser?.close(); });

const errors = [];
const signedIn = {}; // token -> its page: one tab per role, signed in once (a browser is slow to start, a tab less so)
async function newPage() {
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  return page;
}
// The console at hash, signed in with token (null: a new tab at the sign-in form); waits for
// the page to be drawn anew, so that nothing of the page before is mistaken for it.
async function open(token, hash = '#/overview') {
  if (!token) {
    const page = await newPage();
    return { page, res: await page.goto(URL + '/console') };
  }
  let page = signedIn[token];
  if (!page) {
    page = signedIn[token] = await newPage();
    await page.goto(URL + '/console');
    await page.fill('#token', token);
    await page.click('#signin');
    await page.waitForSelector('#who[data-role]', { timeout: T });
  }
  await page.evaluate((h) => new Promise((resolve) => {
    const old = document.getElementById('main');
    if (location.hash === h) O.route(); else location.hash = h;
    const check = () => (document.getElementById('main') !== old ? resolve() : setTimeout(check, 10));
    check();
  }), hash);
  return { page };
}
const shot = (page, name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

test('the page carries a strict CSP and asks for a token', async () => {
  const { page, res } = await open(null);
  const csp = res.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(res.headers()['x-content-type-options'], 'nosniff');
  assert.equal(await page.$$eval('script:not([src])', (s) => s.length), 0, 'no inline script');
  await page.fill('#token', 'opo_not-a-token');
  await page.click('#signin');
  await page.waitForSelector('#signin-error .error', { timeout: T });
  assert.match(await text(page, '#signin-error'), /unauthorized/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('outpost.token')), null);
  await shot(page, '01-signin-refused');
  await page.close();
});

test('an admin signs in, sees the role and every page; the token stays out of the URL', async () => {
  const { page } = await open(ADMIN);
  assert.match(await text(page, '#who'), /admin/);
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(nav, ['Overview', 'Hosts', 'Run', 'Tasks', 'Metrics', 'Access']);
  assert.ok(!page.url().includes(ADMIN));
  await page.waitForFunction((n) => document.querySelector('[data-state=up] .n')?.textContent === String(n), HOSTS.length, { timeout: T });
  await shot(page, '02-overview');
});

test('a viewer is offered no run, no label edit and no access page', async () => {
  const { page } = await open(VIEWER, '#/host/' + HOSTS[0]);
  assert.match(await text(page, '#who'), /viewer/);
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(nav, ['Overview', 'Hosts', 'Tasks', 'Metrics']);
  await page.waitForSelector('#labels h2', { timeout: T });
  assert.equal(await page.$('#label-key'), null);
  await shot(page, '03-viewer-host');
});

test('the hosts list shows the hosts up, filters by selector, and points at a bad one', async () => {
  const { page } = await open(ADMIN, '#/hosts');
  await page.waitForFunction((n) => document.querySelector('#hosts-info')?.dataset.total === String(n + 1), HOSTS.length, { timeout: T });
  const rows = await page.$$eval('#hosts-body tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[2].textContent]));
  for (const h of HOSTS) assert.ok(rows.some(([id, st]) => id === h && st === 'up'), h + ' up: ' + JSON.stringify(rows));
  await page.fill('#filter', 'state=up and id!=' + HOSTS[0]);
  await page.waitForFunction((n) => document.querySelector('#hosts-info')?.dataset.total === String(n), HOSTS.length - 1, { timeout: T });
  await page.fill('#filter', 'state=up AND web');
  await page.waitForSelector('#filter-error .error', { timeout: T });
  const err = await text(page, '#filter-error');
  assert.match(err, /at column \d+/);
  assert.match(await text(page, '#filter-error pre.caret'), /\^$/);
  await shot(page, '04-hosts-filter-error');
});

test('run: the selector preview counts the hosts, a command runs and each host answers', async () => {
  const { page } = await open(ADMIN, '#/run');
  await page.fill('#target', 'web-*');
  await page.waitForSelector('#preview-count', { timeout: T });
  assert.equal(await page.$eval('#preview-count', (e) => e.dataset.count), String(HOSTS.length));
  await shot(page, '05-run-preview');
  await page.fill('#command', 'echo hello from outpost');
  await page.click('#run');
  await page.waitForFunction(() => document.querySelector('main')?.dataset.state === 'done', null, { timeout: T });
  const perHost = await page.$$eval('#per-host tr[data-host]', (trs) => trs.map((tr) => [tr.dataset.host, tr.cells[1].textContent, tr.cells[2].textContent]));
  assert.equal(perHost.length, HOSTS.length);
  for (const [, st, res] of perHost) { assert.equal(st, 'ok'); assert.match(res, /exit 0/); }
  const groups = await page.$$eval('#groups .group', (gs) => gs.map((g) => [g.querySelector('.hosts').textContent, g.querySelector('pre')?.textContent]));
  assert.equal(groups.length, 1, 'one output, one group: ' + JSON.stringify(groups));
  assert.equal(groups[0][1], 'hello from outpost\n');
  assert.deepEqual(groups[0][0].split(',').sort(), [...HOSTS].sort());
  await shot(page, '06-run-results');
});

test('a host whose output is HTML shows it as text, and nothing runs', async () => {
  const { page } = await open(ADMIN, '#/run');
  await page.fill('#target', EVIL);
  await page.selectOption('#kind', 'script');
  const evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
  await page.fill('#script', `printf '%s\\n' '${evil}'`);
  await page.click('#run');
  await page.waitForFunction(() => document.querySelector('main')?.dataset.state === 'done', null, { timeout: T });
  assert.equal(await text(page, '#groups pre'), evil + '\n');
  assert.equal(await page.$$eval('#groups script, #groups img', (x) => x.length), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await shot(page, '07-html-output-as-text');
});

test('run: a file copied to the hosts from the browser', async () => {
  const { page } = await open(ADMIN, '#/run');
  await page.fill('#target', 'web-*');
  await page.selectOption('#kind', 'file');
  await page.setInputFiles('#upload', { name: 'motd', mimeType: 'text/plain', buffer: Buffer.from('managed by outpost\n') });
  await page.fill('#dest', process.env.OUTPOST_FILES + '/motd');
  await page.fill('#mode', '0640');
  await page.click('#run');
  await page.waitForFunction(() => document.querySelector('main')?.dataset.state === 'done', null, { timeout: T });
  const states = await page.$$eval('#per-host tr[data-host]', (trs) => trs.map((tr) => tr.cells[1].textContent));
  assert.deepEqual(states, HOSTS.map(() => 'ok'));
});

test("a host's page shows its facts and charts for 1 h, 24 h and 7 d; an admin edits labels", async () => {
  const { page } = await open(ADMIN, '#/host/' + HOSTS[0]);
  await page.waitForSelector('#facts dt', { timeout: T });
  await page.waitForFunction(() => document.querySelectorAll('#charts .chart[data-series]').length === 5, null, { timeout: T });
  const charts = await page.$$eval('#charts .chart', (cs) => cs.map((c) => [c.dataset.chart, Number(c.dataset.series), !!c.querySelector('.uplot canvas')]));
  for (const [name, n, drawn] of charts) if (name !== 'Disk used %') assert.ok(n > 0 && drawn, name + ' drawn: ' + JSON.stringify(charts));
  await shot(page, '08-host-charts-1h');
  await page.click('button[data-range="24h"]');
  await page.waitForFunction(() => document.querySelector('button[data-range="24h"].primary') && document.querySelectorAll('#charts .chart[data-series]').length === 5, null, { timeout: T });
  await page.fill('#label-key', 'tier');
  await page.fill('#label-value', 'gold');
  await page.click('#labels button[type=submit]');
  await page.waitForFunction(() => /tier\s*gold/.test(document.querySelector('#labels table')?.textContent || ''), null, { timeout: T });
  await shot(page, '09-host-labels');
});

test('the metrics explorer charts a query and gives the CLI line', async () => {
  const { page } = await open(ADMIN, '#/metrics');
  await page.fill('#metric', 'host_cpu_percent');
  await page.fill('#match', 'mode=user');
  await page.selectOption('#agg', 'avg');
  await page.click('#chart');
  await page.waitForSelector('#metric-chart .uplot', { timeout: T });
  assert.equal(await text(page, '#cli-line'), 'outpost metrics query host_cpu_percent --match mode=user --from -1h --agg avg');
  await shot(page, '10-metrics');
});

test('an admin accepts a pending host', async () => {
  const { page } = await open(ADMIN, '#/access');
  const row = `#pending tr[data-host="${PENDING}"]`;
  await page.waitForSelector(row, { timeout: T });
  await shot(page, '11-pending');
  await page.click(`${row} button[data-verb=accept]`);
  await page.waitForSelector(row, { state: 'detached', timeout: T });
  await page.evaluate((h) => { location.hash = '#/host/' + h; }, PENDING);
  // Accepted: up, or down until its agent asks again (a pending agent backs off up to a minute).
  await page.waitForFunction(() => / (up|down)$/.test(document.querySelector('main h1')?.textContent || ''), null, { timeout: T });
  await shot(page, '11b-accepted');
});

test('an admin creates a token, sees its secret once, and revokes it', async () => {
  const { page } = await open(ADMIN, '#/access');
  await page.waitForSelector('#tokens table', { timeout: T });
  await page.selectOption('#token-role', 'viewer');
  await page.click('#token-create');
  await page.waitForSelector('#secret', { timeout: T });
  const secret = await text(page, '#secret');
  assert.match(secret, /^opo_/);
  const id = (await text(page, '#created p')).match(/Token (\S+)/)[1];
  const status = (tok) => page.evaluate((t) => fetch('/api/v1/whoami', { headers: { Authorization: 'Bearer ' + t } }).then((r) => r.status), tok);
  assert.equal(await status(secret), 200);
  await page.waitForSelector(`#tokens tr[data-token="${id}"] button`, { timeout: T });
  await shot(page, '12-token-created');
  await page.click(`#tokens tr[data-token="${id}"] button`);
  await page.waitForFunction((i) => document.querySelector(`#tokens tr[data-token="${i}"]`)?.textContent.includes('revoked'), id, { timeout: T });
  assert.equal(await status(secret), 401);
  assert.ok(!(await page.$$eval('#tokens tr', (trs) => trs.map((t) => t.textContent).join())).includes(secret), 'the list never shows a secret');
  await page.waitForSelector('#audit table', { timeout: T });
  await shot(page, '13-token-revoked');
});

test('no page raised a script error', () => {
  assert.deepEqual(errors, []);
});
