// Drives Debian's Chromium (playwright-core, no bundled browser) through the operator
// console of a running broker, as crates/infoharbor/tests/console.rs starts it:
//   node drive.mjs SCENARIO   with BROKER, KEY, SHOTS (screenshot folder) and, for some
//   scenarios, ENTITY (the id to work on) in the environment.
// Prints one JSON line of what it measured; any failed expectation exits non-zero with
// the reason on stderr, after a screenshot of the page as it was.

import { chromium } from 'playwright-core';
import http from 'node:http';
import { mkdirSync } from 'node:fs';

const { BROKER, KEY, SHOTS } = process.env;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const scenario = process.argv[2];
const API = `${BROKER}/ngsi-ld/v1`;
const measured = {};
let page;

mkdirSync(SHOTS, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function shot(name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
}

/** A request made outside the browser, with the operator's key. */
async function outside(method, path, body) {
  const resp = await fetch(`${API}${path}`, {
    method,
    headers: { 'X-API-Key': KEY, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(resp.ok, `${method} ${path} outside the browser: ${resp.status} ${await resp.text()}`);
  return resp;
}

async function login() {
  await page.fill('#key', KEY);
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => document.getElementById('who').textContent.startsWith('key'));
}

async function showOnMap(type, q) {
  await page.fill('#map-type', type);
  await page.fill('#map-q', q);
  await page.click('#map-filter button[type=submit]');
}

async function points() {
  return Number(await page.getAttribute('#map', 'data-points'));
}

async function waitPoints(n) {
  await page.waitForFunction((n) => document.getElementById('map').dataset.points === String(n), n, { timeout: 10000 })
    .catch(async () => { throw new Error(`map shows ${await points()} points, not ${n}; ${await page.textContent('#map-error')}`); });
}

/** Clicks an entity's point, zooming into its cluster until it stands alone. */
async function clickEntity(id) {
  for (let i = 0; i < 8; i++) {
    const at = await page.evaluate((id) => document.getElementById('map').screenOf(id), id);
    check(at, `${id} is not on the map`);
    const box = await page.locator('#map').boundingBox();
    await page.mouse.click(box.x + at.x, box.y + at.y);
    try {
      await page.waitForFunction((id) => document.getElementById('panel-title').textContent === id
        && !document.getElementById('panel').hidden, id, { timeout: 700 });
      return;
    } catch { /* it was a cluster: the map zoomed in */ }
  }
  throw new Error(`clicking ${id} on the map never opened it`);
}

async function seesTheCity() {
  // Served with its headers, revalidated with its ETag.
  const resp = await page.goto(`${BROKER}/console/`);
  const h = resp.headers();
  check(h['content-type'].startsWith('text/html'), `content-type ${h['content-type']}`);
  check(h['content-security-policy']?.includes("script-src 'self'"), `CSP ${h['content-security-policy']}`);
  const etag = h.etag;
  const again = await fetch(`${BROKER}/console/map.js`, { headers: { 'If-None-Match': '"x"' } });
  check(again.status === 200 && again.headers.get('content-type').startsWith('text/javascript'), 'map.js');
  const cached = await fetch(`${BROKER}/console/`, { headers: { 'If-None-Match': etag } });
  check(cached.status === 304, `If-None-Match answered ${cached.status}`);

  // Before logging in, the broker refuses, and the console says so.
  await showOnMap('OffStreetParking', '');
  await page.waitForFunction(() => document.getElementById('map-error').textContent.startsWith('Unauthorized'));
  await shot('01-refused-before-login');
  await login();
  await showOnMap('OffStreetParking', '');
  await waitPoints(12);
  measured.mapLoadMs = Number(await page.getAttribute('#map', 'data-load-ms'));
  await page.waitForTimeout(300);
  await shot('02-map-car-parks');

  // Filtered by q.
  await showOnMap('OffStreetParking', 'availableSpotNumber>200');
  await waitPoints(6);
  await shot('03-map-filtered-by-q');

  // Click a car park: its panel; then the entity browser, an edit, a refused edit.
  await showOnMap('OffStreetParking', '');
  await waitPoints(12);
  const id = 'urn:ngsi-ld:OffStreetParking:SG-MarinaSquare';
  await clickEntity(id);
  await page.waitForSelector('#panel dd[data-attr=name]');
  check((await page.textContent('#panel dd[data-attr=name]')) === 'Marina Square car park', 'the panel shows the name');
  await shot('04-map-entity-panel');
  await page.click('#panel-open');
  await page.waitForFunction((id) => document.getElementById('detail-id').textContent === id
    && document.getElementById('detail-json').textContent.includes('totalSpotNumber'), id);
  await page.selectOption('#edit-attr', 'availableSpotNumber');
  await page.fill('#edit-value', '42');
  await page.click('#edit button[type=submit]');
  await page.waitForFunction(() => document.getElementById('edit-result').textContent === 'availableSpotNumber saved');
  const stored = await (await fetch(`${API}/entities/${id}?options=keyValues`, { headers: { 'X-API-Key': KEY } })).json();
  check(stored.availableSpotNumber === 42, `the broker holds ${stored.availableSpotNumber}`);
  await shot('05-entity-edited');
  await page.selectOption('#edit-attr', 'location');
  await page.fill('#edit-value', '"the harbour front"');
  await page.click('#edit button[type=submit]');
  await page.waitForFunction(() => document.getElementById('edit-error').textContent.length > 0);
  const error = await page.textContent('#edit-error');
  check(error.startsWith('The request includes input data which does not meet the requirements')
    && error.includes('location'), `the console shows the broker's ProblemDetails: ${error}`);
  measured.refusal = error;
  await shot('06-entity-bad-value-refused');

  // The three representations, and paging with idPattern.
  await page.fill('#query input[name=type]', 'OffStreetParking');
  await page.fill('#query input[name=idPattern]', '^urn:ngsi-ld:OffStreetParking:SG-');
  await page.fill('#query input[name=limit]', '5');
  await page.selectOption('#query select[name=format]', 'keyValues');
  await page.click('#query button[type=submit]');
  await page.waitForFunction(() => document.getElementById('page-info').textContent === '1–5 of 12');
  await page.click('#next');
  await page.waitForFunction(() => document.getElementById('page-info').textContent === '6–10 of 12');
  await page.click('#results li');
  await page.waitForFunction(() => /"availableSpotNumber": \d+/.test(document.getElementById('detail-json').textContent));
}

async function liveUpdate() {
  const id = process.env.ENTITY;
  await page.goto(`${BROKER}/console/#map`);
  await login();
  await showOnMap('OffStreetParking', '');
  await waitPoints(12);
  await clickEntity(id);
  await page.waitForFunction(() => document.getElementById('map').dataset.live === 'live');
  const before = await page.evaluate((id) => document.getElementById('map').screenOf(id), id);
  // A PATCH made outside the browser moves the car park and changes its free spots.
  const sent = Date.now();
  await outside('PATCH', `/entities/${id}/attrs/availableSpotNumber`, { type: 'Property', value: 7 });
  await page.waitForFunction(() => document.querySelector('#panel dd[data-attr=availableSpotNumber]')?.textContent === '7', null, { timeout: 5000 });
  measured.liveAttributeMs = Date.now() - sent;
  const moved = Date.now();
  await outside('PATCH', `/entities/${id}/attrs/location`, { type: 'GeoProperty', value: { type: 'Point', coordinates: [103.8600, 1.2890] } });
  await page.waitForFunction(([id, x]) => Math.abs(document.getElementById('map').screenOf(id).x - x) > 1, [id, before.x], { timeout: 5000 });
  measured.liveMoveMs = Date.now() - moved;
  check(measured.liveAttributeMs < 1000, `the change showed after ${measured.liveAttributeMs} ms`);
  check(measured.liveMoveMs < 1000, `the move showed after ${measured.liveMoveMs} ms`);
  await page.waitForSelector(`#live-log li[data-id="${id}"]`);
  await shot('07-live-update');
}

async function chartHistory() {
  const id = process.env.ENTITY;
  await page.goto(`${BROKER}/console/#history`);
  await login();
  await page.fill('#history-form input[name=ids]', `${id}, urn:ngsi-ld:OffStreetParking:SG-Bugis`);
  await page.fill('#history-form input[name=attr]', 'availableSpotNumber');
  await page.click('#history-form button[type=submit]');
  await page.waitForSelector('#chart svg polyline');
  const samples = await page.locator('#chart polyline').first().getAttribute('points');
  measured.samples = samples.split(' ').length;
  check(measured.samples >= 4, `the chart of ${id} has ${measured.samples} samples: ${samples}`);
  check(await page.locator('#chart polyline').count() === 2, 'one line per entity');
  await shot('08-history-chart');
  await page.selectOption('#history-form select[name=method]', 'max');
  await page.fill('#history-form input[name=period]', 'P1D');
  await page.click('#history-form button[type=submit]');
  await page.waitForFunction((raw) => {
    const lines = document.querySelectorAll('#chart polyline');
    const n = lines.length === 2 && lines[0].getAttribute('points').split(' ').length;
    return n >= 1 && n < raw;
  }, measured.samples);
  await shot('09-history-aggregated');
}

async function replayDeadLetter() {
  // A receiver that refuses (400, a permanent failure: dead-lettered at once), then accepts.
  let accept = false;
  const received = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (accept) received.push(JSON.parse(body));
      res.writeHead(accept ? 200 : 400).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  await outside('POST', '/subscriptions', {
    id: 'urn:ngsi-ld:Subscription:console-replay', type: 'Subscription',
    entities: [{ type: 'OffStreetParking' }], watchedAttributes: ['availableSpotNumber'],
    notification: { endpoint: { uri: `http://127.0.0.1:${port}/notify`, accept: 'application/json' } },
  });
  await outside('PATCH', '/entities/urn:ngsi-ld:OffStreetParking:SG-Bugis/attrs/availableSpotNumber', { type: 'Property', value: 39 });
  await page.goto(`${BROKER}/console/#deliveries`);
  await login();
  for (let i = 0; i < 50; i++) {
    await page.click('#deliveries-reload');
    await page.waitForTimeout(200);
    if (await page.locator('#dead-letters tbody tr').count() > 0) break;
  }
  check(await page.locator('#dead-letters tbody tr').count() === 1, 'one dead letter is listed');
  await page.waitForFunction(() => document.querySelector('#subscriptions tbody')?.textContent.includes('console-replay'));
  await shot('10-dead-letter');
  accept = true;
  await page.click('#dead-letters tbody tr button:text("Replay")');
  await page.waitForFunction(() => document.querySelectorAll('#dead-letters tbody tr').length === 0);
  for (let i = 0; i < 50 && !received.length; i++) await new Promise((r) => setTimeout(r, 100));
  check(received.length === 1, `the receiver got ${received.length} notifications after the replay`);
  check(received[0].data[0].id === 'urn:ngsi-ld:OffStreetParking:SG-Bugis', 'the replayed notification is the dead one');
  await shot('11-dead-letter-replayed');
  server.close();
}

const scenarios = { seesTheCity, liveUpdate, chartHistory, replayDeadLetter };

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  const console = [];
  page.on('console', (m) => { if (m.type() === 'error') console.push(m.text()); });
  page.on('pageerror', (e) => console.push(String(e)));
  check(scenarios[scenario], `unknown scenario ${scenario}`);
  const started = Date.now();
  await scenarios[scenario]();
  measured.ms = Date.now() - started;
  // The refusals the scenarios provoke show as failed loads; anything else is a fault.
  const unexpected = console.filter((m) => !m.startsWith('Failed to load resource'));
  check(unexpected.length === 0, `errors in the page: ${unexpected.join('\n')}`);
} catch (e) {
  failed = e;
  if (page) await shot(`failed-${scenario}`).catch(() => {});
} finally {
  await browser.close();
}
if (failed) {
  process.stderr.write(`${scenario}: ${failed.stack || failed}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify(measured)}\n`);
