// The dashboard: reads the server's own stats stream (GET /stats?stream=1,
// one JSON snapshot a second), shows the counts as numbers and the rates as
// five-minute charts drawn on canvases. No library, nothing fetched from
// anywhere but this server.
'use strict';

(function () {
  const WINDOW = 300; // samples kept per chart: five minutes at one a second
  const series = {}; // name -> array of numbers (null: no sample)
  let prev = null; // the previous snapshot, for rates

  // A token given as ?token= is used for the stream, then taken out of the
  // address bar (the server also set it as a cookie, when it could).
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token !== null) {
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }

  const $ = (sel) => document.querySelector(sel);

  function fmtCount(v) {
    return Math.round(v).toLocaleString('en-US');
  }

  function fmtRate(v) {
    if (v >= 100) return fmtCount(v);
    return v.toFixed(v >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';
  }

  function fmtBytes(v) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtDuration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }

  // Sets every element showing `field`: its text, and the raw number in
  // data-value (what the tests compare with /stats).
  function show(field, value, format) {
    for (const el of document.querySelectorAll('[data-field="' + field + '"]')) {
      el.dataset.value = String(value);
      const unit = el.dataset.unit;
      el.textContent = format ? format(value) : unit === 'bytes' ? fmtBytes(value) : fmtCount(value);
    }
  }

  function push(name, value) {
    const s = series[name] || (series[name] = []);
    s.push(value);
    if (s.length > WINDOW) s.shift();
  }

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // One chart: the series as a filled line, newest at the right, the
  // largest value of the window as the scale.
  function draw(canvas) {
    const data = series[canvas.dataset.series] || [];
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const top = 14, bottom = h - 2;
    let max = 0;
    for (const v of data) if (v !== null && v > max) max = v;
    const scale = max > 0 ? max * 1.1 : 1;
    const label = canvas.dataset.unit === 'bytes' ? fmtBytes(max) + '/s' : fmtRate(max);
    // A young series is spread over at least a minute rather than squeezed
    // into the right edge of five.
    const span = Math.min(WINDOW, Math.max(60, data.length));

    g.strokeStyle = color('--line');
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, bottom + 0.5);
    g.lineTo(w, bottom + 0.5);
    g.stroke();
    g.fillStyle = color('--muted');
    g.font = '11px system-ui, sans-serif';
    g.textAlign = 'left';
    g.fillText('max ' + label, 4, 11);
    g.textAlign = 'right';
    g.fillText(span >= WINDOW ? '5 min' : span > 60 ? Math.round(span / 60 * 10) / 10 + ' min' : '1 min', w - 4, 11);

    const step = w / (span - 1);
    const x0 = w - (data.length - 1) * step;
    const y = (v) => bottom - (v / scale) * (bottom - top);
    let started = false;
    g.beginPath();
    data.forEach((v, i) => {
      if (v === null) return;
      const px = x0 + i * step;
      if (!started) { g.moveTo(px, y(v)); started = true; } else g.lineTo(px, y(v));
    });
    if (!started) return;
    g.strokeStyle = color('--accent');
    g.lineWidth = 1.5;
    g.stroke();
    const firstIdx = data.findIndex((v) => v !== null);
    g.lineTo(x0 + (data.length - 1) * step, bottom);
    g.lineTo(x0 + firstIdx * step, bottom);
    g.closePath();
    g.fillStyle = color('--accent-fill');
    g.fill();
  }

  function drawAll() {
    for (const c of document.querySelectorAll('canvas[data-series]')) draw(c);
  }

  function rate(s, key) {
    if (!prev) return null;
    const dt = s.uptime_seconds - prev.uptime_seconds;
    const d = s[key] - prev[key];
    return dt > 0 && d >= 0 ? d / dt : null;
  }

  function showRooms(s) {
    // The busiest by messages/s first, then the biggest by subscribers.
    const rows = [];
    const seen = new Set();
    for (const r of (s.busy_rooms || []).concat(s.top_rooms || [])) {
      if (seen.has(r.name)) continue;
      seen.add(r.name);
      rows.push(r);
    }
    const body = $('#rooms');
    body.textContent = '';
    if (!rows.length) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 4;
      td.className = 'empty';
      td.textContent = 'no rooms yet';
      return;
    }
    for (const r of rows.slice(0, 10)) {
      const tr = body.insertRow();
      tr.dataset.room = r.name;
      const cells = [r.name, fmtCount(r.subscribers),
        r.messages_per_second !== undefined ? fmtRate(r.messages_per_second) : '0',
        fmtCount(r.published || 0)];
      cells.forEach((text, i) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (i) td.className = 'n';
      });
    }
  }

  function showJournal(j) {
    const el = $('#journal');
    if (!j || !j.enabled) {
      el.textContent = 'off: messages are kept in memory only (no --data-dir)';
      el.dataset.state = 'off';
      return;
    }
    el.dataset.state = j.errors ? 'errors' : 'ok';
    el.textContent = 'on, fsync ' + j.fsync + ' · ' + fmtCount(j.syncs) + ' syncs · ' +
      fmtCount(j.errors) + ' errors';
  }

  // A cluster node says whether Redis is reachable: without it, publishing
  // answers 503 and the node is behind the others.
  function showRedis(r) {
    const el = $('#redis');
    if (!r || !r.enabled) {
      el.textContent = 'off: one node (no --redis)';
      el.dataset.state = 'off';
    } else if (r.up) {
      el.textContent = 'Redis reachable: publishing and following rooms';
      el.dataset.state = 'ok';
    } else {
      el.textContent = 'Redis unreachable: POST /message answers 503, streams wait';
      el.dataset.state = 'errors';
    }
  }

  // How the connections are spread over the event loops, for servers that
  // report it: one line per loop.
  function showThreads(s) {
    const list = Array.isArray(s.per_thread) ? s.per_thread : null;
    $('#threads-panel').hidden = !list;
    if (!list) return;
    const el = $('#threads');
    el.dataset.threads = String(list.length);
    el.textContent = list.map((t, i) => 'loop ' + i + ': ' + fmtCount(t.connections) +
      ' connections, ' + fmtCount(t.streams) + ' streams' +
      (typeof t.loop_lag_ms === 'number' ? ', lag ' + t.loop_lag_ms.toFixed(1) + ' ms' : ''))
      .join(' · ');
  }

  function update(s) {
    $('#version').textContent = s.version;
    $('#uptime').textContent = fmtDuration(s.uptime_seconds);
    for (const f of ['connections', 'max_clients', 'subscribers', 'streams', 'rooms',
      'messages_published', 'deliveries', 'slow_subscribers_dropped', 'connections_rejected',
      'ring_memory_bytes', 'max_memory', 'ring_frames']) {
      if (typeof s[f] === 'number') show(f, s[f]);
    }
    const rates = {
      messages_per_second: rate(s, 'messages_published'),
      deliveries_per_second: rate(s, 'deliveries'),
      bytes_per_second: rate(s, 'bytes_sent'),
    };
    for (const [k, v] of Object.entries(rates)) {
      push(k, v);
      if (v !== null) show(k, v, k === 'bytes_per_second' ? (b) => fmtBytes(b) + '/s' : fmtRate);
    }
    push('subscribers', s.subscribers);
    show('subscribers_now', s.subscribers);

    // Loop lag is shown by servers that measure it.
    const hasLag = typeof s.loop_lag_ms === 'number';
    $('#lag-card').hidden = !hasLag;
    $('#lag-chart').hidden = !hasLag;
    if (hasLag) {
      push('loop_lag_ms', s.loop_lag_ms);
      show('loop_lag_ms', s.loop_lag_ms, fmtRate);
      show('loop_lag_now', s.loop_lag_ms, fmtRate);
    }

    const pct = s.max_memory ? (100 * s.ring_memory_bytes) / s.max_memory : 0;
    const bar = $('#mem-bar');
    bar.style.width = Math.min(100, pct).toFixed(1) + '%';
    bar.classList.toggle('high', pct >= 80);
    $('#mem-pct').textContent = pct.toFixed(pct < 10 ? 1 : 0) + '%';

    showJournal(s.journal);
    showRedis(s.redis);
    showThreads(s);
    showRooms(s);
    prev = s;
    document.body.dataset.snapshots = String((Number(document.body.dataset.snapshots) || 0) + 1);
    drawAll();
  }

  function setStatus(state, text) {
    const el = $('#status');
    el.dataset.state = state;
    el.textContent = text;
  }

  function connect() {
    const url = 'stats?stream=1' + (token !== null ? '&token=' + encodeURIComponent(token) : '');
    const es = new EventSource(url);
    es.onopen = () => setStatus('live', 'live');
    es.onmessage = (ev) => {
      let s;
      try {
        s = JSON.parse(ev.data);
      } catch (e) {
        setStatus('down', 'bad data');
        return;
      }
      setStatus('live', 'live');
      update(s);
    };
    es.onerror = () => {
      // EventSource reconnects by itself unless the server refused it.
      setStatus(es.readyState === EventSource.CLOSED ? 'down' : 'connecting',
        es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting');
      prev = null; // a gap: no rate across it
    };
  }

  window.addEventListener('resize', drawAll);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', drawAll);
  connect();
})();
