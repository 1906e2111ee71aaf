// The embedded aedes broker: serves MQTT on 127.0.0.1, moves to the next free
// port when asked, and closes without hanging even with clients connected.
import { createServer, type Server } from 'node:net';
import { connect, type MqttClient } from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startEmbeddedBroker } from '../gateway/broker.js';
import { freePort, waitFor } from './helpers/peers.js';

function client(url: string): Promise<MqttClient> {
  const c = connect(url, { reconnectPeriod: 0, connectTimeout: 3000 });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

function occupy(port: number): Promise<Server> {
  const srv = createServer();
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

test('publish and subscribe through it, retained included; close() with clients connected', async () => {
  const port = await freePort();
  const broker = await startEmbeddedBroker({ port });
  assert.is(broker.port, port);
  assert.is(broker.url, `mqtt://127.0.0.1:${port}`);
  const pub = await client(broker.url);
  const sub = await client(broker.url);
  await pub.publishAsync('gw/status', '{"state":"online"}', { qos: 1, retain: true });
  const got: string[] = [];
  sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await sub.subscribeAsync('gw/#', { qos: 1 });
  await pub.publishAsync('gw/devices/a/data', '{"seq":1}', { qos: 1 });
  await waitFor(() => got.length === 2, 2000, 'retained and live messages');
  assert.equal(got, ['gw/status {"state":"online"}', 'gw/devices/a/data {"seq":1}']);

  const t0 = Date.now();
  await broker.close();
  assert.ok(Date.now() - t0 < 2500, `close took ${Date.now() - t0} ms`);
  await waitFor(() => !pub.connected && !sub.connected, 2000, 'clients disconnected');
  pub.end(true);
  sub.end(true);
  await broker.close(); // twice is harmless
  const again = await startEmbeddedBroker({ port });
  await again.close();
});

test('a busy port: the next free one with tryNext, a clear error without', async () => {
  const port = await freePort();
  const blocker = await occupy(port);
  try {
    const err = await startEmbeddedBroker({ port }).then(() => undefined, (e: Error) => e);
    assert.match(err?.message ?? 'no error', /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    const broker = await startEmbeddedBroker({ port, tryNext: true });
    assert.ok(broker.port > port && broker.port <= port + 20, `port ${broker.port}`);
    const c = await client(broker.url);
    assert.ok(c.connected);
    c.end(true);
    await broker.close();
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

test.run();
