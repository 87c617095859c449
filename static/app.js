'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const list = $('messages'), form = $('composer'), nameEl = $('name'), textEl = $('text'),
    notifyEl = $('notify'), statusEl = $('status'), errorEl = $('error'), statsEl = $('stats'),
    jumpEl = $('jump'), dialog = $('token-dialog'), tokenEl = $('token');
  const MAX_ROWS = 500;
  let es = null, lastId = 0, retryMs = 1000, retryTimer = 0, errorTimer = 0,
    statsOff = false;

  // localStorage throws in some privacy modes; the chat must still work.
  const store = {
    get: (k) => { try { return localStorage.getItem(k); } catch { return null; } },
    set: (k, v) => { try { localStorage.setItem(k, v); } catch { /* ignore */ } },
    del: (k) => { try { localStorage.removeItem(k); } catch { /* ignore */ } },
  };

  let room = new URLSearchParams(location.search).get('room');
  if (room !== null && !/^[A-Za-z0-9._-]{1,64}$/.test(room)) {
    showError('Invalid room name "' + room + '"; using the lobby instead.');
    room = null;
  }
  const roomLabel = '#' + (room || 'lobby');
  $('room').textContent = roomLabel;
  document.title = roomLabel + ' · SSE Chat';
  textEl.placeholder = 'Message ' + roomLabel;

  nameEl.value = store.get('sse-name') || 'guest-' + Math.floor(1000 + Math.random() * 9000);
  store.set('sse-name', nameEl.value);
  nameEl.addEventListener('change', () => store.set('sse-name', nameEl.value.trim()));
  const userName = () => nameEl.value.trim() || 'anonymous';

  // A private room's token (subscribe), kept per room. EventSource cannot send headers,
  // so it goes in ?token= (the server never logs it).
  const subKey = 'sse-room-token:' + (room || 'default');
  let subToken = store.get(subKey) || '';

  function query(extra) {
    const q = new URLSearchParams(extra);
    if (room) q.set('room', room);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---- rendering
  const pad = (n) => String(n).padStart(2, '0');
  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 48;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function append(row) {
    const stick = atBottom();
    list.appendChild(row);
    while (list.children.length > MAX_ROWS) list.firstElementChild.remove();
    if (stick) list.scrollTop = list.scrollHeight;
    else jumpEl.hidden = false;
  }

  // Anything that is not {text: string, ...} is shown verbatim as the JSON that was posted.
  function parse(data) {
    let v;
    try { v = JSON.parse(data); } catch { v = undefined; }
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof v.text === 'string') {
      return { user: typeof v.user === 'string' && v.user ? v.user : 'anonymous', text: v.text,
        time: v.time, raw: false };
    }
    return { user: '(raw)', text: data, time: undefined, raw: true };
  }

  function render(data, id, kind) {
    const m = parse(data);
    let d = new Date(typeof m.time === 'number' ? m.time : NaN);
    if (isNaN(d)) d = new Date();
    const row = el('li', 'msg' + (kind === 'notification' ? ' notification' : ''));
    if (!m.raw && m.user === userName()) row.classList.add('own');
    if (id !== undefined) row.dataset.id = id;
    const meta = el('div', 'msg-meta');
    if (kind === 'notification') meta.append(el('span', 'msg-label', 'Notification'));
    meta.append(el('span', 'msg-user', m.user));
    const t = el('time', 'msg-time', pad(d.getHours()) + ':' + pad(d.getMinutes()));
    t.dateTime = d.toISOString();
    t.title = d.toLocaleString();
    meta.append(t);
    row.append(meta, el('div', 'msg-text' + (m.raw ? ' raw' : ''), m.text));
    append(row);
  }

  list.addEventListener('scroll', () => { if (atBottom()) jumpEl.hidden = true; }, { passive: true });
  jumpEl.addEventListener('click', () => {
    list.scrollTop = list.scrollHeight;
    jumpEl.hidden = true;
  });

  // ---- stream
  function setStatus(state) {
    statusEl.dataset.state = state;
    statusEl.textContent = state;
  }

  function onEvent(e) {
    const id = /^\d+$/.test(e.lastEventId) ? Number(e.lastEventId) : undefined;
    // The server replays after a reconnect; never show an id twice.
    if (id !== undefined) {
      if (id <= lastId) return;
      lastId = id;
    }
    render(e.data, id, e.type);
  }

  function onReset(e) {
    const oldest = Number(e.data);
    // A normal gap has oldest > lastId + 1; oldest <= lastId means the ids restarted
    // (server restart), so forget the old high-water mark or nothing new would show.
    if (Number.isFinite(oldest) && oldest <= lastId) lastId = Math.max(0, oldest - 1);
    const last = list.lastElementChild;
    if (last && last.classList.contains('reset')) return;
    append(el('li', 'notice reset', 'some earlier messages are no longer available'));
  }

  // resume: continue after the last message shown (a new token for the same stream),
  // else start with the recent history.
  function connect(resume) {
    clearTimeout(retryTimer);
    const params = resume && lastId ? { lastEventId: lastId } : { history: 50 };
    if (subToken) params.token = subToken;
    es = new EventSource('messages' + query(params));
    // Counted once our own stream is open, so the footer includes this tab.
    es.onopen = () => { retryMs = 1000; setStatus('connected'); refreshStats(); };
    es.onerror = () => {
      setStatus('reconnecting');
      // CONNECTING: the browser retries by itself. CLOSED (e.g. a non-200 answer): it gave up.
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        checkAccess();
      }
    };
    es.addEventListener('message', onEvent);
    es.addEventListener('notification', onEvent);
    es.addEventListener('reset', onReset);
    // The server ends the stream when its token expires; closing first keeps the
    // browser from retrying with the expired token.
    es.addEventListener('token-expired', () => {
      es.close();
      renewToken('Your token for this room expired: paste a new one to keep reading.');
    });
  }

  // After a refused stream: a HEAD request tells a private room (401/403) from a
  // server that is down or busy (retried with back-off).
  async function checkAccess() {
    let status = 0;
    try {
      const res = await fetch('messages' + query(subToken ? { token: subToken } : {}), { method: 'HEAD' });
      status = res.status;
    } catch { /* unreachable: retried below */ }
    if (status === 401 || status === 403) {
      renewToken(status === 403 ? 'The saved token does not cover ' + roomLabel + '.'
        : subToken ? 'The saved token was refused (expired?).'
          : roomLabel + ' is a private room: it needs a token.');
      return;
    }
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  async function renewToken(msg) {
    setStatus('locked');
    const t = await askToken(msg, 'Room token required', 'Save and connect');
    if (!t) {
      showError(roomLabel + ' is private: reload the page to enter a token.');
      return;
    }
    subToken = t;
    store.set(subKey, t);
    setStatus('connecting');
    connect(true);
  }

  // ---- posting
  function showError(msg) {
    errorEl.textContent = msg;
    clearTimeout(errorTimer);
    if (msg) errorTimer = setTimeout(() => { errorEl.textContent = ''; }, 8000);
  }

  async function errorOf(res) {
    try {
      const j = await res.json();
      if (j && typeof j.error === 'string') return j.error;
    } catch { /* not JSON */ }
    return res.statusText || 'HTTP ' + res.status;
  }

  let tokenAsk = null;
  function askToken(msg, title = 'Publish token required', action = 'Save and send') {
    // Several posts can hit 401 at once; they share one prompt.
    if (!tokenAsk) {
      tokenAsk = new Promise((resolve) => {
        $('token-title').textContent = title;
        $('token-ok').textContent = action;
        $('token-msg').textContent = msg;
        tokenEl.value = '';
        dialog.returnValue = '';
        dialog.addEventListener('close', () => {
          tokenAsk = null;
          resolve(dialog.returnValue === 'ok' ? tokenEl.value.trim() : '');
          textEl.focus();
        }, { once: true });
        dialog.showModal();
      });
    }
    return tokenAsk;
  }

  async function post(body, params, retried) {
    const headers = { 'Content-Type': 'application/json' };
    // A room token may also allow publishing: it is tried when no publish token is saved.
    const token = store.get('sse-token') || subToken;
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch('message' + query(params), { method: 'POST', headers, body });
    } catch {
      showError('Not sent: cannot reach the server.');
      return false;
    }
    if (res.status === 401) {
      const why = await errorOf(res);
      if (retried) {
        store.del('sse-token');
        showError('Not sent: ' + why);
        return false;
      }
      const t = await askToken((token ? 'The saved token was refused: ' : 'The server says: ') + why);
      if (!t) {
        showError('Not sent: a publish token is required.');
        return false;
      }
      store.set('sse-token', t);
      return post(body, params, true);
    }
    if (!res.ok) {
      showError('Not sent: ' + (await errorOf(res)) + ' (' + res.status + ')');
      return false;
    }
    showError('');
    try {
      const j = await res.json();
      if (typeof j.clients === 'number') showCount(j.clients);
    } catch { /* body is informational only */ }
    return true;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = textEl.value.trim();
    textEl.focus();
    if (!text) return;
    store.set('sse-name', userName());
    const notify = notifyEl.checked;
    textEl.value = '';
    notifyEl.checked = false;
    const body = JSON.stringify({ user: userName(), text, time: Date.now() });
    const ok = await post(body, notify ? { event: 'notification' } : {});
    // Give the text back so a failed message is not lost, unless the user typed on.
    if (!ok && !textEl.value) {
      textEl.value = text;
      notifyEl.checked = notify;
    }
  });

  // ---- optional /stats
  function showCount(n) { statsEl.textContent = n + ' connected'; }
  // One refresh; false once the server says it has no /stats.
  async function refreshStats() {
    if (statsOff) return false;
    try {
      const res = await fetch('stats' + query({}), { cache: 'no-store' });
      if (res.status === 404) { statsOff = true; return false; }
      if (res.ok) {
        const s = await res.json();
        const n = [s.clients, s.connected, s.subscribers, s.connections]
          .find((v) => typeof v === 'number');
        if (n !== undefined) showCount(n);
      }
    } catch { /* optional */ }
    return true;
  }
  async function stats() {
    if (await refreshStats()) setTimeout(stats, 20000);
  }

  connect();
  stats();
  if (matchMedia('(pointer: fine)').matches) textEl.focus();
})();
