// End-to-end test of the dashboard (GET /dashboard, built into the binary) against the
// real sse-server binary, in headless Debian Chromium driven by playwright-core: the page
// loads with the admin token, shows the stats stream's figures, follows subscribers and
// messages as they come and go (and agrees with /stats), raises no JavaScript error,
// requests nothing from anywhere else, and is screenshotted at desktop and phone size in
// the light and the dark scheme.
//
//   node --test tests/e2e/dashboard.test.mjs   (tests/e2e/run.sh installs what is missing)
//
// Environment: SSE_SERVER (binary, default <repo>/sse-server), CHROMIUM_PATH (default
// /usr/bin/chromium). Screenshots: tests/e2e/out/dashboard-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SERVER_BIN = process.env.SSE_SERVER || path.join(REPO, 'sse-server');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const OUT = path.join(HERE, 'out');
const TOKEN = 'e2e-admin-t0ken';
const ROOM = 'e2e-room';
const SUBS = 5;
const MESSAGES = 24;

const T_START = 10_000; // server start line
const T_STOP = 5_000; // exit after SIGTERM
const T_SHOW = 10_000; // a figure reaches the page (snapshots come once a second)

let server; // {proc, pid, port, url, exited, log()}
let browser;
let staticDir; // an empty --static: the page must not need it

// Starts the binary; resolves once it prints its start line.
function startServer(extra) {
  return new Promise((resolve, reject) => {
    const args = ['--port', '0', '--bind', '127.0.0.1', '--static', staticDir, ...extra];
    const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
    const timer = setTimeout(() => {
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`no start line within ${T_START} ms; stderr:\n${err}`));
    }, T_START);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => { err = (err + d).slice(-16_000); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({ proc, pid: proc.pid, port, url: `http://127.0.0.1:${port}`, exited, log: () => err });
      }
    });
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function stopServer(srv) {
  if (!srv || srv.proc.exitCode !== null || srv.proc.signalCode !== null) return srv && srv.exited;
  try { process.kill(srv.pid, 'SIGTERM'); } catch { /* gone */ }
  const r = await Promise.race([srv.exited, sleep(T_STOP).then(() => null)]);
  if (r) return r;
  try { process.kill(srv.pid, 'SIGKILL'); } catch { /* gone */ }
  await srv.exited;
  throw new Error(`sse-server (pid ${srv.pid}) did not exit within ${T_STOP} ms of SIGTERM`);
}
process.on('exit', () => { if (server) try { process.kill(server.pid, 'SIGKILL'); } catch { /* gone */ } });

async function stats() {
  const res = await fetch(`${server.url}/stats`, {
    headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 200);
  return res.json();
}

async function post(i) {
  const res = await fetch(`${server.url}/message?room=${ROOM}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ n: i }), signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 202, await res.text());
}

// A subscriber kept open until destroyed; resolves once its head arrived.
function subscribe() {
  return new Promise((resolve, reject) => {
    const req = http.get(`${server.url}/messages?room=${ROOM}`, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`subscribe: ${res.statusCode}`)); return; }
      res.on('data', () => {});
      res.on('error', () => {});
      resolve(req);
    });
    req.on('error', (e) => reject(e));
    req.setTimeout(T_SHOW, () => req.destroy(new Error('subscribe timed out')));
  });
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  staticDir = mkdtempSync(path.join(os.tmpdir(), 'dash-e2e-'));
  server = await startServer(['--admin-token', TOKEN]);
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  const r = await stopServer(server);
  if (r) assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM should stop sse-server with exit 0');
  if (staticDir) rmSync(staticDir, { recursive: true, force: true });
});

// The value a data-field element holds (NaN when it has none yet).
const fieldOf = (page, name) => page.$eval(`[data-field="${name}"]`, (el) => Number(el.dataset.value));

async function waitField(page, name, want, timeout = T_SHOW) {
  try {
    await page.waitForFunction(([n, w]) => {
      const el = document.querySelector(`[data-field="${n}"]`);
      return el && Number(el.dataset.value) === w;
    }, [name, want], { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${name} never showed ${want} (shows ${await fieldOf(page, name)}): ${e.message.split('\n')[0]}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `dashboard-${name}.png`), fullPage: true });
}

test('dashboard: live figures, agreement with /stats, schemes and sizes', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.host !== `127.0.0.1:${server.port}`) problems.push(`request elsewhere: ${r.url()}`);
  });
  const subs = [];
  try {
    const res = await page.goto(`${server.url}/dashboard?token=${TOKEN}`, { timeout: T_SHOW });
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'] || '', /default-src 'none'/);
    // The token leaves the address bar; the stream runs.
    assert.equal(new URL(page.url()).searchParams.get('token'), null);
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'live',
      null, { timeout: T_SHOW });
    await waitField(page, 'subscribers', 0);
    await waitField(page, 'messages_published', 0);
    assert.equal(await fieldOf(page, 'max_clients'), (await stats()).max_clients);
    assert.match(await page.$eval('#journal', (el) => el.textContent), /memory only/);
    assert.match(await page.$eval('#redis', (el) => el.textContent), /one node/);
    // The server reports its event loop's lag: the panel and its chart show it.
    assert.equal(typeof (await stats()).loop_lag_ms, 'number');
    await page.waitForFunction(() => !document.getElementById('lag-card').hidden, null, { timeout: T_SHOW });
    assert.equal(await page.$eval('#lag-chart', (el) => el.hidden), false);
    // A reload works from the cookie the first answer set.
    await page.reload({ timeout: T_SHOW });
    await page.waitForFunction(() => Number(document.body.dataset.snapshots) >= 1, null, { timeout: T_SHOW });

    // Subscribers come: the page follows.
    for (let i = 0; i < SUBS; i++) subs.push(await subscribe());
    await waitField(page, 'subscribers', SUBS);
    await waitField(page, 'rooms', 1);

    // Messages flow, at a changing pace, for a few seconds: a rate shows.
    let sawRate = false;
    for (let i = 0; i < MESSAGES; i++) {
      await post(i);
      await sleep(i < MESSAGES / 2 ? 120 : 250);
      if ((await fieldOf(page, 'messages_per_second')) > 0) sawRate = true;
    }
    await waitField(page, 'messages_published', MESSAGES);
    await waitField(page, 'deliveries', MESSAGES * SUBS);
    if (!sawRate) {
      await page.waitForFunction(() => Number(document.querySelector('[data-field="messages_per_second"]').dataset.value) > 0,
        null, { timeout: T_SHOW });
    }

    // The page agrees with /stats (the figures that stay put once traffic stops).
    await sleep(1200); // one more snapshot after the last change
    const s = await stats();
    for (const f of ['subscribers', 'rooms', 'messages_published', 'deliveries', 'ring_frames',
      'ring_memory_bytes', 'max_memory', 'slow_subscribers_dropped']) {
      assert.equal(await fieldOf(page, f), s[f], `${f}: page vs /stats`);
    }
    // The spread over the event loops: one line per loop, as /stats lists them.
    assert.equal(await page.$eval('#threads-panel', (el) => el.hidden), false);
    assert.equal(await page.$eval('#threads', (el) => Number(el.dataset.threads)), s.threads);
    assert.match(await page.$eval('#threads', (el) => el.textContent),
      new RegExp(`^loop 0: \\d+ connections, ${s.per_thread[0].streams} streams`));
    const row = await page.$eval(`#rooms tr[data-room="${ROOM}"]`, (tr) => [...tr.cells].map((c) => c.textContent));
    assert.equal(row[0], ROOM);
    assert.equal(row[1], String(SUBS));
    assert.equal(row[3], String(MESSAGES));

    // The messages chart has been drawn on.
    const inked = await page.$eval('canvas[data-series="messages_per_second"]', (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    assert.ok(inked > 200, `the messages/s chart has ${inked} painted pixels`);

    // Traffic again while the pictures are taken, so they show rates.
    let flowing = true;
    const flow = (async () => {
      for (let i = 0; flowing; i++) {
        await post(MESSAGES + i);
        await sleep(60 + (i % 20) * 15);
      }
    })();
    await sleep(3500);
    await shot(page, 'desktop-light');
    const lightBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    await sleep(300);
    const darkBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(darkBg, lightBg, 'the dark scheme changes the page');
    await shot(page, 'desktop-dark');

    // Phone size: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
    await shot(page, 'phone-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    await sleep(300);
    await shot(page, 'phone-light');

    flowing = false;
    await flow;

    // Subscribers go: the page follows down.
    for (const r of subs.splice(0)) r.destroy();
    await waitField(page, 'subscribers', 0);
    assert.deepEqual(problems, [], problems.join('\n'));
  } finally {
    for (const r of subs) r.destroy();
    await context.close();
  }
});

test('dashboard: without the token, the page and its stream are refused', async () => {
  const res = await fetch(`${server.url}/dashboard`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 401);
  await res.text();
  const st = await fetch(`${server.url}/stats?stream=1&token=wrong`, { signal: AbortSignal.timeout(5000) });
  assert.equal(st.status, 403);
  await st.text();
});

