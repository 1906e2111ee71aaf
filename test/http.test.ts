// The HTTP output against a real gateway (Mosquitto, a socat pty): /metrics
// parsed as a scraper would and its counters moving, /api/status and
// /api/history, basic auth, and /healthz turning 503 when the broker is
// wedged (a broker that never acknowledges).
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import { Gateway } from '../gateway/gateway.js';
import { HttpOutput } from '../gateway/outputs/http/index.js';
import type { StatusView } from '../gateway/outputs/http/status.js';
import { gatewayConfig, serialDevice } from './helpers/e2e.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer, tempDir, waitFor } from './helpers/peers.js';
import { parseExposition } from './helpers/prometheus.js';
import { startSilentBroker } from './helpers/silent-broker.js';
import { openInstrument, ptyPair } from './helpers/socat.js';

const enabled = requirePeer('mosquitto', 'the gateway publishes to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const cleanups = cleanupsAfterEach(test);
const SECRET = 'pa55-w0rd:with colon';

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

export function get(url: string, auth?: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject).end();
  });
}

/** fetches until the value passes the check; throws after ms */
async function until<T>(fetch: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fetch();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** a gateway with one serial device and the HTTP output, on a real broker (or the given URL) */
async function gatewayWithPage(opts: { brokerUrl?: string; auth?: boolean; healthStallMs?: number } = {}) {
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  let url = opts.brokerUrl;
  if (!url) {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    url = broker.url;
  }
  const pty = await ptyPair(tmp.dir);
  cleanups.push(() => pty.stop());
  const http = { listen: '127.0.0.1:0', ...(opts.auth ? { username: 'admin', password: SECRET } : {}) };
  const loaded = parseConfigText(JSON.stringify(gatewayConfig(url, tmp.dir, [serialDevice('s1', pty.device, {
    tags: { n: { type: 'integer' }, t: { name: 'temperature', unit: '°C' } },
  })], { http })), 'config.json');
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
  if (!loaded.ok) throw new Error('invalid');
  const { log, lines, text } = captureLog();
  const out = new HttpOutput({ ...loaded.config.http!, history: { stepMs: 100 } });
  const gw = new Gateway(loaded.config, { log, outputs: [out], ...(opts.healthStallMs ? { healthStallMs: opts.healthStallMs } : {}) });
  cleanups.push(() => gw.stop());
  await gw.start();
  const instrument = await openInstrument(pty.instrument);
  cleanups.push(() => instrument.close());
  await waitFor(() => [...gw.devices].every((d) => d.status.state === 'connected'), 10_000, 's1 connected');
  return { gw, out, base: out.url!, instrument, lines, logText: text };
}

if (enabled) {
  test('/metrics: the exposition parses, names and types are Prometheus\'s, counters move with the readings', async () => {
    const { base, instrument } = await gatewayWithPage();
    const first = parseExposition((await get(`${base}/metrics`)).body);
    assert.is(first.samples.get('edgegate_readings_in_total{device="s1"}'), 0);
    assert.is(first.samples.get('edgegate_device_up{device="s1"}'), 1);
    instrument.write('n=1;t=20.5\nn=2;t=20.6\nbroken\nn=3;t=20.7\n');
    const m = await until(async () => {
      const r = await get(`${base}/metrics`);
      assert.is(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return parseExposition(r.body);
    }, (x) => x.samples.get('edgegate_published_readings_total') === 6, 10_000, 'six readings published');
    assert.is(m.samples.get('edgegate_readings_in_total{device="s1"}'), 6);
    assert.is(m.samples.get('edgegate_readings_out_total{device="s1"}'), 6);
    assert.is(m.samples.get('edgegate_parse_errors_total{device="s1"}'), 1);
    assert.is(m.samples.get('edgegate_published_readings_total'), 6);
    assert.is(m.samples.get('edgegate_broker_connected'), 1);
    assert.is(m.samples.get('edgegate_healthy'), 1);
    assert.is(m.samples.get('edgegate_buffer_batches'), 0);
    for (const name of ['readings_in', 'readings_out', 'readings_filtered', 'parse_errors', 'out_of_range', 'timeouts', 'reconnects']) {
      assert.is(m.types.get(`edgegate_${name}_total`), 'counter', name);
      assert.ok(m.samples.has(`edgegate_${name}_total{device="s1"}`), name);
    }
    for (const name of ['device_up', 'buffer_bytes', 'buffer_batches', 'buffer_oldest_batch_age_seconds', 'broker_connected', 'event_loop_delay_p99_seconds', 'healthy', 'info']) {
      assert.is(m.types.get(`edgegate_${name}`), 'gauge', name);
    }
    assert.is(m.types.get('edgegate_buffer_dropped_batches_total'), 'counter');
    // prom-client's process metrics, prefixed like every other name (SPEC §4c)
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok([...m.samples.keys()].some((k) => k === `edgegate_${name}` || k.startsWith(`edgegate_${name}{`)), name);
    }
    assert.equal([...m.types.keys()].filter((k) => !k.startsWith('edgegate_')), [], 'every metric is named edgegate_*');
  });

  test('/api/status, /api/history, the page\'s files, 404 and 405', async () => {
    const { base, instrument } = await gatewayWithPage();
    instrument.write('n=1;t=20.5\n');
    const first = await until(async () => JSON.parse((await get(`${base}/api/status`)).body) as StatusView,
      (x) => x.devices[0]?.tags.find((t) => t.name === 'n')?.value === 1, 10_000, 'n=1 in the status');
    // the second reading is stamped at least three 100 ms steps after the first, however late either arrived
    const ts1 = first.devices[0]!.tags.find((t) => t.name === 'n')!.ts;
    await waitFor(() => Date.now() > ts1 + 300, 5000, 'three steps after the first reading');
    instrument.write('n=2;t=20.6\n');
    const s = await until(async () => JSON.parse((await get(`${base}/api/status`)).body) as StatusView,
      (x) => x.devices[0]?.tags.find((t) => t.name === 'n')?.value === 2, 10_000, 'n=2 in the status');
    assert.is(s.full, true);
    assert.is(s.gateway.id, 'gw1');
    assert.equal(s.gateway.health, { ok: true });
    assert.is(s.broker.connected, true);
    const d = s.devices[0]!;
    assert.equal([d.id, d.driver, d.state, d.counters.readings_in], ['s1', 'serial', 'connected', 4]);
    assert.equal(d.tags.map((t) => [t.name, t.value, t.quality, t.unit]), [['n', 2, 'good', undefined], ['temperature', 20.6, 'good', '°C']]);
    const h = JSON.parse((await get(`${base}/api/history?device=s1`)).body) as { step_ms: number; tags: Record<string, { t: number; v: Array<number | null> }> };
    assert.is(h.step_ms, 100);
    // one value per 100 ms step from the first reading's; steps without a reading are null
    const v = h.tags.n!.v;
    assert.equal([v[0], v.at(-1)], [1, 2], JSON.stringify(h.tags.n));
    assert.ok(v.length >= 4 && v.slice(1, -1).every((x) => x === null), JSON.stringify(h.tags.n));
    assert.is((await get(`${base}/api/history?device=nope`)).status, 404);

    const page = await get(`${base}/`);
    assert.is(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /<script src="app.js">/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.match((await get(`${base}/app.js`)).body, /EventSource/);
    assert.is((await get(`${base}/style.css`)).status, 200);
    assert.is((await get(`${base}/nope`)).status, 404);
    const post = await get(`${base}/api/status`, undefined, 'POST');
    assert.is(post.status, 405);
    assert.is(post.headers.allow, 'GET, HEAD');
  });

  test('basic auth: 401 without or with wrong credentials, 200 with them; the password is never logged', async () => {
    const { base, logText } = await gatewayWithPage({ auth: true });
    for (const path of ['/', '/metrics', '/api/status', '/healthz', '/api/events']) {
      const r = await get(`${base}${path}`);
      assert.is(r.status, 401, path);
      assert.match(String(r.headers['www-authenticate']), /^Basic realm="edgegate"/);
    }
    assert.is((await get(`${base}/metrics`, 'admin:wrong')).status, 401);
    assert.is((await get(`${base}/metrics`, `admin2:${SECRET}`)).status, 401);
    assert.is((await get(`${base}/metrics`, 'admin')).status, 401);
    assert.is((await get(`${base}/metrics`, `admin:${SECRET}`)).status, 200);
    assert.is((await get(`${base}/healthz`, `admin:${SECRET}`)).body, 'ok\n');
    assert.not.match(logText(), 'pa55');
    assert.not.match(logText(), Buffer.from(`admin:${SECRET}`).toString('base64'));
  });

  test('/healthz: 200, then 503 with the reason when the broker takes batches and never acknowledges them', async () => {
    const silent = await startSilentBroker();
    cleanups.push(() => silent.close());
    const { base, instrument } = await gatewayWithPage({ brokerUrl: silent.url, healthStallMs: 1000 });
    const ok = await get(`${base}/healthz`);
    assert.equal([ok.status, ok.body], [200, 'ok\n']);
    instrument.write('n=1\n');
    await waitFor(() => silent.publishes > 0, 10_000, 'a batch sent to the silent broker');
    const r = await until(() => get(`${base}/healthz`), (x) => x.status !== 200, 15_000, '/healthz not 200');
    assert.is(r.status, 503);
    assert.match(r.body, /^unhealthy: publisher wedged: \d+ batches in flight, no acknowledgement for \d+ s\n$/);
    const m = parseExposition((await get(`${base}/metrics`)).body);
    assert.is(m.samples.get('edgegate_healthy'), 0);
    assert.is(m.samples.get('edgegate_broker_connected'), 1);
    const s = JSON.parse((await get(`${base}/api/status`)).body) as StatusView;
    assert.match(s.gateway.health.reason ?? '', /publisher wedged/);
  });
}

test.run();
