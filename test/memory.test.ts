// What a small Pi's gateway does not load or build: MQTT.js's table of
// pre-built packet-number Buffers, the serialport package's parsers; and
// the node flags the bin runs with.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MqttPublisher } from '../gateway/publisher.js';
import { ROOT } from './helpers/gateway.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach, mqttConfig } from './helpers/mqtt-fixtures.js';
import { waitFor } from './helpers/peers.js';

const cleanups = cleanupsAfterEach(test);

test('the publisher sends without pre-building 65,536 packet-number Buffers (6 MB of heap)', async () => {
  const b = await startMosquitto();
  cleanups.push(() => b.stop());
  const { log } = captureLog();
  const pub = new MqttPublisher({
    mqtt: mqttConfig(b.url), statusTopic: 'gw/status', onlinePayload: () => '{"state":"online"}', offlinePayload: '{"state":"offline"}',
    log, maxQueuedBytes: 1024 * 1024, reconnect: { minMs: 100, maxMs: 400 },
  });
  cleanups.push(() => pub.stop());
  pub.start();
  // the CONNECT packet is the first one written; the library builds its table then, if at all.
  // (no MQTT.js subscriber in this process: its client would build the table itself)
  await waitFor(() => pub.connected, 10_000, 'connected');
  const numbers = createRequire(join(ROOT, 'node_modules', 'mqtt', 'package.json'))('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
  assert.is(Object.keys(numbers.cache).length, 0);
});

test('the serial driver loads the OS binding only: neither the serialport package nor its parsers', () => {
  const driver = join(ROOT, 'dist', 'drivers', 'serial', 'index.js');
  const script = `await import(${JSON.stringify(driver)});
    const { createRequire } = await import('node:module');
    console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const loaded = JSON.parse(r.stdout) as string[];
  assert.ok(loaded.some((f) => f.includes('/@serialport/bindings-cpp/')), 'the binding is loaded');
  // (the binding has two parsers of its own, for udevadm's output)
  const outside = loaded.filter((f) => !f.includes('/@serialport/bindings-cpp/'));
  assert.equal(outside.filter((f) => /\/node_modules\/(serialport|@serialport\/parser-[^/]+)\//.test(f)), []);
});

test('the bin and npm start run node with a 2 MiB young generation and one V8 helper thread', () => {
  const shebang = readFileSync(join(ROOT, 'dist', 'gateway', 'cli', 'main.js'), 'utf8').split('\n', 1)[0];
  assert.is(shebang, '#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.start ?? '', /^node --max-semi-space-size=2 --v8-pool-size=1 /);
});

test.run();
