// End-to-end tests of the chat page (static/index.html + static/app.js) against
// the real sse-server binary, in headless Debian Chromium driven by playwright-core.
//
//   node --test tests/e2e/          (tests/e2e/run.sh installs what is missing first)
//
// Environment: SSE_SERVER (binary, default <repo>/sse-server), SSE_STATIC (default
// <repo>/static), CHROMIUM_PATH (default /usr/bin/chromium). Screenshots: tests/e2e/out/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SERVER_BIN = process.env.SSE_SERVER || path.join(REPO, 'sse-server');
const STATIC_DIR = process.env.SSE_STATIC || path.join(REPO, 'static');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const OUT = path.join(HERE, 'out');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

// Bounds for every wait (the CI machine has 2 cores; keep them generous).
const T_START = 10_000; // server start line
const T_STOP = 5_000; // server exit after SIGTERM
const T_CONNECT = 15_000; // page reaches "connected"
const T_MESSAGE = 15_000; // a message shows up in a page
const T_ACTION = 10_000; // a single Playwright action

const uid = () => randomBytes(4).toString('hex');

// ------------------------------------------------------------------ servers
const running = new Set(); // child processes still alive, killed by PID on any exit

function killAll(signal) {
  for (const p of running) {
    try { process.kill(p.pid, signal); } catch { /* already gone */ }
  }
}
process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAll('SIGKILL'); process.exit(1); });
}

// Starts the binary; resolves with {proc, pid, port, url, log()} once it prints its start line.
function startServer({ port = 0, extra = [] } = {}) {
  return new Promise((resolve, reject) => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--static', STATIC_DIR, ...extra];
    const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise((res) => {
      proc.once('exit', (code, signal) => { running.delete(proc); res({ code, signal }); });
    });
    running.add(proc);
    const srv = { proc, pid: proc.pid, port: 0, url: '', exited, log: () => err.slice(-4000) };
    const finish = (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) reject(e); else resolve(srv);
    };
    const timer = setTimeout(() => {
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
      finish(new Error(`sse-server printed no start line within ${T_START} ms; stderr:\n${err}`));
    }, T_START);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /sse-server listening on (http:\/\/\S+):(\d+)/.exec(out);
      if (m && !settled) {
        srv.port = Number(m[2]);
        srv.url = `http://127.0.0.1:${srv.port}`;
        finish();
      }
    });
    // Always drain stderr (a full pipe would block the server); keep the tail for reports.
    proc.stderr.on('data', (d) => { err = (err + d).slice(-64_000); });
    proc.once('error', (e) => finish(new Error(`cannot start ${SERVER_BIN}: ${e.message}`)));
    exited.then(({ code, signal }) => finish(new Error(
      `sse-server exited (code ${code}, signal ${signal}) before listening; stderr:\n${err}`)));
  });
}

// The same port right after a stop: the old socket may linger briefly, so retry.
async function startServerOnPort(port, extra, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      return await startServer({ port, extra });
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw new Error(`could not restart on port ${port} within ${timeoutMs} ms: ${last && last.message}`);
}

// SIGTERM by PID; resolves with {code, signal}. SIGKILL (and an error) if it does not exit in time.
async function stopServer(srv) {
  if (!srv) return null;
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return srv.exited;
  try { process.kill(srv.pid, 'SIGTERM'); } catch { /* gone */ }
  const r = await Promise.race([srv.exited, sleep(T_STOP).then(() => null)]);
  if (r) return r;
  try { process.kill(srv.pid, 'SIGKILL'); } catch { /* gone */ }
  await srv.exited;
  throw new Error(`sse-server (pid ${srv.pid}) did not exit within ${T_STOP} ms of SIGTERM`);
}

async function postJson(baseUrl, body, query = '') {
  const res = await fetch(`${baseUrl}/message${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `POST /message${query} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

// ------------------------------------------------------------------ browser
let browser;
let server; // shared by tests 1, 2, 3 and 5; test 4 runs its own

before(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  const r = await stopServer(server);
  if (r) assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM should stop sse-server with exit 0');
});

async function shot(page, name) {
  if (!page || page.isClosed()) return;
  try {
    await page.screenshot({ path: path.join(OUT, `${name}.png`), timeout: T_ACTION });
  } catch (e) {
    console.error(`# screenshot ${name} failed: ${e.message}`);
  }
}

// What a page shows, for failure messages.
async function pageSummary(page) {
  try {
    return JSON.stringify(await page.evaluate(() => ({
      status: document.getElementById('status').dataset.state,
      error: document.getElementById('error').textContent,
      lastRows: [...document.querySelectorAll('#messages > li')].slice(-6)
        .map((li) => `[${li.className}${li.dataset.id ? ' #' + li.dataset.id : ''}] ${li.textContent}`),
    })), null, 1);
  } catch (e) {
    return `(page not readable: ${e.message})`;
  }
}

async function waitFor(page, what, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${page.label}: ${what} not within ${timeout} ms (${e.message.split('\n')[0]}); ` +
      `page shows: ${await pageSummary(page)}`);
  }
}

const statusOf = (page) => page.$eval('#status', (s) => s.dataset.state);

function waitState(page, state, timeout = T_CONNECT) {
  return waitFor(page, `#status[data-state=${state}]`,
    (s) => document.getElementById('status').dataset.state === s, state, timeout);
}

function waitForMessage(page, text, { notification = false, timeout = T_MESSAGE } = {}) {
  return waitFor(page, `${notification ? 'notification' : 'message'} ${JSON.stringify(text)}`,
    ([t, n]) => [...document.querySelectorAll('#messages li.msg')].some((li) =>
      li.querySelector('.msg-text')?.textContent === t && (!n || li.classList.contains('notification'))),
    [text, notification], timeout);
}

function rows(page) {
  return page.$$eval('#messages li.msg', (lis) => lis.map((li) => ({
    id: li.dataset.id,
    user: li.querySelector('.msg-user')?.textContent,
    text: li.querySelector('.msg-text')?.textContent,
    time: li.querySelector('.msg-time')?.textContent,
    datetime: li.querySelector('.msg-time')?.getAttribute('datetime'),
    notification: li.classList.contains('notification'),
    own: li.classList.contains('own'),
  })));
}

// A fresh browser context (own storage, own connection) with the chat open and connected.
async function openChat(t, baseUrl, { label, name, query = '', contextOptions = {}, failShot, countStreams = false }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, ...contextOptions });
  t.after(() => context.close().catch(() => {}));
  context.setDefaultTimeout(T_ACTION);
  if (countStreams) {
    // Diagnostics only: count the EventSource objects the page creates, to tell the
    // browser's own reconnection (Last-Event-ID) from the page's (a new EventSource).
    await context.addInitScript(() => {
      const Native = window.EventSource;
      window.__streams = [];
      window.EventSource = class extends Native {
        constructor(...args) { super(...args); window.__streams.push(String(args[0])); }
      };
    });
  }
  const page = await context.newPage();
  page.label = label;
  page.pageErrors = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.pageErrors.push(String(e)));
  page.on('dialog', (d) => { page.dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  try {
    await page.goto(`${baseUrl}/${query}`, { waitUntil: 'domcontentloaded', timeout: T_CONNECT });
    await waitState(page, 'connected');
    if (name !== undefined) await page.fill('#name', name);
  } catch (e) {
    await shot(page, failShot || `${label}-open-failed`);
    throw e;
  }
  return page;
}

async function send(page, text, { notify = false } = {}) {
  await page.fill('#text', text);
  if (notify) await page.check('#notify');
  await page.click('#send');
  // The page clears the field as it posts and gives the text back if the post fails.
  await waitFor(page, 'the text field to clear after Send',
    () => document.getElementById('text').value === '', null, T_ACTION);
}

function assertClean(page) {
  assert.deepEqual(page.pageErrors, [], `${page.label}: uncaught page errors`);
  assert.deepEqual(page.dialogs, [], `${page.label}: unexpected dialogs`);
}

function assertRecentTime(row, what) {
  assert.match(row.time, /^\d\d:\d\d$/, `${what}: .msg-time shows HH:MM`);
  const skew = Math.abs(Date.parse(row.datetime) - Date.now());
  assert.ok(skew < 120_000, `${what}: .msg-time datetime ${row.datetime} is not the send time`);
}

// ------------------------------------------------------------------ tests
test('1. a message sent in page A appears in page B and in A', { timeout: 60_000 }, async (t) => {
  const tag = uid();
  const alice = `alice-${tag}`, bob = `bob-${tag}`;
  const a = await openChat(t, server.url, { label: 'page A', name: alice, failShot: 'two-pages-sender' });
  const b = await openChat(t, server.url, { label: 'page B', name: bob, failShot: 'two-pages' });
  try {
    const hello = `hello from A ${tag}`;
    await send(a, hello);
    await waitForMessage(b, hello);
    await waitForMessage(a, hello);

    for (const [page, own] of [[b, false], [a, true]]) {
      const mine = (await rows(page)).filter((r) => r.text === hello);
      assert.equal(mine.length, 1, `${page.label}: the message is shown exactly once`);
      const [r] = mine;
      assert.equal(r.user, alice, `${page.label}: sender name`);
      assert.equal(r.notification, false, `${page.label}: a plain message is not a notification`);
      assert.equal(r.own, own, `${page.label}: own-message marking`);
      assert.match(r.id, /^\d+$/, `${page.label}: data-id is the server's numeric id`);
      assertRecentTime(r, page.label);
    }
    const [ra] = (await rows(a)).filter((r) => r.text === hello);
    const [rb] = (await rows(b)).filter((r) => r.text === hello);
    assert.equal(ra.id, rb.id, 'both pages show the same server id');

    // And back the other way.
    const reply = `reply from B ${tag}`;
    await send(b, reply);
    await waitForMessage(a, reply);
    const [back] = (await rows(a)).filter((r) => r.text === reply);
    assert.equal(back.user, bob, 'page A: reply sender name');
    assert.ok(BigInt(back.id) > BigInt(ra.id), 'ids increase');
    await waitForMessage(b, reply);
    assertClean(a);
    assertClean(b);
  } finally {
    await shot(b, 'two-pages');
    await shot(a, 'two-pages-sender');
  }
});

test('2. HTML in messages and names is shown as text, never run', { timeout: 60_000 }, async (t) => {
  const tag = uid();
  const evilName = '<img src=x onerror=window.__xss=3>'; // #name has maxlength=40
  // A room of its own: if markup did get through, its history must not break the other tests.
  const room = `xss-${tag}`;
  const query = `?room=${room}`;
  const a = await openChat(t, server.url, { label: 'page A', name: evilName, query, failShot: 'xss-sender' });
  const b = await openChat(t, server.url, { label: 'page B', name: `bob-${tag}`, query, failShot: 'xss' });
  try {
    const img = `<img src=x onerror="window.__xss=1"> ${tag}`;
    const script = `<script>window.__xss=2</script> ${tag}`;
    await send(a, img);
    await send(a, script);
    // A body that is not {text: ...} is shown verbatim as raw JSON: that path must be safe too.
    const rawBody = JSON.stringify(`<img src=x onerror="window.__xss=4"> raw ${tag}`);
    await postJson(server.url, rawBody, query);
    for (const page of [a, b]) {
      await waitForMessage(page, img);
      await waitForMessage(page, script);
      await waitForMessage(page, rawBody);
    }
    await sleep(500); // an injected <img> would fire onerror asynchronously
    for (const page of [a, b]) {
      const r = await rows(page);
      const shown = r.filter((x) => [img, script].includes(x.text));
      assert.equal(shown.length, 2, `${page.label}: both messages shown once each`);
      for (const x of shown) assert.equal(x.user, evilName, `${page.label}: name shown literally`);
      assert.equal(r.filter((x) => x.text === rawBody).length, 1, `${page.label}: raw body shown once`);
      const dom = await page.evaluate(() => ({
        xss: typeof window.__xss,
        imgs: document.querySelectorAll('#messages img').length,
        scripts: document.querySelectorAll('#messages script').length,
        allImgs: document.querySelectorAll('img').length,
      }));
      assert.deepEqual(dom, { xss: 'undefined', imgs: 0, scripts: 0, allImgs: 0 },
        `${page.label}: no markup from messages may reach the DOM`);
      assertClean(page);
    }
  } finally {
    await shot(b, 'xss');
    await shot(a, 'xss-sender');
  }
});

test('3. a notification appears in the other page as li.msg.notification', { timeout: 60_000 }, async (t) => {
  const tag = uid();
  const a = await openChat(t, server.url, { label: 'page A', name: `alice-${tag}`, failShot: 'notification-sender' });
  const b = await openChat(t, server.url, { label: 'page B', name: `bob-${tag}`, failShot: 'notification' });
  try {
    const note = `heads up ${tag}`;
    await send(a, note, { notify: true });
    assert.equal(await a.isChecked('#notify'), false, 'page A: Notify is unchecked again after sending');
    await waitForMessage(b, note, { notification: true });
    await waitForMessage(a, note, { notification: true });
    const [r] = (await rows(b)).filter((x) => x.text === note);
    assert.equal(r.user, `alice-${tag}`, 'page B: notification sender');
    const label = await b.$eval(`#messages li.msg.notification[data-id="${r.id}"] .msg-label`,
      (e) => e.textContent).catch(() => null);
    assert.equal(label, 'Notification', 'page B: the row is labelled as a notification');

    // The next message is an ordinary one again.
    const plain = `ordinary ${tag}`;
    await send(a, plain);
    await waitForMessage(b, plain);
    const [p] = (await rows(b)).filter((x) => x.text === plain);
    assert.equal(p.notification, false, 'page B: a message after a notification is a plain message');
    assertClean(a);
    assertClean(b);
  } finally {
    await shot(b, 'notification');
    await shot(a, 'notification-sender');
  }
});

test('4. after a server restart the page reconnects, catches up, shows nothing twice', { timeout: 90_000 }, async (t) => {
  const tag = uid();
  // A short reconnection hint so that the browser's retries while the server is down are
  // real (refused connections), without making the test slow.
  const extra = ['--retry-ms', '1000'];
  const s1 = await startServer({ extra });
  let s2 = null;
  t.after(async () => {
    await stopServer(s1).catch(() => {});
    await stopServer(s2).catch(() => {});
  });
  const b = await openChat(t, s1.url, { label: 'page B', name: `bob-${tag}`, failShot: 'restart', countStreams: true });
  try {
    const earlier = [`before restart 1 ${tag}`, `before restart 2 ${tag}`];
    for (const text of earlier) await postJson(s1.url, { user: `carol-${tag}`, text, time: Date.now() });
    for (const text of earlier) await waitForMessage(b, text);

    const exit = await stopServer(s1);
    assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM stops the server with exit 0');
    await waitState(b, 'reconnecting', 10_000);
    await shot(b, 'restart-down');
    await sleep(2500); // down for a while: at least one refused reconnection attempt
    assert.equal(await statusOf(b), 'reconnecting', 'page B: still reconnecting while the server is down');

    s2 = await startServerOnPort(s1.port, extra, 15_000);
    const meanwhile = [`after restart 1 ${tag}`, `after restart 2 ${tag}`];
    const stateAtPost = await statusOf(b);
    for (const text of meanwhile) await postJson(s2.url, { user: `carol-${tag}`, text, time: Date.now() });
    t.diagnostic(`page B was "${stateAtPost}" when the two messages were posted to the new server`);

    await waitState(b, 'connected', 20_000);
    for (const text of meanwhile) await waitForMessage(b, text, { timeout: 20_000 });

    // Live traffic works again, in both directions.
    const live = `live after restart ${tag}`;
    await send(b, live);
    await waitForMessage(b, live);

    const r = await rows(b);
    const expected = [...earlier, ...meanwhile, live];
    for (const text of expected) {
      assert.equal(r.filter((x) => x.text === text).length, 1, `page B: ${JSON.stringify(text)} shown exactly once`);
    }
    assert.deepEqual(r.map((x) => x.text), expected, 'page B: every message once, in order, nothing else');
    const ids = r.map((x) => x.id);
    assert.equal(new Set(ids).size, ids.length, `page B: no data-id twice (${ids.join(', ')})`);
    assert.ok(ids.every((id) => /^\d+$/.test(id)), 'page B: numeric ids');
    const notices = await b.$$eval('#messages li.notice.reset', (l) => l.length);
    t.diagnostic(`page B shows ${notices} reset notice(s) after the restart`);
    const streams = await b.evaluate(() => window.__streams.length);
    t.diagnostic(`page B created ${streams} EventSource object(s) (1: the browser resumed with ` +
      'Last-Event-ID; more: the page opened a new one with ?history=50)');
    assertClean(b);
  } finally {
    await shot(b, 'restart');
  }
});

test('5. phone viewport (390x844): renders, form visible, a message can be sent', { timeout: 60_000 }, async (t) => {
  const tag = uid();
  const p = await openChat(t, server.url, {
    label: 'phone',
    contextOptions: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
    failShot: 'phone',
  });
  try {
    const vw = 390, vh = 844;
    for (const sel of ['#status', '#messages', '#composer', '#name', '#text', '#notify', '#send']) {
      const box = await p.locator(sel).boundingBox();
      assert.ok(box && box.width > 0 && box.height > 0, `phone: ${sel} is rendered`);
      assert.ok(box.x >= -0.5 && box.y >= -0.5 && box.x + box.width <= vw + 0.5 && box.y + box.height <= vh + 0.5,
        `phone: ${sel} lies inside the 390x844 viewport (${JSON.stringify(box)})`);
    }
    for (const sel of ['#composer', '#text', '#send']) {
      assert.ok(await p.isVisible(sel), `phone: ${sel} is visible`);
    }
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `phone: no horizontal scrolling (page is ${overflow}px too wide)`);

    await p.tap('#name');
    await p.fill('#name', `phone-${tag}`);
    await p.tap('#text');
    await p.fill('#text', `from a phone ${tag}`);
    await p.tap('#send');
    await waitForMessage(p, `from a phone ${tag}`);
    const [r] = (await rows(p)).filter((x) => x.text === `from a phone ${tag}`);
    assert.equal(r.user, `phone-${tag}`, 'phone: sender name');
    assert.equal(await p.inputValue('#text'), '', 'phone: the text field is cleared after sending');

    // The new message is scrolled into view, above the composer.
    const row = await p.locator(`#messages li.msg[data-id="${r.id}"]`).boundingBox();
    const form = await p.locator('#composer').boundingBox();
    assert.ok(row && row.y >= 0 && row.y + row.height <= form.y + 1,
      `phone: the new message is visible above the form (row ${JSON.stringify(row)}, form ${JSON.stringify(form)})`);
    assertClean(p);
  } finally {
    await shot(p, 'phone');
  }
});

// A token from `sse-server token` for the key file `keys`.
function mintToken(keys, ...args) {
  return execFileSync(SERVER_BIN, ['token', '--key-file', keys, ...args], { encoding: 'utf8' }).trim();
}

function dialogOpen(page) {
  return page.$eval('#token-dialog', (d) => d.open);
}

function waitDialog(page, timeout = T_CONNECT) {
  return waitFor(page, 'the token dialog', () => document.getElementById('token-dialog').open, null, timeout);
}

async function enterToken(page, token) {
  await page.fill('#token', token);
  await page.click('#token-ok');
}

async function postWithToken(baseUrl, room, token, text) {
  const res = await fetch(`${baseUrl}/message?room=${room}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ user: 'carol', text, time: Date.now() }),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 202, `POST to ${room} answered ${res.status}: ${await res.text()}`);
}

test('6. a private room asks for a token, connects with it, and renews it when it expires', { timeout: 90_000 }, async (t) => {
  const tag = uid();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sse-e2e-'));
  const keys = path.join(dir, 'keys');
  writeFileSync(keys, 'e2e-secret-' + tag + '\n');
  const s = await startServer({ extra: ['--jwt-key-file', keys, '--private-rooms', 'secret-*'] });
  t.after(async () => { await stopServer(s).catch(() => {}); rmSync(dir, { recursive: true, force: true }); });
  const room = `secret-${tag}`;
  const publisher = mintToken(keys, '--publish', room);

  const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  t.after(() => context.close().catch(() => {}));
  context.setDefaultTimeout(T_ACTION);
  const p = await context.newPage();
  p.label = 'private page';
  p.pageErrors = [];
  p.dialogs = [];
  p.on('pageerror', (e) => p.pageErrors.push(String(e)));
  try {
    // Without a token: no stream, a prompt instead, and nothing of the room shown.
    await postWithToken(s.url, room, publisher, `before ${tag}`);
    await p.goto(`${s.url}/?room=${room}`, { waitUntil: 'domcontentloaded', timeout: T_CONNECT });
    await waitDialog(p);
    assert.equal(await statusOf(p), 'locked', 'without a token the page is locked');
    assert.match(await p.textContent('#token-msg'), /private room/);
    assert.equal((await rows(p)).length, 0, 'nothing of the private room is shown without a token');
    await shot(p, 'private-locked');

    // A token for another room is refused (403) and asked again.
    await enterToken(p, mintToken(keys, '--subscribe', 'secret-other'));
    await waitDialog(p);
    assert.match(await p.textContent('#token-msg'), /does not cover/);

    // A short-lived token for this room: connected, history shown.
    await enterToken(p, mintToken(keys, '--subscribe', room, '--ttl', '4s'));
    await waitState(p, 'connected');
    await waitForMessage(p, `before ${tag}`);
    await postWithToken(s.url, room, publisher, `live ${tag}`);
    await waitForMessage(p, `live ${tag}`);

    // It expires: the page asks for a new one; what was published meanwhile is not lost.
    await waitDialog(p, 15_000);
    assert.match(await p.textContent('#token-msg'), /expired/);
    await postWithToken(s.url, room, publisher, `meanwhile ${tag}`);
    await enterToken(p, mintToken(keys, '--subscribe', room));
    await waitState(p, 'connected');
    await waitForMessage(p, `meanwhile ${tag}`);
    const texts = (await rows(p)).map((r) => r.text);
    assert.deepEqual(texts, [`before ${tag}`, `live ${tag}`, `meanwhile ${tag}`], 'every message once, in order');

    // The token is kept for the room: a reload connects without asking.
    await p.reload({ waitUntil: 'domcontentloaded' });
    await waitState(p, 'connected');
    assert.equal(await dialogOpen(p), false, 'no prompt with a saved token');
    await waitForMessage(p, `meanwhile ${tag}`);
    assert.deepEqual(p.pageErrors, [], 'no uncaught page errors');
  } finally {
    await shot(p, 'private-room');
  }
});
