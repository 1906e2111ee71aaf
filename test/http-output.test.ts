// The HTTP output's bounds, without a broker: the charts' history stays
// within its fixed size whatever the devices send, a live client that stops
// reading is dropped while the others keep their stream, the number of live
// clients is capped, and the config refuses a page beyond loopback without
// a password.
import { connect } from 'node:net';
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText, type LoadResult } from '../config/load.js';
import type { DeviceConfig } from '../config/schema.js';
import { systemClock } from '../gateway/clock.js';
import { BasicAuth } from '../gateway/outputs/http/auth.js';
import { TagHistory } from '../gateway/outputs/http/history.js';
import { HttpOutput, parseListen } from '../gateway/outputs/http/index.js';
import { GatewayMetrics } from '../gateway/outputs/http/metrics.js';
import type { DeviceView, GatewayContext } from '../gateway/outputs/output.js';
import { newCounters, type Reading } from '../gateway/types.js';
import { captureLog } from './helpers/mqtt-fixtures.js';
import { waitFor } from './helpers/peers.js';

test('history: one point per step, the last reading of a step wins, the window never grows', () => {
  const h = new TagHistory({ points: 10, stepMs: 1000 });
  const t0 = 1_764_250_000_000;
  h.record('d', 'x', 1, t0);
  h.record('d', 'x', 2, t0 + 500); // same step: replaces
  h.record('d', 'x', true, t0 + 1000);
  h.record('d', 's', 'text', t0 + 1000);
  h.record('d', 'x', 5, t0 + 3000); // a step without a reading in between
  assert.equal(h.series('d', t0 + 3000), { x: { t: t0, v: [2, 1, null, 5] }, s: { t: t0 + 1000, v: [null] } });
  const bytes = h.bytes;
  for (let i = 0; i < 1000; i++) h.record('d', 'x', i, t0 + i * 1000);
  assert.equal(h.series('d', t0 + 999_000).x, { t: t0 + 990_000, v: [990, 991, 992, 993, 994, 995, 996, 997, 998, 999] });
  assert.is(h.bytes, bytes, 'no growth from readings');
  // points older than the window are not shown, even if the slot still holds them
  assert.equal(h.series('d', t0 + 1_004_000).x!.v, [995, 996, 997, 998, 999]);
});

test('history: at most maxTags tags, in a fixed number of bytes; a forgotten device\'s slots are reused', () => {
  const h = new TagHistory({ points: 150, stepMs: 2000, maxTags: 10_000 });
  const t0 = 1_764_250_000_000;
  for (let d = 0; d < 30; d++) for (let t = 0; t < 500; t++) h.record(`dev${d}`, `tag${t}`, t, t0);
  assert.is(h.trackedTags, 10_000);
  // 10,000 tags rounded up to whole chunks of 256, 150 points of 4 + 4 bytes: 12.3 MB
  assert.is(h.bytes, Math.ceil(10_000 / 256) * 256 * 150 * 8);
  assert.equal(h.series('dev25', t0), {}, 'tags past the bound get no chart');
  h.forget('dev0');
  assert.is(h.trackedTags, 9_500);
  for (let t = 0; t < 500; t++) h.record('dev25', `tag${t}`, t, t0 + 2000);
  assert.is(h.trackedTags, 10_000);
  assert.is(h.bytes, Math.ceil(10_000 / 256) * 256 * 150 * 8, 'reused, not grown');
  assert.equal(h.series('dev25', t0 + 2000).tag7, { t: t0 + 2000, v: [7] });
  assert.equal(h.series('dev0', t0), {});
});

test('basic auth: the right pair only; malformed headers refused', () => {
  const a = new BasicAuth('admin', 'se:cret');
  const b64 = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
  assert.ok(a.check(b64('admin:se:cret')));
  assert.ok(a.check(b64('admin:se:cret').replace('Basic', 'basic')));
  for (const h of [undefined, '', 'Bearer x', b64('admin:se:cre'), b64('admin'), b64(':se:cret'), b64('Admin:se:cret'), 'Basic !!!']) {
    assert.not.ok(a.check(h), String(h));
  }
});

test('listen addresses', () => {
  assert.equal(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.equal(parseListen('[::1]:9'), { host: '::1', port: 9 });
  assert.equal(parseListen(':8080'), { host: undefined, port: 8080 });
});

function loaded(http: unknown, env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}): LoadResult {
  const text = JSON.stringify({ mqtt: { url: 'mqtt://localhost:1883' }, http });
  return parseConfigText(text, 'c.json', env, (p) => {
    if (files[p] === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return files[p]!;
  });
}
const errorsOf = (r: LoadResult) => (r.ok ? [] : r.errors);

test('config: beyond loopback needs username and password; loopback does not; the password comes from password_file', () => {
  for (const listen of ['0.0.0.0:8080', ':8080', '192.168.1.10:80', '[::]:8080', 'gateway.local:8080']) {
    const errs = errorsOf(loaded({ listen }));
    assert.ok(errs.some((e) => e.includes('http.listen') && e.includes('beyond loopback') && e.includes('needs username and password_file')), `${listen}: ${errs.join('; ')}`);
  }
  for (const listen of ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '127.0.0.2:1']) assert.ok(loaded({ listen }).ok, listen);
  assert.ok(errorsOf(loaded({ listen: '0.0.0.0:8080', username: 'admin' })).some((e) => e.includes('http.password')));
  assert.ok(errorsOf(loaded({ listen: '127.0.0.1:8080', password: 'x' })).some((e) => e.includes('http.username')));
  assert.ok(errorsOf(loaded({ listen: '8080' })).some((e) => e.includes('expected host:port')));
  const ok = loaded({ listen: '0.0.0.0:8080', username: 'admin', password_file: '/run/creds/http' }, {}, { '/run/creds/http': 's3cret\n' });
  assert.ok(ok.ok, errorsOf(ok).join('; '));
  if (ok.ok) assert.equal(ok.config.http, { listen: '0.0.0.0:8080', username: 'admin', password: 's3cret' });
  // the empty file the package creates is no password for basic auth
  const empty = errorsOf(loaded({ listen: '0.0.0.0:8080', username: 'admin', password_file: '/run/creds/http' }, {}, { '/run/creds/http': '\n' }));
  assert.ok(empty.some((e) => e.includes('http.password') && e.includes('empty')), empty.join('; '));
  // a missing password file is an error that names the key, never a secret
  assert.ok(errorsOf(loaded({ listen: '0.0.0.0:8080', username: 'admin', password_file: '/nope' })).some((e) => e.includes('http.password')));
});

/** a gateway context with `tags` tags on one device, each given a fresh reading by tick() */
function fakeContext(tags: number): { ctx: GatewayContext; tick(): void } {
  const latest = new Map<string, Reading>();
  let n = 0;
  const tick = () => {
    n++;
    for (let i = 0; i < tags; i++) latest.set(`tag${i}`, { tag: `tag${i}`, value: n + i / 1000, ts: Date.now(), quality: 'good' });
  };
  tick();
  const device: DeviceView = {
    id: 'd1', config: { id: 'd1', driver: 'serial', tags: {} } as unknown as DeviceConfig,
    status: { state: 'connected', since: Date.now() }, counters: newCounters(),
  };
  const buffer = { bytes: 0, batches: 0, dropped_batches: 0, damaged_records: 0, oldest_ts: null, mode: 'disk' as const };
  const ctx: GatewayContext = {
    log: captureLog().log, clock: systemClock, version: 'test', startedAt: Date.now(),
    config: () => ({ gateway: { id: 'gw' } }) as never,
    devices: () => [device], device: (id) => (id === 'd1' ? device : undefined), latest: (id) => (id === 'd1' ? latest : undefined),
    broker: () => ({ url: 'mqtt://x', connected: true, buffer, queued_batches: 0, inflight: 0, published_batches: 0, published_readings: 0 }),
    stats: () => ({ ts: Date.now(), uptime_s: 1, rss_bytes: 1, event_loop_delay_p99_ms: 0, readings_per_s: 0, buffer, devices: {} }),
    health: () => ({ ok: true }), write: async () => undefined, republishTagStates: () => undefined,
  };
  return { ctx, tick };
}

test('live events: a client that stops reading is dropped past the bound; one that reads keeps its stream; clients are capped', async () => {
  const { ctx, tick } = fakeContext(2000);
  const out = new HttpOutput({ listen: '127.0.0.1:0', tickMs: 20, maxBufferedBytes: 256 * 1024, maxClients: 2 });
  await out.start(ctx);
  const feed = setInterval(tick, 20);
  const { port } = new URL(out.url!);
  // the stuck browser: asks for the stream, then never reads
  const stuck = connect(Number(port), '127.0.0.1');
  stuck.on('error', () => undefined);
  stuck.write('GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n');
  stuck.pause();
  let received = 0, events = 0;
  const reader = request(`${out.url}/api/events`, (res) => {
    res.on('data', (d: Buffer) => {
      received += d.length;
      events += d.toString().split('event: status').length - 1;
    });
  });
  reader.on('error', () => undefined).end();
  try {
    await waitFor(() => out.droppedClients === 1, 30_000, 'the stuck client dropped');
    // the cap: two clients were in; the stuck one is gone, so one more fits, then no more
    const before = events;
    await waitFor(() => events > before + 5, 10_000, 'the reading client still gets events');
    assert.ok(received > 1_000_000, `${received} bytes read by the live client`);
    const third = await new Promise<number>((resolve) => request(`${out.url}/api/events`, (res) => { resolve(res.statusCode ?? 0); res.resume(); }).end());
    assert.is(third, 200);
    const fourth = await new Promise<number>((resolve) => request(`${out.url}/api/events`, (res) => { resolve(res.statusCode ?? 0); res.resume(); }).end());
    assert.is(fourth, 503);
    assert.is(out.droppedClients, 1);
  } finally {
    clearInterval(feed);
    stuck.destroy();
    reader.destroy();
    await out.stop();
  }
});

test('process metrics: one set per process (their GC observer and event-loop histogram cannot be stopped), however often the output starts', async () => {
  const { ctx } = fakeContext(1);
  const gc = 'edgegate_nodejs_gc_duration_seconds';
  const first = new GatewayMetrics(ctx).registry.getSingleMetric(gc);
  assert.ok(first, gc);
  assert.is(new GatewayMetrics(ctx).registry.getSingleMetric(gc), first, 'the same histogram, not a second observer');
  for (let i = 0; i < 2; i++) {
    const out = new HttpOutput({ listen: '127.0.0.1:0' });
    await out.start(ctx);
    try {
      const body = await (await fetch(`${out.url}/metrics`)).text();
      assert.match(body, /^edgegate_process_cpu_seconds_total \d/m);
      assert.match(body, /^edgegate_readings_in_total\{device="d1"\} 0$/m);
    } finally {
      await out.stop();
    }
  }
});

test.run();
