// edgegate's status page: live from /api/events (Server-Sent Events), or by
// polling /api/status where the stream is unavailable. No build step, no
// library: each chart is one SVG polyline of the tag's last minutes.
'use strict';
(function () {
  const OPEN_TAGS = 50; // devices with at most this many tags start open
  const $ = (id) => document.getElementById(id);
  const devices = new Map(); // id → { view, tags: Map, series: Map, el, open, fetched }
  let status = null, offset = 0, windowMs = 300000, stepMs = 2000;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }
  const svgEl = (tag) => document.createElementNS('http://www.w3.org/2000/svg', tag);
  const now = () => Date.now() - offset; // the gateway's clock

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function bytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1048576).toFixed(1) + ' MiB';
  }
  function show(v) {
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Math.round(v * 1e4) / 1e4);
    if (v === null) return '–';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }
  const numeric = (v) => (typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : null);

  function badge(text, cls) {
    return el('span', { class: 'badge ' + cls }, text);
  }

  function renderGateway() {
    const g = status.gateway, b = status.broker;
    $('gw-id').textContent = g.id;
    document.title = 'edgegate ' + g.id;
    $('gw-version').textContent = g.version;
    $('gw-uptime').textContent = duration(now() - g.started_at);
    $('gw-health').replaceChildren(g.health.ok ? badge('healthy', 'ok') : badge('unhealthy', 'unhealthy'), g.health.ok ? '' : ' ' + (g.health.reason || ''));
    $('gw-broker').replaceChildren(b.connected ? badge('connected', 'connected') : badge('disconnected', 'error'), ' ' + b.url);
    $('gw-buffer').textContent = b.buffer.batches + ' batches, ' + bytes(b.buffer.bytes) + ' (' + b.buffer.mode + ')' + (b.buffer.dropped_batches ? ', ' + b.buffer.dropped_batches + ' dropped' : '');
    $('gw-oldest').textContent = b.buffer.oldest_ts === null ? 'none waiting' : duration(now() - b.buffer.oldest_ts) + ' old';
    $('gw-loop').textContent = g.event_loop_delay_p99_ms.toFixed(1) + ' ms';
    $('gw-rss').textContent = bytes(g.rss_bytes);
  }

  function card(id) {
    let d = devices.get(id);
    if (d) return d;
    const summary = el('summary');
    const body = el('div', { class: 'tags' });
    const details = el('details', { class: 'device', 'data-device': id }, summary, body);
    d = { view: null, tags: new Map(), series: new Map(), el: { details, summary, body, rows: new Map() }, open: null, fetched: false };
    details.addEventListener('toggle', () => {
      d.open = details.open;
      if (details.open) { loadHistory(id, d); renderTags(d); }
    });
    devices.set(id, d);
    $('devices').append(details);
    return d;
  }

  function renderDevice(d, changed) {
    const v = d.view, c = v.counters;
    const meta = el('span', { class: 'dev-meta' }, v.driver + ' · since ' + duration(now() - v.since) + ' · ' + v.readings_per_s + ' readings/s · ' + c.parse_errors + ' parse errors');
    d.el.summary.replaceChildren(el('span', { class: 'dev-name' }, v.id), badge(v.state, v.state), meta);
    if (v.error) d.el.summary.append(el('span', { class: 'dev-error' }, v.error));
    if (d.open === null) {
      d.open = d.tags.size <= OPEN_TAGS;
      d.el.details.open = d.open;
    }
    if (d.el.details.open) renderTags(d, changed);
  }

  /** changed: the tag names to redraw (all when not given) */
  function renderTags(d, changed) {
    if (d.tags.size === 0) {
      d.el.body.replaceChildren(el('p', { class: 'empty' }, 'no readings yet'));
      d.el.rows.clear();
      return;
    }
    let tbody = d.el.body.querySelector('tbody');
    if (!tbody) {
      tbody = el('tbody');
      const head = el('tr', {}, el('th', {}, 'tag'), el('th', {}, 'value'), el('th', { class: 'quality' }, 'quality'), el('th', {}, 'age'), el('th', {}, 'last ' + Math.round(windowMs / 60000) + ' min'));
      d.el.body.replaceChildren(el('table', {}, el('thead', {}, head), tbody));
      d.el.rows.clear();
    }
    for (const t of changed ? changed.map((n) => d.tags.get(n)) : d.tags.values()) {
      let row = d.el.rows.get(t.name);
      if (!row) {
        row = { tr: el('tr', { 'data-tag': t.name }), value: el('td', { class: 'value' }), quality: el('td', { class: 'quality' }), age: el('td', { class: 'age' }), chart: el('td', { class: 'chart' }) };
        row.tr.append(el('td', {}, t.name), row.value, row.quality, row.age, row.chart);
        tbody.append(row.tr);
        d.el.rows.set(t.name, row);
      }
      row.value.replaceChildren(show(t.value), t.unit ? el('span', { class: 'unit' }, ' ' + t.unit) : '');
      row.quality.replaceChildren(t.quality === 'good' ? 'good' : badge(t.quality, t.quality));
      row.age.textContent = duration(now() - t.ts);
      row.chart.replaceChildren(spark(d.series.get(t.name) || []));
    }
  }

  function spark(points) {
    const svg = svgEl('svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', '0 0 300 30');
    svg.setAttribute('preserveAspectRatio', 'none');
    const pts = points.filter((p) => p[1] !== null);
    if (pts.length < 2) return svg;
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    // a young gateway's few minutes fill the chart rather than its right edge
    const end = now(), start = Math.max(end - windowMs, pts[0][0]), width = end - start || 1, span = hi - lo || 1;
    const line = svgEl('polyline');
    line.setAttribute('points', pts.map((p) => (((p[0] - start) / width) * 300).toFixed(1) + ',' + (27 - ((p[1] - lo) / span) * 24).toFixed(1)).join(' '));
    svg.append(line);
    const title = svgEl('title');
    title.textContent = 'min ' + show(lo) + ', max ' + show(hi);
    svg.append(title);
    return svg;
  }

  function addPoint(d, t) {
    const v = numeric(t.value);
    if (v === null) return;
    let s = d.series.get(t.name);
    if (!s) d.series.set(t.name, (s = []));
    const at = Math.floor(t.ts / stepMs) * stepMs;
    const last = s[s.length - 1];
    if (last && last[0] === at) last[1] = v;
    else if (!last || last[0] < at) s.push([at, v]);
    const cut = now() - windowMs;
    while (s.length && s[0][0] < cut) s.shift();
  }

  async function loadHistory(id, d) {
    if (d.fetched) return;
    d.fetched = true;
    try {
      const r = await fetch('api/history?device=' + encodeURIComponent(id));
      if (!r.ok) throw new Error(r.status);
      const h = await r.json();
      for (const [tag, series] of Object.entries(h.tags)) {
        const pts = [];
        series.v.forEach((v, i) => { if (v !== null) pts.push([series.t + i * h.step_ms, v]); });
        const live = d.series.get(tag) || [];
        const upto = pts.length ? pts[pts.length - 1][0] : -Infinity;
        d.series.set(tag, pts.concat(live.filter((p) => p[0] > upto)));
      }
      if (d.el.details.open) renderTags(d);
    } catch {
      d.fetched = false;
    }
  }

  function apply(s) {
    status = s;
    offset = Date.now() - s.now;
    stepMs = s.history.step_ms;
    windowMs = s.history.step_ms * s.history.points;
    const seen = new Set();
    for (const v of s.devices) {
      seen.add(v.id);
      const d = card(v.id);
      d.view = v;
      if (s.full) { d.tags.clear(); d.el.rows.clear(); d.el.body.replaceChildren(); }
      for (const t of v.tags) { d.tags.set(t.name, t); addPoint(d, t); }
      renderDevice(d, s.full ? undefined : v.tags.map((t) => t.name));
    }
    for (const [id, d] of devices) if (!seen.has(id)) { d.el.details.remove(); devices.delete(id); }
    renderGateway();
  }

  function live(state) {
    $('live').className = 'badge ' + (state === 'live' ? 'live' : 'error');
    $('live').textContent = state;
  }

  let polling = null;
  function poll() {
    fetch('api/status').then((r) => r.json()).then((s) => { apply(s); live('live (polling)'); }, () => live('offline'));
  }
  if (typeof EventSource === 'function') {
    const es = new EventSource('api/events');
    es.addEventListener('status', (e) => { apply(JSON.parse(e.data)); live('live'); });
    es.onerror = () => live('reconnecting…');
  } else {
    poll();
    polling = setInterval(poll, 2000);
  }
  // ages and uptime move between events too
  setInterval(() => {
    if (!status) return;
    renderGateway();
    for (const d of devices.values()) {
      for (const [name, row] of d.el.rows) { const t = d.tags.get(name); if (t) row.age.textContent = duration(now() - t.ts); }
    }
  }, 1000);
  void polling;
})();
