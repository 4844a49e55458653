// The dashboard in a real browser (Debian's Chromium, driven by
// playwright-core), against a running appliance that watches a real RTSP
// camera. Started by tests/dashboard.rs, which sets up the appliance and
// checks the config file, the live appliance and the audit log afterwards:
//   cargo test --release --test dashboard -- --nocapture
//
// Env: HEADCOUNT_URL (http://127.0.0.1:PORT), HEADCOUNT_ADMIN_TOKEN,
// HEADCOUNT_FACILITIES_TOKEN, HEADCOUNT_RTSP_PID (the camera server, killed
// here to see "reconnecting"), HEADCOUNT_ARTIFACTS (screenshots go there),
// HEADCOUNT_CONFIG (optional: the config file, to check that a refused save
// wrote nothing), HEADCOUNT_CHROMIUM (optional, default /usr/bin/chromium).
//
// Steps (logged as "STEP"): keyboard login (i) as facilities (b), occupancy
// against the API (c), health and a live "reconnecting" (d), CSRF (e),
// on-site validation taps (j), a count corrected by hand (l), the CSV
// download (k), logout (f), admin's zone editor (g); figures (h) are printed as lines
// starting with "FIGURE"; every response is checked for image data (a).
// Hard failures stop at once; "soft" ones are collected and fail the run at
// the end, so that one run reports every mismatch it can see.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`error: ${name} is not set (this script is run by tests/dashboard.rs)`);
    process.exit(2);
  }
  return value;
};
const BASE = env('HEADCOUNT_URL').replace(/\/$/, '');
const ADMIN_TOKEN = env('HEADCOUNT_ADMIN_TOKEN');
const FACILITIES_TOKEN = env('HEADCOUNT_FACILITIES_TOKEN');
const RTSP_PID = Number(env('HEADCOUNT_RTSP_PID'));
const ARTIFACTS = env('HEADCOUNT_ARTIFACTS');
const CONFIG = process.env.HEADCOUNT_CONFIG || null;
const CHROMIUM = env('HEADCOUNT_CHROMIUM', '/usr/bin/chromium');
const ORIGIN = new URL(BASE).origin;
const CAMERA = 'lobby';
// The zone drawn in the editor (normalised x, y) and the refused one.
const NEW_ZONE = 'e2e_zone';
const NEW_ZONE_POINTS = [[0.10, 0.70], [0.25, 0.70], [0.25, 0.90], [0.10, 0.90]];
const BAD_ZONE = 'e2e_bad';
const BAD_ZONE_POINTS = [[0.15, 0.06], [0.30, 0.06], [0.22, 0.14]];
const WATCHDOG_MS = 280_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const started = Date.now();
const stamp = () => `[e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`;
const log = (...args) => console.log(stamp(), ...args);
const step = (id, text) => console.log(`\n${stamp()} STEP ${id}: ${text}`);
const figure = (name, value, unit) => console.log(`FIGURE ${name}: ${value}${unit ? ' ' + unit : ''}`);
const soft = [];
function check(ok, message) {
  if (ok) return true;
  soft.push(message);
  console.log(`${stamp()} SOFT FAILURE: ${message}`);
  return false;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- recording
const responses = []; // every response the page received
const requests = []; // every request the page made
let phase = 'initial';

function isSse(contentType) {
  return contentType.toLowerCase().startsWith('text/event-stream');
}
function magic(head) {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 4 && head[0] === 0x89 && head.subarray(1, 4).toString('latin1') === 'PNG') return 'png';
  if (head.length >= 4 && head.subarray(0, 4).toString('latin1') === 'GIF8') return 'gif';
  if (head.length >= 12 && head.subarray(0, 4).toString('latin1') === 'RIFF'
      && head.subarray(8, 12).toString('latin1') === 'WEBP') return 'webp';
  return null;
}
function record(response) {
  const request = response.request();
  const headers = response.headers();
  const contentType = headers['content-type'] || '';
  const rec = {
    url: response.url(),
    method: request.method(),
    status: response.status(),
    contentType,
    probe: Boolean(request.headers()['x-e2e']),
    phase,
    at: Date.now(),
    headers,
    sse: isSse(contentType),
    bytes: null,
    kind: null,
    dataImage: false,
    bodyError: null,
  };
  responses.push(rec);
  if (rec.sse) {
    // Long-lived: its body never ends. Noted, never read.
    log(`(noted SSE stream ${rec.method} ${rec.url}, status ${rec.status}; body not captured)`);
    rec.done = Promise.resolve();
    return;
  }
  if ([204, 304].includes(rec.status) || (rec.status >= 300 && rec.status < 400)) {
    rec.bytes = 0; // no body
    rec.done = Promise.resolve();
    return;
  }
  rec.done = response.body().then(
    (body) => {
      rec.bytes = body.length;
      rec.kind = magic(body.subarray(0, 16));
      rec.dataImage = body.includes('data:image');
    },
    (e) => {
      rec.bodyError = String(e.message || e).split('\n')[0];
    },
  );
}
const pathOf = (url) => new URL(url).pathname;

// ------------------------------------------------------------------ helpers
let shotNo = 0;
async function shot(page, name) {
  shotNo += 1;
  const file = path.join(ARTIFACTS, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

/** A request from inside the page (same origin, its cookie), marked as the test's own. */
async function inPage(page, method, url, { csrf = null, body = undefined } = {}) {
  return page.evaluate(
    async ({ method, url, csrf, body }) => {
      const headers = { 'X-E2E': '1' };
      if (csrf) headers['X-CSRF-Token'] = csrf;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const r = await fetch(url, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status: r.status, contentType: r.headers.get('content-type'), json, text: text.slice(0, 2000) };
    },
    { method, url, csrf, body },
  );
}

async function visible(page, selector) {
  const loc = page.locator(selector);
  return (await loc.count()) > 0 && (await loc.first().isVisible());
}

async function text(page, selector) {
  const loc = page.locator(selector);
  if ((await loc.count()) === 0) return null;
  return (await loc.first().innerText()).trim();
}

/** What has keyboard focus, for the log. */
function describeFocus(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { desc: 'body' };
    const form = el.closest('form');
    return {
      id: el.id || null,
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type'),
      inLoginForm: Boolean(form && form.id === 'login-form'),
      desc: `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.getAttribute('type') ? '[type=' + el.getAttribute('type') + ']' : ''}`,
    };
  });
}

function expectedLevel(value, capacity) {
  if (value === null || value === undefined || capacity === null || capacity === undefined) return 'unknown';
  if (value > capacity) return 'over';
  if (value >= 0.8 * capacity) return 'warn';
  return 'ok';
}

function parsePoints(textValue) {
  return textValue.trim().split(/\s+/).filter(Boolean).map((p) => p.split(',').map(Number));
}

function near(a, b, tolerance = 0.02) {
  return a.length === b.length
    && a.every((p, i) => Math.abs(p[0] - b[i][0]) <= tolerance && Math.abs(p[1] - b[i][1]) <= tolerance);
}

/** Clicks at normalised positions of the editor's canvas. */
async function clickCanvas(page, points) {
  // Mouse clicks land at viewport coordinates: the whole canvas must be in
  // view (the panels above it grow and shrink as live data arrives).
  await page.locator('#editor-canvas').evaluate((canvas) => canvas.scrollIntoView({ block: 'center' }));
  const box = await page.locator('#editor-canvas').boundingBox();
  assert.ok(box && box.width > 10 && box.height > 10, `#editor-canvas has no usable size: ${JSON.stringify(box)}`);
  const viewport = page.viewportSize();
  assert.ok(box.y >= 0 && box.y + box.height <= viewport.height, `#editor-canvas is not wholly in view: ${JSON.stringify(box)}`);
  for (const [x, y] of points) {
    await page.mouse.click(box.x + x * box.width, box.y + y * box.height);
    await sleep(150);
  }
  return box;
}

/** No JavaScript values leaked into the visible text ("[object ...]", undefined, NaN). */
async function checkRenderedText(page, where) {
  const leaks = await page.evaluate(() => {
    const found = document.body.innerText.match(/\[object \w+\]|\bundefined\b|\bNaN\b|\bnull\b/g);
    return found ? [...new Set(found)] : [];
  });
  check(leaks.length === 0, `${where}: the page shows JavaScript values as text: ${leaks.join(', ')}`);
}

/** Writes what the page showed when something failed. */
async function dumpFailure(page) {
  try {
    await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true });
    const html = await page.content();
    fs.writeFileSync(path.join(ARTIFACTS, 'failure.html'), html);
    console.log(`${stamp()} failure screenshot and DOM written to ${ARTIFACTS}/failure.{png,html}`);
    const body = await page.evaluate(() => document.body ? document.body.innerText : '');
    console.log(`--- page text at failure (first 4000 chars) ---\n${body.slice(0, 4000)}\n--- end of page text ---`);
  } catch (e) {
    console.log(`(could not dump the page: ${e.message})`);
  }
  console.log('--- last 40 responses ---');
  for (const r of responses.slice(-40)) {
    console.log(`  ${r.method} ${r.url} -> ${r.status} ${r.contentType}${r.probe ? ' (test probe)' : ''}`);
  }
}

// --------------------------------------------------------------------- main
async function main(browser, consoleLines, pageErrors) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.on('response', record);
  context.on('request', (request) => {
    const headers = request.headers();
    requests.push({ url: request.url(), method: request.method(), probe: Boolean(headers['x-e2e']), contentType: headers['content-type'], phase, at: Date.now() });
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    consoleLines.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error' || m.type() === 'warning') log(`(browser console ${m.type()}: ${m.text()})`);
  });
  page.on('pageerror', (e) => {
    pageErrors.push(String(e.message || e));
    log(`(page error: ${e.message || e})`);
  });
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  globalThis.__page = page;

  // ---- i + h: the login page, by keyboard --------------------------------
  step('i', 'login page loads; Tab reaches #token and the submit button');
  const documentResponse = await page.goto(`${BASE}/`, { waitUntil: 'load' });
  assert.equal(documentResponse.status(), 200, `GET / answered ${documentResponse.status()}`);
  const csp = documentResponse.headers()['content-security-policy'] || '';
  check(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"),
    `GET / has no strict Content-Security-Policy: ${JSON.stringify(csp)}`);
  check((documentResponse.headers()['content-type'] || '').startsWith('text/html'),
    `GET / content-type is ${documentResponse.headers()['content-type']}`);
  await page.locator('#login-form').waitFor({ state: 'visible', timeout: 10_000 });
  await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => log('(no network idle within 10 s)'));
  const tokenType = await page.getAttribute('#token', 'type');
  check(tokenType === 'password', `#token has type=${tokenType}, want password`);
  const hasLabel = await page.evaluate(() => {
    const t = document.getElementById('token');
    return Boolean(t && ((t.labels && t.labels.length > 0) || t.getAttribute('aria-label')));
  });
  check(hasLabel, '#token has no <label>');
  check(await page.locator('#login-error').count() === 1
      && (await page.getAttribute('#login-error', 'role')) === 'alert', '#login-error with role=alert is missing');
  await shot(page, 'login');

  const paints = await page.evaluate(() => performance.getEntriesByType('paint').map((e) => ({ name: e.name, t: e.startTime })));
  const fcp = paints.find((p) => p.name === 'first-contentful-paint');
  check(Boolean(fcp), `no first-contentful-paint entry: ${JSON.stringify(paints)}`);

  // Tab through the page from the top.
  await page.evaluate(() => { if (document.activeElement) document.activeElement.blur(); });
  let reachedToken = false;
  let reachedSubmit = false;
  const order = [];
  for (let i = 0; i < 25 && !(reachedToken && reachedSubmit); i += 1) {
    await page.keyboard.press('Tab');
    const f = await describeFocus(page);
    order.push(f.desc);
    if (f.id === 'token') reachedToken = true;
    if (f.inLoginForm && f.tag === 'button' && f.type === 'submit') reachedSubmit = true;
  }
  log(`tab order: ${order.join(' -> ')}`);
  assert.ok(reachedToken, `Tab never reached #token (order: ${order.join(', ')})`);
  assert.ok(reachedSubmit, `Tab never reached the submit button (order: ${order.join(', ')})`);
  // Back to #token with Shift+Tab.
  for (let i = 0; i < 25; i += 1) {
    if ((await describeFocus(page)).id === 'token') break;
    await page.keyboard.press('Shift+Tab');
  }
  assert.equal((await describeFocus(page)).id, 'token', 'Shift+Tab did not get back to #token');

  step('i', 'a wrong token, submitted with Enter in #token, shows #login-error');
  await page.keyboard.type('hc_this_is_not_a_valid_token');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const e = document.getElementById('login-error');
    return e && e.offsetParent !== null && e.textContent.trim().length > 0;
  }, null, { timeout: 10_000 }).catch(() => { throw new Error('no visible #login-error after a wrong token'); });
  log(`#login-error: ${JSON.stringify(await text(page, '#login-error'))}`);
  check(await visible(page, '#login-form'), 'the login form went away after a wrong token');

  step('b', 'log in as facilities by keyboard (Enter in #token)');
  await page.fill('#token', '');
  await page.focus('#token');
  await page.keyboard.type(FACILITIES_TOKEN);
  phase = 'login';
  const loginAt = Date.now();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const w = document.getElementById('whoami');
    return w && /facilities/.test(w.textContent);
  }, null, { timeout: 15_000 }).catch(async () => {
    throw new Error(`#whoami never showed "facilities" (#whoami: ${JSON.stringify(await text(page, '#whoami'))}, #login-error: ${JSON.stringify(await text(page, '#login-error'))})`);
  });
  log(`#whoami: ${JSON.stringify(await text(page, '#whoami'))}`);
  check(!(await visible(page, '#login-form')), 'the login form is still visible after logging in');
  // The appliance takes a login only as JSON: a page of another site cannot send that without a preflight.
  const logins = requests.filter((r) => r.method === 'POST' && pathOf(r.url) === '/api/v1/login');
  check(logins.length >= 2 && logins.every((r) => /^application\/json\b/.test(r.contentType ?? '')),
    `the page's logins were not all sent with Content-Type: application/json: ${JSON.stringify(logins.map((r) => r.contentType))}`);
  const editorShownToFacilities = await visible(page, '#editor');
  assert.ok(!editorShownToFacilities, '#editor is visible to the facilities role');
  check(await visible(page, '#logout'), 'button#logout is not visible');

  // ---- h: time to the first occupancy number -----------------------------
  await page.waitForFunction(() => [...document.querySelectorAll('#occupancy .occupancy-value')]
    .some((e) => /^\d+$/.test(e.textContent.trim())), null, { timeout: 60_000, polling: 50 })
    .catch(() => { throw new Error('no occupancy number on the page within 60 s of logging in'); });
  const firstNumberMs = Date.now() - loginAt;
  log(`first occupancy number ${firstNumberMs} ms after pressing Enter`);
  await sleep(2000);
  phase = 'dashboard';

  step('b', 'the session cookie: HttpOnly, SameSite=Strict, invisible to scripts');
  const cookies = await context.cookies(BASE);
  const session = cookies.find((c) => c.name === 'headcount_session');
  assert.ok(session, `no headcount_session cookie; cookies: ${cookies.map((c) => c.name).join(', ')}`);
  assert.equal(session.httpOnly, true, 'headcount_session is not HttpOnly');
  assert.equal(session.sameSite, 'Strict', `headcount_session is SameSite=${session.sameSite}`);
  check(session.path === '/', `headcount_session has Path=${session.path}`);
  const documentCookie = await page.evaluate(() => document.cookie);
  assert.ok(!documentCookie.includes('headcount_session'), `document.cookie shows the session: ${documentCookie}`);
  const who = await inPage(page, 'GET', '/api/v1/session');
  assert.equal(who.status, 200, `GET /api/v1/session answered ${who.status}: ${who.text}`);
  assert.equal(who.json.role, 'facilities');
  assert.ok(typeof who.json.csrf === 'string' && who.json.csrf.length >= 16, `weak or missing csrf: ${who.text}`);
  const facilitiesCsrf = who.json.csrf;

  const dash = await inPage(page, 'GET', '/api/v1/dashboard');
  assert.equal(dash.status, 200, `GET /api/v1/dashboard answered ${dash.status}: ${dash.text}`);
  log(`dashboard: ${dash.text}`);
  const zoneKeys = dash.json.zones.map((z) => z.zone);
  const spaceKeys = dash.json.spaces.map((s) => s.space);
  const lineKeys = dash.json.lines.map((l) => l.line);
  check(dash.json.snapshots === true, 'dashboard says snapshots are off (the test enables them)');
  assert.ok(zoneKeys.includes(`${CAMERA}.path`), `dashboard zones: ${zoneKeys}`);
  assert.ok(spaceKeys.length > 0, 'the dashboard lists no space');

  // ---- c: occupancy against the API --------------------------------------
  step('c', 'each occupancy card equals GET /api/v1/occupancy read at the same moment');
  for (const [kind, key] of [...zoneKeys.map((k) => ['zone', k]), ...spaceKeys.map((k) => ['space', k])]) {
    assert.equal(await page.locator(`#occupancy [data-kind="${kind}"][data-key="${key}"]`).count(), 1,
      `no occupancy card [data-kind="${kind}"][data-key="${key}"]`);
  }
  await page.waitForFunction((keys) => keys.every(([kind, key]) => {
    const v = document.querySelector(`#occupancy [data-kind="${kind}"][data-key="${key}"] .occupancy-value`);
    return v && /^\d+$/.test(v.textContent.trim());
  }), [...zoneKeys.map((k) => ['zone', k]), ...spaceKeys.map((k) => ['space', k])], { timeout: 30_000 })
    .catch(() => { throw new Error('not every zone and space card shows a number within 30 s'); });
  let readings = 0;
  let matched = 0;
  let lastMismatch = null;
  const levelsSeen = {};
  const compareUntil = Date.now() + 20_000;
  while (Date.now() < compareUntil && (matched < 5 || readings < 12)) {
    const reading = await page.evaluate(async () => {
      const r = await fetch('/api/v1/occupancy', { headers: { 'X-E2E': '1' }, credentials: 'same-origin' });
      const api = await r.json();
      // Read the cards in the same task as the response: no event can land in between.
      const cards = {};
      for (const el of document.querySelectorAll('#occupancy [data-kind][data-key]')) {
        cards[`${el.getAttribute('data-kind')}:${el.getAttribute('data-key')}`] = {
          value: el.querySelector('.occupancy-value')?.textContent.trim() ?? null,
          capacity: el.querySelector('.occupancy-capacity')?.textContent.trim() ?? null,
          level: el.getAttribute('data-level'),
          text: el.innerText,
        };
      }
      return { status: r.status, api, cards };
    });
    readings += 1;
    assert.equal(reading.status, 200);
    const items = [
      ...reading.api.zones.map((z) => ['zone', z.zone, z]),
      ...reading.api.spaces.map((s) => ['space', s.space, s]),
    ];
    const diffs = [];
    for (const [kind, key, item] of items) {
      const card = reading.cards[`${kind}:${key}`];
      const want = item.occupancy === null ? '–' : String(item.occupancy);
      if (!card) { diffs.push(`${kind} ${key}: no card`); continue; }
      if (card.value !== want) diffs.push(`${kind} ${key}: page ${card.value}, API ${want}`);
    }
    if (diffs.length === 0) {
      matched += 1;
      // Levels and capacity text, on a reading where the numbers agree.
      for (const [kind, key, item] of items) {
        const card = reading.cards[`${kind}:${key}`];
        const want = expectedLevel(item.occupancy, item.capacity);
        levelsSeen[`${kind}:${key}`] = card.level;
        check(['ok', 'warn', 'over', 'unknown'].includes(card.level), `${kind} ${key}: data-level=${card.level}`);
        check(card.level === want, `${kind} ${key}: data-level=${card.level}, want ${want} (occupancy ${item.occupancy}, capacity ${item.capacity})`);
        if (item.capacity !== null) {
          check(card.capacity !== null && card.capacity.includes(`of ${item.capacity}`),
            `${kind} ${key}: .occupancy-capacity is ${JSON.stringify(card.capacity)}, want "of ${item.capacity}"`);
        }
        if (card.level === 'over') {
          check(/over/i.test(card.text), `${kind} ${key} is over capacity but says so only by colour: ${JSON.stringify(card.text)}`);
        }
      }
    } else {
      lastMismatch = diffs.join('; ');
    }
    await sleep(300);
  }
  log(`occupancy readings: ${matched} of ${readings} matched the API exactly${lastMismatch ? `; last mismatch: ${lastMismatch}` : ''}`);
  log(`levels: ${JSON.stringify(levelsSeen)}`);
  assert.ok(matched >= 1, `no reading in 20 s where the page equals GET /api/v1/occupancy (last: ${lastMismatch})`);

  // The other sections exist and say something.
  for (const id of ['occupancy', 'flow', 'day-chart', 'heatmap', 'anomalies', 'health']) {
    const heading = await page.locator(`section#${id} :is(h1,h2,h3,h4)`).count();
    check(heading > 0, `section#${id} is missing or has no heading`);
  }
  for (const line of lineKeys) {
    const row = `#flow tr[data-line="${line}"]`;
    if (check(await page.locator(row).count() === 1, `no flow row ${row}`)) {
      const entries = await text(page, `${row} td.entries`);
      const exits = await text(page, `${row} td.exits`);
      log(`flow row ${line}: entries ${entries}, exits ${exits}`);
      check(/^\d+$/.test(entries ?? '') && /^\d+$/.test(exits ?? ''), `flow row ${line}: entries ${entries}, exits ${exits}`);
    }
  }
  check(await page.locator('#day-chart select#day-subject').count() === 1, 'no select#day-subject');
  await page.waitForSelector('#day-chart svg', { timeout: 10_000 }).catch(() => check(false, 'no <svg> in #day-chart'));
  check(await page.locator('#heatmap select#heatmap-subject').count() === 1, 'no select#heatmap-subject');
  await page.waitForSelector('#heatmap td[data-day][data-hour]', { timeout: 10_000 }).catch(() => {});
  const heatCells = await page.locator('#heatmap td[data-day][data-hour]').count();
  check(heatCells === 168, `the heatmap has ${heatCells} td[data-day][data-hour] cells, want 7 x 24 = 168`);
  const anomaliesText = await text(page, '#anomalies');
  log(`#anomalies: ${JSON.stringify((anomaliesText ?? '').slice(0, 200))}`);

  await checkRenderedText(page, 'facilities dashboard');
  await shot(page, 'dashboard-facilities-1280x900');
  await page.setViewportSize({ width: 820, height: 1180 });
  await sleep(600);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  log(`tablet 820x1180: horizontal overflow ${overflow} px`);
  check(overflow <= 0, `at 820 px wide the page scrolls sideways by ${overflow} px`);
  await shot(page, 'dashboard-tablet-820x1180');
  await page.setViewportSize({ width: 1280, height: 900 });

  // ---- d: health, live over SSE ------------------------------------------
  step('d', `health shows ${CAMERA} streaming; the camera server (pid ${RTSP_PID}) is killed; "reconnecting" arrives without a reload`);
  const stateCell = `#health tr[data-camera="${CAMERA}"] td.camera-state`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'streaming', stateCell,
    { timeout: 30_000 }).catch(async () => { throw new Error(`${stateCell} never showed "streaming" (shows ${JSON.stringify(await text(page, stateCell))})`); });
  log(`${stateCell}: streaming; reason ${JSON.stringify(await text(page, `#health tr[data-camera="${CAMERA}"] td.camera-reason`))}, frame age ${JSON.stringify(await text(page, `#health tr[data-camera="${CAMERA}"] td.frame-age`))}`);
  const sseSoFar = responses.filter((r) => r.sse && pathOf(r.url) === '/api/v1/live');
  assert.ok(sseSoFar.length >= 1, 'the page opened no text/event-stream at /api/v1/live');
  const navigationsBefore = navigations;
  await page.evaluate((sel) => {
    window.__e2eMarker = 'still-the-same-page';
    window.__e2eStates = [];
    const note = () => {
      const s = document.querySelector(sel)?.textContent.trim() ?? null;
      if (window.__e2eStates[window.__e2eStates.length - 1] !== s) window.__e2eStates.push(s);
    };
    note();
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, stateCell);
  const requestsBeforeKill = requests.length;
  const killedAt = Date.now();
  process.kill(RTSP_PID, 'SIGKILL');
  log(`killed the RTSP server (pid ${RTSP_PID})`);
  await page.waitForFunction(() => (window.__e2eStates || []).includes('reconnecting'), null, { timeout: 30_000, polling: 100 })
    .catch(async () => {
      const states = await page.evaluate(() => window.__e2eStates);
      throw new Error(`${stateCell} did not show "reconnecting" within 30 s of the kill; it showed ${JSON.stringify(states)}`);
    });
  const reconnectingAfter = Date.now() - killedAt;
  log(`"reconnecting" shown ${reconnectingAfter} ms after the kill; states seen: ${JSON.stringify(await page.evaluate(() => window.__e2eStates))}`);
  assert.equal(await page.evaluate(() => window.__e2eMarker), 'still-the-same-page', 'the page was reloaded');
  assert.equal(navigations, navigationsBefore, 'the page navigated while waiting for the health update');
  const reloadRequests = requests.slice(requestsBeforeKill).filter((r) => !r.probe
    && ['/api/v1/health', '/api/v1/occupancy', '/api/v1/anomalies'].includes(pathOf(r.url)));
  check(reloadRequests.length === 0,
    `the page polled while waiting for the update: ${reloadRequests.map((r) => `${r.method} ${r.url}`).join(', ')}`);
  log(`reason: ${JSON.stringify(await text(page, `#health tr[data-camera="${CAMERA}"] td.camera-reason`))}`);
  await shot(page, 'reconnecting');

  // ---- e: CSRF ------------------------------------------------------------
  step('e', 'a POST with the cookie but without X-CSRF-Token is refused with 403');
  const noCsrf = await inPage(page, 'POST', '/api/v1/anomalies/1/ack');
  log(`POST /api/v1/anomalies/1/ack without X-CSRF-Token -> ${noCsrf.status} ${noCsrf.text}`);
  assert.equal(noCsrf.status, 403, `POST without X-CSRF-Token answered ${noCsrf.status}: ${noCsrf.text}`);
  check(noCsrf.json && /csrf/i.test(noCsrf.json.error ?? ''), `the 403 body does not name CSRF: ${noCsrf.text}`);
  const wrongCsrf = await inPage(page, 'POST', '/api/v1/anomalies/1/ack', { csrf: 'not-the-token' });
  assert.equal(wrongCsrf.status, 403, `POST with a wrong X-CSRF-Token answered ${wrongCsrf.status}: ${wrongCsrf.text}`);
  // The control: with the right token the request passes the CSRF check (an id that does not exist).
  const withCsrf = await inPage(page, 'POST', '/api/v1/anomalies/999999/ack', { csrf: facilitiesCsrf });
  log(`POST /api/v1/anomalies/999999/ack with X-CSRF-Token -> ${withCsrf.status} ${withCsrf.text}`);
  check(![401, 403].includes(withCsrf.status), `with the right X-CSRF-Token the POST is still refused: ${withCsrf.status} ${withCsrf.text}`);

  // ---- j: on-site validation, taps on the phone-sized buttons ---------------
  step('j', 'check a line\'s count: start on lobby.crossing, tap In 3 and Out 2, finish; the result names the taps and the audit log');
  await page.locator('#validate').waitFor({ state: 'visible', timeout: 15_000 })
    .catch(() => { throw new Error('the "Check a line\'s count" panel is not visible to facilities'); });
  await page.selectOption('#validate-line', `${CAMERA}.crossing`);
  check(await page.isDisabled('#validate-in'), '#validate-in is enabled before a check was started');
  await page.click('#validate-start');
  await page.waitForFunction(() => !document.getElementById('validate-in').disabled, null, { timeout: 10_000 })
    .catch(async () => { throw new Error(`the check did not start: ${await text(page, '#validate-error')}`); });
  for (const id of ['#validate-in', '#validate-in', '#validate-out', '#validate-in', '#validate-out']) {
    await page.click(id);
    // Each tap is answered before the next (as a person taps, once a second at most).
    await page.waitForTimeout(150);
  }
  await page.waitForFunction(() => /you tapped 3 in, 2 out/.test(document.getElementById('validate-result').textContent), null, { timeout: 10_000 })
    .catch(async () => { throw new Error(`the taps are not shown: "${await text(page, '#validate-result')}" ${await text(page, '#validate-error')}`); });
  await page.click('#validate-finish');
  await page.waitForFunction(() => /finished, recorded in the audit log/.test(document.getElementById('validate-result').textContent), null, { timeout: 10_000 })
    .catch(async () => { throw new Error(`finishing showed no result: "${await text(page, '#validate-result')}" ${await text(page, '#validate-error')}`); });
  const validated = await text(page, '#validate-result');
  log(`validation result: ${validated}`);
  check(/the appliance counted \d+ in, \d+ out/.test(validated), `the result does not give the appliance's counts: ${validated}`);
  check(await page.isDisabled('#validate-in') && !(await page.isDisabled('#validate-start')),
    'after finishing, the tap buttons are still enabled or Start is not');
  await shot(page, 'validation');

  // ---- l: a count kept at the doors corrected by hand -----------------------
  step('l', 'correct space doors to 4 people with a reason; the card says so and shows 4');
  const doorsCard = page.locator('article.card[data-kind="space"][data-key="doors"]');
  await doorsCard.locator('details.correct summary').click();
  await doorsCard.locator('input[name=count]').fill('4');
  await doorsCard.locator('input[name=reason]').fill('e2e: counted by eye');
  await doorsCard.locator('button[type=submit]').click();
  await page.waitForFunction(() => /Set from \d+ to 4/.test(
    document.querySelector('article.card[data-key="doors"] .correct-status')?.textContent ?? ''), null, { timeout: 10_000 })
    .catch(async () => { throw new Error(`the correction was not confirmed: "${await doorsCard.locator('.correct-status').textContent()}"`); });
  await page.waitForFunction(() => document.querySelector('article.card[data-key="doors"] .occupancy-value')?.textContent === '4',
    null, { timeout: 10_000 })
    .catch(async () => { throw new Error(`the card does not show 4: ${await doorsCard.locator('.occupancy-value').textContent()}`); });
  await shot(page, 'corrected');

  // ---- k: the published aggregates as CSV ---------------------------------
  step('k', 'download aggregates: the link is the API\'s CSV of the chosen space, and it answers CSV to the session');
  await page.locator('#export').waitFor({ state: 'visible', timeout: 10_000 })
    .catch(() => { throw new Error('the "Download aggregates" panel is not visible to facilities'); });
  await page.selectOption('#export-space', 'hall');
  await page.selectOption('#export-bucket', '15m');
  await page.selectOption('#export-days', '1');
  const href = await page.getAttribute('#export-csv', 'href');
  const wanted = new URL(href, BASE);
  check(pathOf(wanted.href) === '/api/v1/aggregates', `the CSV link goes to ${href}`);
  check(wanted.searchParams.get('space') === 'hall' && wanted.searchParams.get('bucket') === '15m' &&
    wanted.searchParams.get('format') === 'csv', `the CSV link does not ask for hall, 15m, csv: ${href}`);
  const span = Date.parse(wanted.searchParams.get('to')) - Date.parse(wanted.searchParams.get('from'));
  check(span === 24 * 3600 * 1000, `the CSV link spans ${span} ms, not a day`);
  const csv = await page.evaluate(async (url) => {
    const r = await fetch(url, { credentials: 'same-origin' });
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  }, href);
  log(`GET ${href} -> ${csv.status} ${csv.type}, first line: ${csv.text.split('\n')[0]}`);
  assert.equal(csv.status, 200, `the CSV link answered ${csv.status}: ${csv.text}`);
  check(/^text\/csv/.test(csv.type ?? ''), `the CSV link answered ${csv.type}`);
  check(/^space,start,end,/.test(csv.text), `the CSV has no header line: ${csv.text.slice(0, 200)}`);

  // ---- f: logout ----------------------------------------------------------
  step('f', 'log out: the login form returns, the session is gone');
  const oldCookie = session.value;
  await page.click('button#logout');
  await page.locator('#login-form').waitFor({ state: 'visible', timeout: 10_000 })
    .catch(() => { throw new Error('the login form did not come back after clicking #logout'); });
  const after = await inPage(page, 'GET', '/api/v1/session');
  assert.equal(after.status, 401, `GET /api/v1/session after logout answered ${after.status}: ${after.text}`);
  const replay = await fetch(`${BASE}/api/v1/session`, { headers: { Cookie: `headcount_session=${oldCookie}` } });
  assert.equal(replay.status, 401, `the old session cookie still works after logout (${replay.status})`);
  const left = (await context.cookies(BASE)).find((c) => c.name === 'headcount_session' && c.value);
  check(!left, 'the headcount_session cookie was not cleared on logout');
  await shot(page, 'logged-out');

  // Polling: the live data came over SSE only (the test's own probes aside).
  const facilitiesRequests = requests.filter((r) => !r.probe && r.phase !== 'initial' && r.at < Date.now());
  for (const route of ['/api/v1/occupancy', '/api/v1/health', '/api/v1/anomalies']) {
    const n = facilitiesRequests.filter((r) => pathOf(r.url) === route).length;
    log(`the page itself requested ${route} ${n} time(s) during the facilities session`);
    check(n <= 2, `the page polls ${route} (${n} requests): the contract says SSE only`);
  }

  // ---- g: admin, the zone editor -------------------------------------------
  step('g', 'log in as admin; the editor is visible');
  phase = 'admin';
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => /admin/.test(document.getElementById('whoami')?.textContent ?? ''), null, { timeout: 15_000 })
    .catch(() => { throw new Error('#whoami never showed "admin"'); });
  await page.locator('#editor').waitFor({ state: 'visible', timeout: 15_000 })
    .catch(() => { throw new Error('#editor is not visible to admin'); });
  const adminSession = await inPage(page, 'GET', '/api/v1/session');
  assert.equal(adminSession.status, 200);
  const csrf = adminSession.json.csrf;

  await page.selectOption('#editor-camera', CAMERA);
  await page.waitForSelector('#shape-list li[data-shape="zone:path"]', { timeout: 15_000 })
    .catch(() => { throw new Error('the editor did not list zone:path for camera lobby'); });
  for (const line of lineKeys.filter((l) => l.startsWith(`${CAMERA}.`))) {
    const name = line.slice(CAMERA.length + 1);
    check(await page.locator(`#shape-list li[data-shape="line:${name}"]`).count() === 1, `the editor does not list line:${name}`);
  }
  const snapshotLoaded = await page.waitForFunction(() => {
    const img = document.getElementById('editor-snapshot');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 10_000 }).then(() => true, () => false);
  const snapshotSrc = await page.getAttribute('#editor-snapshot', 'src').catch(() => null);
  log(`snapshot: ${snapshotLoaded ? 'loaded' : 'NOT loaded (the editor must work without it)'}; src ${JSON.stringify(snapshotSrc)}`);
  check(snapshotSrc === null || pathOf(new URL(snapshotSrc, BASE).href) === `/api/v1/cameras/${CAMERA}/snapshot`,
    `img#editor-snapshot src is ${snapshotSrc}`);

  // The 422 contract, straight at the API, with everything kept plus a broken zone.
  const geometry = await inPage(page, 'GET', `/api/v1/cameras/${CAMERA}/geometry`);
  assert.equal(geometry.status, 200, `GET geometry answered ${geometry.status}: ${geometry.text}`);
  log(`geometry before: ${geometry.text}`);
  const broken = {
    zones: [...geometry.json.zones, { name: 'e2e_api_bad', polygon: [[0.1, 0.1], [0.2, 0.2]], capacity: null }],
    lines: geometry.json.lines,
  };
  const putNoCsrf = await inPage(page, 'PUT', `/api/v1/cameras/${CAMERA}/geometry`, { body: broken });
  check(putNoCsrf.status === 403, `PUT geometry without X-CSRF-Token answered ${putNoCsrf.status}`);
  const put422 = await inPage(page, 'PUT', `/api/v1/cameras/${CAMERA}/geometry`, { csrf, body: broken });
  log(`PUT geometry with a two-point zone -> ${put422.status} ${put422.text}`);
  assert.equal(put422.status, 422, `a two-point zone was not refused with 422: ${put422.status} ${put422.text}`);
  check(Array.isArray(put422.json?.errors) && put422.json.errors.some((e) => String(e.key).startsWith(`cameras.${CAMERA}.zones.e2e_api_bad`)),
    `422 errors do not name cameras.${CAMERA}.zones.e2e_api_bad: ${put422.text}`);

  step('g', 'a broken zone (two points typed into .points) shows an inline error and saves nothing');
  await page.fill('#shape-name', BAD_ZONE);
  await page.click('#new-zone');
  await clickCanvas(page, BAD_ZONE_POINTS);
  await page.click('#finish-shape');
  const badItem = `#shape-list li[data-shape="zone:${BAD_ZONE}"]`;
  await page.waitForSelector(badItem, { timeout: 5_000 })
    .catch(() => { throw new Error(`drawing 3 points and #finish-shape did not add ${badItem}`); });
  const drawnBad = await page.inputValue(`${badItem} input.points`);
  log(`${BAD_ZONE} drawn as ${JSON.stringify(drawnBad)}`);
  check(near(parsePoints(drawnBad), BAD_ZONE_POINTS), `${BAD_ZONE}: clicked ${JSON.stringify(BAD_ZONE_POINTS)}, the editor has ${drawnBad}`);
  await page.fill(`${badItem} input.points`, '0.150,0.060 0.300,0.060');
  await page.press(`${badItem} input.points`, 'Tab');
  await page.click('#save-geometry');
  const shownError = await page.waitForFunction((item) => {
    const field = document.querySelector(`${item} .field-error`);
    const all = document.getElementById('editor-errors');
    const f = field ? field.textContent.trim() : '';
    const a = all ? all.textContent.trim() : '';
    return (f || a) ? { field: f, all: a } : false;
  }, badItem, { timeout: 10_000 }).then((h) => h.jsonValue(), () => null);
  assert.ok(shownError, 'saving a two-point zone showed no error in its .field-error or #editor-errors');
  log(`inline error: ${JSON.stringify(shownError)}`);
  check(shownError.field.length > 0, `the error is not next to the zone (its .field-error is empty; #editor-errors: ${shownError.all})`);
  check((await page.getAttribute('#editor-errors', 'role')) === 'alert', '#editor-errors lacks role=alert');
  check(!/Saved and applied/.test((await text(page, '#editor-status')) ?? ''), '#editor-status claims a save');
  await shot(page, 'editor-refused');
  const afterBad = await inPage(page, 'GET', `/api/v1/cameras/${CAMERA}/geometry`);
  assert.ok(!afterBad.text.includes(BAD_ZONE), `the broken zone was saved: ${afterBad.text}`);
  if (CONFIG) {
    assert.ok(!fs.readFileSync(CONFIG, 'utf8').includes(BAD_ZONE), `the broken zone reached ${CONFIG}`);
  }
  await page.click(`${badItem} button.remove`);
  await page.waitForSelector(badItem, { state: 'detached', timeout: 5_000 })
    .catch(() => { throw new Error(`${badItem} button.remove did not remove it`); });

  step('g', `draw zone ${NEW_ZONE} with 4 clicks and save`);
  const flowBefore = {};
  for (const line of lineKeys) {
    const f = await inPage(page, 'GET', `/api/v1/flow?line=${encodeURIComponent(line)}&from=${encodeURIComponent(dash.json.today_start)}&bucket=1h`);
    flowBefore[line] = f.json && { entries: f.json.entries, exits: f.json.exits };
  }
  const occBefore = (await inPage(page, 'GET', '/api/v1/occupancy')).json;
  await page.fill('#shape-name', NEW_ZONE);
  await page.click('#new-zone');
  const box = await clickCanvas(page, NEW_ZONE_POINTS);
  log(`#editor-canvas box ${JSON.stringify(box)}`);
  await page.click('#finish-shape');
  const newItem = `#shape-list li[data-shape="zone:${NEW_ZONE}"]`;
  await page.waitForSelector(newItem, { timeout: 5_000 })
    .catch(() => { throw new Error(`4 clicks and #finish-shape did not add ${newItem}`); });
  const drawn = await page.inputValue(`${newItem} input.points`);
  log(`${NEW_ZONE} drawn as ${JSON.stringify(drawn)}`);
  assert.ok(near(parsePoints(drawn), NEW_ZONE_POINTS),
    `clicked ${JSON.stringify(NEW_ZONE_POINTS)} on the canvas, the editor has ${drawn}: the overlay does not map to the image`);
  check(/^\d\.\d{3},\d\.\d{3}( \d\.\d{3},\d\.\d{3})*$/.test(drawn.trim()), `.points is not "x,y x,y" with 3 decimals: ${drawn}`);
  await page.click('#save-geometry');
  await page.waitForFunction(() => /Saved and applied/.test(document.getElementById('editor-status')?.textContent ?? ''), null, { timeout: 15_000 })
    .catch(async () => {
      throw new Error(`#editor-status never said "Saved and applied" (status ${JSON.stringify(await text(page, '#editor-status'))}, errors ${JSON.stringify(await text(page, '#editor-errors'))})`);
    });
  log(`#editor-status: ${JSON.stringify(await text(page, '#editor-status'))}`);
  check(((await text(page, '#editor-errors')) ?? '') === '' || !(await visible(page, '#editor-errors')),
    `#editor-errors still shows ${JSON.stringify(await text(page, '#editor-errors'))} after a good save`);
  check((await page.getAttribute('#editor-status', 'role')) === 'status', '#editor-status lacks role=status');
  await page.waitForSelector(`${newItem} input.points`, { timeout: 5_000 }).catch(() => {});
  await checkRenderedText(page, 'editor after the save');
  await shot(page, 'editor-drawn-zone');

  const saved = await inPage(page, 'GET', `/api/v1/cameras/${CAMERA}/geometry`);
  log(`geometry after: ${saved.text}`);
  const savedZone = saved.json.zones.find((z) => z.name === NEW_ZONE);
  assert.ok(savedZone, `GET geometry does not list ${NEW_ZONE}`);
  assert.ok(near(savedZone.polygon, NEW_ZONE_POINTS), `${NEW_ZONE} saved as ${JSON.stringify(savedZone.polygon)}`);
  assert.ok(saved.json.zones.some((z) => z.name === 'path'), 'the save lost zone path');
  assert.equal(saved.json.lines.length, geometry.json.lines.length, 'the save lost a line');
  assert.ok(!saved.text.includes(BAD_ZONE), 'the broken zone was saved after all');
  // Applied without a restart, counts kept.
  let occAfter = null;
  const listed = await (async () => {
    for (let i = 0; i < 20; i += 1) {
      occAfter = (await inPage(page, 'GET', '/api/v1/occupancy')).json;
      if (occAfter.zones.some((z) => z.zone === `${CAMERA}.${NEW_ZONE}`)) return true;
      await sleep(500);
    }
    return false;
  })();
  assert.ok(listed, `GET /api/v1/occupancy does not list ${CAMERA}.${NEW_ZONE} after the save: ${JSON.stringify(occAfter)}`);
  const pathBefore = occBefore.zones.find((z) => z.zone === `${CAMERA}.path`);
  const pathAfter = occAfter.zones.find((z) => z.zone === `${CAMERA}.path`);
  log(`${CAMERA}.path occupancy before the save ${JSON.stringify(pathBefore)}, after ${JSON.stringify(pathAfter)}`);
  assert.ok(pathAfter, `${CAMERA}.path is gone from /api/v1/occupancy`);
  if (pathBefore && pathBefore.occupancy !== null) {
    check(pathAfter.occupancy !== null, `${CAMERA}.path's occupancy was reset by the save (${pathBefore.occupancy} -> null)`);
  }
  for (const line of lineKeys) {
    const f = await inPage(page, 'GET', `/api/v1/flow?line=${encodeURIComponent(line)}&from=${encodeURIComponent(dash.json.today_start)}&bucket=1h`);
    log(`flow ${line}: before the save ${JSON.stringify(flowBefore[line])}, after ${JSON.stringify({ entries: f.json?.entries, exits: f.json?.exits })}`);
    assert.equal(f.status, 200, `GET flow for ${line} after the save answered ${f.status}: ${f.text}`);
    if (flowBefore[line]) {
      assert.ok(f.json.entries >= flowBefore[line].entries && f.json.exits >= flowBefore[line].exits,
        `line ${line}'s counts went down with the save`);
    }
  }
  const cardShown = await page.waitForSelector(`#occupancy [data-kind="zone"][data-key="${CAMERA}.${NEW_ZONE}"]`, { timeout: 15_000 })
    .then(() => true, () => false);
  check(cardShown, `the dashboard shows no card for the new zone ${CAMERA}.${NEW_ZONE} within 15 s`);

  return { fcp, firstNumberMs, matched, readings, snapshotLoaded, reconnectingAfter };
}

// ------------------------------------------------------------- the checks
function checkResponses() {
  step('a', `every response (${responses.length}) checked for image data`);
  const snapshotRoute = /^\/api\/v1\/cameras\/[^/]+\/snapshot$/;
  const offenders = [];
  let snapshots = 0;
  for (const r of responses) {
    const image = r.contentType.toLowerCase().startsWith('image/') || r.kind !== null || r.dataImage;
    if (!image) continue;
    const allowed = r.method === 'GET' && snapshotRoute.test(pathOf(r.url)) && !r.dataImage;
    if (allowed) snapshots += 1;
    else offenders.push(`${r.method} ${r.url} (${r.status}, ${r.contentType}, magic ${r.kind}, data:image ${r.dataImage})`);
  }
  const unread = responses.filter((r) => !r.sse && r.bodyError);
  for (const r of unread) log(`(body unavailable: ${r.method} ${r.url} ${r.status} ${r.contentType}: ${r.bodyError})`);
  const sse = responses.filter((r) => r.sse);
  log(`${snapshots} snapshot response(s) with image data; ${sse.length} SSE stream(s) noted, not captured: ${sse.map((r) => r.url).join(', ')}`);
  assert.deepEqual(offenders, [], `image data outside GET /api/v1/cameras/<camera>/snapshot:\n  ${offenders.join('\n  ')}`);
  // An unreadable body of an image type is unchecked image data.
  const unreadImages = unread.filter((r) => r.contentType.toLowerCase().startsWith('image/') && !snapshotRoute.test(pathOf(r.url)));
  assert.deepEqual(unreadImages.map((r) => r.url), [], 'image responses whose bodies could not be checked');
  const foreign = requests.filter((r) => !r.url.startsWith('data:') && new URL(r.url).origin !== ORIGIN);
  check(foreign.length === 0, `requests to other origins: ${foreign.map((r) => r.url).join(', ')}`);
  return snapshots;
}

function printFigures(result) {
  const initial = responses.filter((r) => r.phase === 'initial' && !r.sse && !r.probe);
  const sizeOf = (p) => initial.filter((r) => pathOf(r.url) === p).reduce((s, r) => s + (r.bytes ?? 0), 0);
  const documentBytes = sizeOf('/');
  const jsBytes = sizeOf('/ui/app.js');
  const cssBytes = sizeOf('/ui/app.css');
  const initialTotal = initial.reduce((s, r) => s + (r.bytes ?? 0), 0);
  const loginPhase = responses.filter((r) => r.phase === 'login' && !r.sse && !r.probe);
  const loginTotal = loginPhase.reduce((s, r) => s + (r.bytes ?? 0), 0);
  check(jsBytes > 0 && cssBytes > 0 && documentBytes > 0, `document ${documentBytes}, app.js ${jsBytes}, app.css ${cssBytes} bytes: one was not loaded`);
  console.log('');
  figure('page weight (document + app.js + app.css)', `${documentBytes + jsBytes + cssBytes} bytes (document ${documentBytes}, app.js ${jsBytes}, app.css ${cssBytes})`);
  figure('initial load, all responses (login page, SSE excluded)', `${initialTotal} bytes in ${initial.length} responses`);
  figure('from login to the first occupancy number, all responses (SSE excluded)', `${loginTotal} bytes in ${loginPhase.length} responses`);
  figure('first contentful paint', result.fcp ? `${result.fcp.t.toFixed(0)} ms` : 'n/a');
  figure('first occupancy number after login', `${result.firstNumberMs} ms`);
  figure('occupancy readings equal to the API', `${result.matched} of ${result.readings}`);
  figure('"reconnecting" shown after the camera server was killed', `${result.reconnectingAfter} ms`);
}

const watchdog = setTimeout(() => {
  console.error(`${stamp()} FAIL: the browser test ran over ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS);

const consoleLines = [];
const pageErrors = [];
let browser;
let code = 0;
try {
  log(`chromium ${CHROMIUM}, appliance ${BASE}, artifacts ${ARTIFACTS}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  log(`browser ${browser.version()}`);
  const result = await main(browser, consoleLines, pageErrors);
  await Promise.race([Promise.all(responses.map((r) => r.done)), sleep(10_000)]);
  checkResponses();
  const cspViolations = consoleLines.filter((l) => /Content Security Policy|Refused to (load|execute|apply|connect)/i.test(l));
  check(cspViolations.length === 0, `CSP violations in the console:\n  ${cspViolations.join('\n  ')}`);
  check(pageErrors.length === 0, `uncaught errors in the page:\n  ${pageErrors.join('\n  ')}`);
  printFigures(result);
  if (soft.length > 0) {
    console.log(`\n${stamp()} FAIL: ${soft.length} check(s) failed:\n  - ${soft.join('\n  - ')}`);
    code = 1;
  } else {
    console.log(`\n${stamp()} PASS: every step and check of the dashboard passed`);
  }
} catch (e) {
  console.log(`\n${stamp()} FAIL: ${e.stack || e}`);
  if (soft.length > 0) console.log(`also failed before that:\n  - ${soft.join('\n  - ')}`);
  if (globalThis.__page) await dumpFailure(globalThis.__page);
  if (consoleLines.length) console.log(`--- browser console ---\n  ${consoleLines.slice(-30).join('\n  ')}`);
  code = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
process.exit(code);
