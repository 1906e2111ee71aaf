// MqttPublisher against a real Mosquitto: availability, retained topics,
// ordering and the in-flight bound, QoS 0, MQTT 3/5, credentials, TLS.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MqttPublisher, type PublisherOptions } from '../gateway/publisher.js';
import { freePort, sleep, tempDir, waitFor, which } from './helpers/peers.js';
import { collect, startMosquitto, type TestBroker } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach, mkBatch, mqttConfig, MqttProxy, orderReport, seqOf } from './helpers/mqtt-fixtures.js';

const OFFLINE = '{"state":"offline"}';
const cleanups = cleanupsAfterEach(test);

async function broker(opts: Parameters<typeof startMosquitto>[0] = {}): Promise<TestBroker> {
  const b = await startMosquitto(opts);
  cleanups.push(() => b.stop());
  return b;
}

/** the embedded stand-in speaks neither MQTT 5 nor TLS */
function real(b: TestBroker, what: string): boolean {
  if (b.kind !== 'mosquitto') console.warn(`!!! SKIPPING this case: ${what} needs Mosquitto`);
  return b.kind === 'mosquitto';
}

function publisher(url: string, over: Partial<Omit<PublisherOptions, 'mqtt'>> & { mqtt?: Partial<PublisherOptions['mqtt']> } = {}) {
  const cap = captureLog();
  const { mqtt, ...rest } = over;
  const pub = new MqttPublisher({
    mqtt: mqttConfig(url, mqtt), statusTopic: 'gw/status', onlinePayload: () => '{"state":"online"}', offlinePayload: OFFLINE,
    log: cap.log, maxQueuedBytes: 64 * 1024 * 1024, reconnect: { minMs: 100, maxMs: 400 }, ...rest,
  });
  cleanups.push(() => pub.stop());
  return { pub, ...cap };
}

async function collector(url: string, topic: string, opts: Parameters<typeof collect>[2] = {}) {
  const c = await collect(url, topic, opts);
  cleanups.push(() => c.close());
  return c;
}

test('online status is retained; an abrupt loss publishes the retained last will', async () => {
  const b = await broker();
  const proxy = new MqttProxy(b.port);
  await proxy.open();
  cleanups.push(() => proxy.close());
  const { pub } = publisher(proxy.url);
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  const watcher = await collector(b.url, 'gw/status');
  await waitFor(() => watcher.messages.length >= 1, 10_000, 'retained online status');
  assert.equal(watcher.messages[0], { topic: 'gw/status', payload: '{"state":"online"}', retain: true });
  // no more connections through the proxy: the publisher stays away
  await proxy.close();
  await waitFor(() => watcher.messages.some((m) => m.payload === OFFLINE), 10_000, 'the last will');
  const late = await collector(b.url, 'gw/status');
  await waitFor(() => late.messages.length >= 1, 10_000, 'retained will');
  assert.equal(late.messages[0], { topic: 'gw/status', payload: OFFLINE, retain: true });
});

test('stop publishes offline and disconnects gracefully; it never hangs when the broker is away', async () => {
  const b = await broker();
  const { pub } = publisher(b.url);
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  const watcher = await collector(b.url, 'gw/status');
  await waitFor(() => watcher.messages.length === 1, 10_000, 'online');
  await pub.stop();
  assert.not.ok(pub.connected);
  await waitFor(() => watcher.messages.length === 2, 10_000, 'offline');
  assert.is(watcher.messages[1]?.payload, OFFLINE);
  await sleep(300);
  assert.is(watcher.messages.length, 2, 'exactly one offline message: no will after a graceful stop');

  const away = publisher(`mqtt://127.0.0.1:${await freePort()}`).pub;
  away.start();
  away.publishBatch(mkBatch(1));
  await sleep(200);
  const t0 = Date.now();
  await away.stop();
  assert.ok(Date.now() - t0 < 2500, `stop took ${Date.now() - t0} ms`);
  assert.equal(away.unsent().map((x) => x.seq), [1]);
});

test('setRetained topics are published and published again after a broker restart', async () => {
  const b = await broker();
  const { pub, lines } = publisher(b.url);
  pub.setRetained('gw/devices/a/status', '{"state":"connecting"}');
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  for (let i = 0; i <= 500; i++) pub.setRetained('gw/devices/a/tags/t', JSON.stringify({ value: i }));
  await sleep(200);
  await b.restart();
  // connects counted: the connection can go and come back between two polls of pub.connected
  const connects = () => lines.filter((l) => l.msg === 'mqtt connected').length;
  await waitFor(() => connects() >= 2 && pub.connected, 10_000, 'reconnected');
  const c = await collector(b.url, 'gw/devices/#');
  await waitFor(() => c.messages.length >= 2, 10_000, 'both retained topics');
  const got = Object.fromEntries(c.messages.map((m) => [m.topic, m.payload]));
  assert.equal(got, { 'gw/devices/a/status': '{"state":"connecting"}', 'gw/devices/a/tags/t': '{"value":500}' });
  assert.ok(c.messages.every((m) => m.retain));
});

test('20,000 batches at QoS 1 arrive in order and never more than max_inflight are unacknowledged', async () => {
  const b = await broker();
  const proxy = new MqttProxy(b.port);
  await proxy.open();
  cleanups.push(() => proxy.close());
  const c = await collector(b.url, 'gw/devices/+/data');
  const { pub } = publisher(proxy.url, { mqtt: { max_inflight: 16 } });
  pub.start();
  const N = 20_000;
  let maxSelf = 0;
  for (let s = 1; s <= N; s++) {
    pub.publishBatch(mkBatch(s));
    maxSelf = Math.max(maxSelf, pub.inflight);
    if (s % 1000 === 0) await sleep(1);
  }
  assert.ok(await pub.drain(30_000), 'drained');
  await waitFor(() => c.messages.length >= N, 15_000, `${N} messages`);
  assert.equal(orderReport(c.messages.map((m) => seqOf(m.payload)), N), { missing: 0, duplicates: 0, outOfOrder: 0 });
  assert.ok(proxy.maxOutstanding <= 16 && proxy.maxOutstanding > 1, `peak on the wire ${proxy.maxOutstanding}`);
  assert.ok(maxSelf <= 16, `peak counted ${maxSelf}`);
  assert.equal(pub.stats(), { connected: true, queued_batches: 0, queued_bytes: 0, inflight: 0, dropped_batches: 0, published_batches: N, published_readings: N });
});

test('QoS 0 mode delivers in order through the same window', async () => {
  const b = await broker();
  const c = await collector(b.url, 'gw/devices/+/data');
  const { pub } = publisher(b.url, { mqtt: { qos: 0, max_inflight: 32 } });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  const N = 5000;
  for (let s = 1; s <= N; s++) pub.publishBatch(mkBatch(s));
  assert.ok(pub.inflight <= 32);
  assert.ok(await pub.drain(20_000), 'drained');
  await waitFor(() => c.messages.length >= N, 15_000, `${N} messages`);
  assert.equal(orderReport(c.messages.map((m) => seqOf(m.payload)), N), { missing: 0, duplicates: 0, outOfOrder: 0 });
  assert.is(pub.publishedBatches, N);
});

test('MQTT 5: requests reach onMessage with response topic and correlation data; replies carry them back', async () => {
  const b = await broker();
  if (!real(b, 'MQTT 5')) return;
  const got: Array<{ topic: string; payload: string; responseTopic?: string | undefined; correlationData?: Buffer | undefined }> = [];
  const { pub } = publisher(b.url, {
    mqtt: { protocol_version: 5 },
    subscriptions: ['gw/devices/+/set/+'],
    onMessage: (topic, payload, props) => {
      got.push({ topic, payload: payload.toString(), ...props });
      if (props.responseTopic) pub.publish(props.responseTopic, '{"ok":true}', { qos: 1, properties: props.correlationData ? { correlationData: props.correlationData } : {} });
    },
  });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  const replies = await collector(b.url, 'req/replies', { protocolVersion: 5 });
  const requester = connect(b.url, { protocolVersion: 5 });
  cleanups.push(() => new Promise<void>((r) => requester.end(true, {}, () => r())));
  await new Promise<void>((r) => requester.once('connect', () => r()));
  await sleep(100); // the publisher's SUBACK
  requester.publish('gw/devices/scale1/set/tare', '12.5', { qos: 1, properties: { responseTopic: 'req/replies', correlationData: Buffer.from('abc') } });
  requester.publish('gw/devices/scale1/set/tare', '13', { qos: 1 });
  await waitFor(() => got.length === 2 && replies.messages.length === 1, 10_000, 'request and reply');
  assert.equal(got[0], { topic: 'gw/devices/scale1/set/tare', payload: '12.5', responseTopic: 'req/replies', correlationData: Buffer.from('abc') });
  assert.equal(got[1], { topic: 'gw/devices/scale1/set/tare', payload: '13' });
  assert.is(replies.messages[0]?.payload, '{"ok":true}');
  assert.equal(replies.messages[0]?.properties?.correlationData, Buffer.from('abc'));
});

test('MQTT 5: the window shrinks to the receive maximum the broker announces', async () => {
  const b = await broker();
  if (!real(b, 'MQTT 5')) return;
  const proxy = new MqttProxy(b.port);
  await proxy.open();
  cleanups.push(() => proxy.close());
  const c = await collector(b.url, 'gw/devices/+/data', { protocolVersion: 5 });
  const { pub } = publisher(proxy.url, { mqtt: { protocol_version: 5, max_inflight: 64 } });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  const N = 3000;
  for (let s = 1; s <= N; s++) pub.publishBatch(mkBatch(s));
  assert.ok(await pub.drain(20_000), 'drained');
  await waitFor(() => c.messages.length >= N, 15_000, `${N} messages`);
  assert.equal(orderReport(c.messages.map((m) => seqOf(m.payload)), N), { missing: 0, duplicates: 0, outOfOrder: 0 });
  // Mosquitto 2.0 announces 20 (its max_inflight_messages)
  assert.ok(proxy.maxOutstanding <= 20 && proxy.maxOutstanding > 16, `peak on the wire ${proxy.maxOutstanding}`);
});

test('MQTT 3.1 (MQIsdp), credentials never logged, onConnect called on every connect', async () => {
  const b = await broker();
  const c = await collector(b.url, 'gw/devices/+/data');
  let connects = 0;
  const { pub, text } = publisher(`mqtt://alice:url-secret@127.0.0.1:${b.port}`, {
    // MQTT 3.1 allows client ids of 23 characters at most
    mqtt: { protocol_version: 3, client_id: 'edgegate-v3-test', username: 'bob', password: 'pw-secret' },
    onConnect: () => { connects++; },
  });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  pub.publishBatch(mkBatch(1));
  await waitFor(() => c.messages.length === 1, 10_000, 'the batch');
  await b.restart();
  await waitFor(() => connects === 2, 10_000, 'a second connect');
  await b.kill();
  await waitFor(() => !pub.connected, 10_000, 'disconnected');
  // failed attempts are logged (reconnects every 100 to 400 ms)
  await waitFor(() => text().includes('mqtt error'), 10_000, 'connection errors to be logged');
  assert.not.ok(text().includes('secret'), 'no password or userinfo in the logs');
  assert.ok(text().includes(`mqtt://127.0.0.1:${b.port}`), 'the URL is logged without userinfo');
});

test('TLS: mqtts with a CA, and a missing TLS file is a clear error from start()', async () => {
  if (!which('openssl')) { console.warn('!!! SKIPPING TLS: openssl not found'); return; }
  const { dir, remove } = tempDir('edgegate-tls-');
  cleanups.push(remove);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=edgegate test CA');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
  const ca = join(dir, 'ca.crt');
  const b = await broker({ tls: { ca, cert: join(dir, 'server.crt'), key: join(dir, 'server.key') } });
  if (!real(b, 'TLS')) return;
  const c = await collector(b.url, 'gw/devices/+/data', { ca: readFileSync(ca) });
  const { pub } = publisher(b.url, { mqtt: { tls: { ca, reject_unauthorized: true } } });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected over TLS');
  pub.publishBatch(mkBatch(1));
  await waitFor(() => c.messages.length === 1, 10_000, 'the batch over TLS');

  const bad = publisher(b.url, { mqtt: { tls: { ca: join(dir, 'missing.pem'), reject_unauthorized: true } } }).pub;
  assert.throws(() => bad.start(), /mqtt\.tls\.ca: cannot read .*missing\.pem/);
});

test.run();
