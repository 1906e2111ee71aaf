// The gateway's MQTT surface end to end: retained status and last will,
// writes with their results, and secrets kept out of logs and stats.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dataOf, gatewayConfig, latest, serialDevice, setup, waitForState } from './helpers/e2e.js';
import { ROOT } from './helpers/gateway.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');

if (enabled) {
  test('retained online status, device status, and the last will when the gateway is killed', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)]));
      await waitForState(sub, 'inst1', 'connected');
      await waitFor(() => latest(sub, 'edgegate/gw1/status')?.state === 'online', 5000, 'the online status');
      await waitFor(() => latest(sub, 'edgegate/gw1/stats') !== undefined, 5000, 'a stats payload');
      const online = latest(sub, 'edgegate/gw1/status')!;
      assert.is(online.version, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
      assert.type(online.started, 'number');
      const dev = latest(sub, 'edgegate/gw1/devices/inst1/status')!;
      assert.type(dev.since, 'number');
      gw.signal('SIGKILL');
      await gw.exited;
      await waitFor(() => latest(sub, 'edgegate/gw1/status')?.state === 'offline', 5000, 'the will');
      // a late subscriber sees the retained offline status and device status
      const late = await e.subscribe(e.broker!.url, 'edgegate/gw1/#');
      const has = (topic: string) => late.messages.some((m) => m.topic === topic);
      await waitFor(() => has('edgegate/gw1/status') && has('edgegate/gw1/devices/inst1/status') && has('edgegate/gw1/stats'), 3000, 'the retained gateway status, device status and stats');
      const retained = late.messages.find((m) => m.topic === 'edgegate/gw1/status')!;
      assert.ok(retained.retain);
      assert.is(JSON.parse(retained.payload).state, 'offline');
      assert.ok(late.messages.some((m) => m.topic === 'edgegate/gw1/devices/inst1/status' && m.retain));
      assert.ok(late.messages.some((m) => m.topic === 'edgegate/gw1/stats' && m.retain));
    } finally {
      await e.cleanup();
    }
  });

  test('writes: only writable tags, checked values, results on .../result and the MQTT 5 response topic', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const device = serialDevice('inst1', e.pty!.device, {
        write_template: 'SET {tag} {value}\n',
        tags: { T: { name: 'temperature' }, sp: { name: 'setpoint', writable: true, type: 'number', min: 0, max: 50 } },
      });
      e.start(gatewayConfig(e.broker!.url, e.dir, [device], { mqtt: { url: e.broker!.url, qos: 1, protocol_version: 5 } }));
      await waitForState(sub, 'inst1', 'connected');
      const received: string[] = [];
      const { createReadStream } = await import('node:fs');
      const rs = createReadStream(e.pty!.instrument);
      rs.on('data', (d) => received.push(d.toString()));
      rs.on('error', () => {});
      const client = await mqtt.connectAsync(e.broker!.url, { protocolVersion: 5 });
      try {
        const results: Array<{ topic: string; body: { ok: boolean; error?: string; sent?: boolean }; corr?: string }> = [];
        client.on('message', (topic, payload, packet) => {
          results.push({ topic, body: JSON.parse(payload.toString()), ...(packet.properties?.correlationData ? { corr: packet.properties.correlationData.toString() } : {}) });
        });
        await client.subscribeAsync(['edgegate/gw1/devices/+/set/+/result', 'replies/#'], { qos: 1 });
        await client.publishAsync('edgegate/gw1/devices/inst1/set/setpoint', '12.5', { qos: 1 });
        await waitFor(() => received.join('').includes('SET sp 12.5\n'), 5000, 'the write at the instrument');
        await waitFor(() => results.length >= 1, 3000, 'a result');
        assert.equal(results[0], { topic: 'edgegate/gw1/devices/inst1/set/setpoint/result', body: { ok: true, sent: true } }, 'a serial write is confirmed as sent');
        await client.publishAsync('edgegate/gw1/devices/inst1/set/setpoint', '99', { qos: 1, properties: { responseTopic: 'replies/x', correlationData: Buffer.from('req-7') } });
        await waitFor(() => results.some((r) => r.topic === 'replies/x'), 3000, 'the response topic');
        const reply = results.find((r) => r.topic === 'replies/x')!;
        assert.is(reply.corr, 'req-7');
        assert.is(reply.body.ok, false);
        assert.match(reply.body.error ?? '', /above max 50/);
        await client.publishAsync('edgegate/gw1/devices/inst1/set/temperature', '1', { qos: 1 });
        await client.publishAsync('edgegate/gw1/devices/inst1/set/setpoint', '"warm"', { qos: 1 });
        await client.publishAsync('edgegate/gw1/devices/nope/set/x', '1', { qos: 1 });
        await waitFor(() => results.length >= 6, 3000, 'all results');
        const errors = results.filter((r) => r.topic.endsWith('/result') && !r.body.ok).map((r) => r.body.error);
        assert.ok(errors.some((m) => /not writable/.test(m ?? '')), 'non-writable refused');
        assert.ok(errors.some((m) => /type number/.test(m ?? '')), 'wrong type refused');
        assert.ok(errors.some((m) => /unknown device/.test(m ?? '')), 'unknown device refused');
        await sleep(200);
        assert.not.match(received.join(''), /SET (sp 99|T |sp warm)/, 'refused writes never reach the device');
      } finally {
        rs.destroy();
        await client.endAsync();
      }
    } finally {
      await e.cleanup();
    }
  });

  test('retain_last_values: the retained tag value is the one in the batch just sent, also when that reading filled it', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const device = serialDevice('inst1', e.pty!.device, { tags: { T: { name: 'temperature' } } });
      e.start(gatewayConfig(e.broker!.url, e.dir, [device], {
        mqtt: { url: e.broker!.url, qos: 1, retain_last_values: true },
        batch: { max_readings: 1, max_wait: '10s' },
      }));
      await waitForState(sub, 'inst1', 'connected');
      const retained = () => latest(sub, 'edgegate/gw1/devices/inst1/tags/temperature');
      for (const v of [80, 81]) {
        e.instrument!.write(`T=${v}\n`);
        await waitFor(() => dataOf(sub, 'inst1').some((b) => b.readings.some((r) => r.value === v)), 5000, `the batch with ${v}`);
        // the next reading may never come: the value must not wait for it
        await waitFor(() => retained()?.value === v, 5000, `retained ${v}`);
      }
      assert.equal(Object.keys(retained()!).sort(), ['quality', 'ts', 'value']);
    } finally {
      await e.cleanup();
    }
  });

  test('retain_last_values: a batch closed because the next reading would overflow max_bytes does not take that reading\'s value along', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const device = serialDevice('inst1', e.pty!.device, { tags: { T: { name: 'temperature' } } });
      // one reading fits a batch, two do not: each reading closes the batch of the one before
      e.start(gatewayConfig(e.broker!.url, e.dir, [device], {
        mqtt: { url: e.broker!.url, qos: 1, retain_last_values: true },
        batch: { max_bytes: 170, max_wait: '2s' },
      }));
      await waitForState(sub, 'inst1', 'connected');
      e.instrument!.write('T=80\nT=81\nT=82\n');
      const retainedTopic = 'edgegate/gw1/devices/inst1/tags/temperature';
      await waitFor(() => sub.messages.some((m) => m.topic === retainedTopic && JSON.parse(m.payload).value === 82), 15_000, 'retained 82');
      const batches = dataOf(sub, 'inst1');
      assert.equal(batches.map((b) => b.readings.length), [1, 1, 1], 'one reading per batch');
      // every retained value comes after the batch that carries it
      const seen = new Set<unknown>();
      for (const m of sub.messages) {
        if (m.topic === 'edgegate/gw1/devices/inst1/data') for (const x of (JSON.parse(m.payload) as { readings: Array<{ value: unknown }> }).readings) seen.add(x.value);
        if (m.topic === retainedTopic) {
          const v = JSON.parse(m.payload).value as unknown;
          assert.ok(seen.has(v), `retained ${String(v)} before a batch carrying it`);
        }
      }
    } finally {
      await e.cleanup();
    }
  });

  test('homeassistant.enabled without retain_last_values: only the tags Home Assistant discovers keep a retained value', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const device = serialDevice('inst1', e.pty!.device, { tags: { a: {}, b: { homeassistant: false } } });
      e.start(gatewayConfig(e.broker!.url, e.dir, [device], {
        mqtt: { url: e.broker!.url, qos: 1 },
        homeassistant: { enabled: true },
        batch: { max_readings: 2, max_wait: '10s' },
      }));
      await waitForState(sub, 'inst1', 'connected');
      e.instrument!.write('a=1;b=2\n');
      await waitFor(() => latest(sub, 'edgegate/gw1/devices/inst1/tags/a')?.value === 1, 15_000, 'retained a=1');
      e.instrument!.write('a=3;b=4\n');
      await waitFor(() => latest(sub, 'edgegate/gw1/devices/inst1/tags/a')?.value === 3, 15_000, 'retained a=3');
      // b's value would have gone out beside a's, on the same connection
      assert.equal(dataOf(sub, 'inst1').flatMap((x) => x.readings.map((r) => r.value)), [1, 2, 3, 4], 'b is still in the data');
      assert.not.ok(sub.messages.some((m) => m.topic === 'edgegate/gw1/devices/inst1/tags/b'), 'no retained value for a tag Home Assistant does not discover');
    } finally {
      await e.cleanup();
    }
  });

  test('names from device data and from requests never become invalid topics; retained writes are not carried out', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const client = await mqtt.connectAsync(e.broker!.url, { protocolVersion: 5 });
      // left retained from earlier: the broker hands it to the gateway when it subscribes
      await client.publishAsync('edgegate/gw1/devices/inst1/set/ok', '5', { qos: 1, retain: true });
      const device = serialDevice('inst1', e.pty!.device, { write_template: 'SET {tag} {value}\n', tags: {} });
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [device], {
        mqtt: { url: e.broker!.url, qos: 1, protocol_version: 5, retain_last_values: true },
      }));
      try {
        await waitForState(sub, 'inst1', 'connected');
        // a device map without tags passes every key: these keys cannot be topic levels
        e.instrument!.write('a+b=2;c#d=3;ok=1\n');
        await waitFor(() => latest(sub, 'edgegate/gw1/devices/inst1/tags/ok')?.value === 1, 5000, 'the good key retained');
        await client.publishAsync('edgegate/gw1/devices/inst1/set/ok', '6', { qos: 1, properties: { responseTopic: 'reply/#' } });
        // the refusal of the second write is held back from the log (one line per 10 s): its response-topic warning comes after it
        await waitFor(() => gw.logs().some((l) => /response topic is not a valid topic/.test(String(l.msg))), 5000, 'both writes handled');
        e.instrument!.write('ok=2\n');
        await waitFor(() => latest(sub, 'edgegate/gw1/devices/inst1/tags/ok')?.value === 2, 5000, 'data still flows');
        const writes = gw.logs().filter((l) => l.msg === 'write');
        assert.match(String(writes[0]!.error), /retained writes are ignored/);
        assert.ok(!gw.logs().some((l) => l.msg === 'mqtt connection lost'), 'the gateway never lost its broker connection');
        const parseErrors = () => (latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { parse_errors: number }> } | undefined)?.devices?.inst1?.parse_errors ?? 0;
        await waitFor(() => parseErrors() >= 2, 3000, 'the two bad keys counted as parse errors');
        await client.publishAsync('edgegate/gw1/devices/inst1/set/ok', '', { qos: 1, retain: true }); // clear the retained request
      } finally {
        await client.endAsync();
      }
    } finally {
      await e.cleanup();
    }
  });

  test('no secret in any log line or stats payload, even at trace level', async () => {
    const e = await setup();
    try {
      const secret = 'S3cr3t-pa55-word';
      writeFileSync(join(e.dir, 'mqtt-password'), `${secret}\n`);
      const sub = await e.subscribe(e.broker!.url);
      const config = gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)], {
        mqtt: { url: e.broker!.url.replace('mqtt://', `mqtt://gw:${secret}@`), username: 'gw', password_file: '${CREDENTIALS_DIRECTORY}/mqtt-password', qos: 1 },
      });
      const gw = e.start(config, { LOG_LEVEL: 'trace', CREDENTIALS_DIRECTORY: e.dir });
      await waitForState(sub, 'inst1', 'connected');
      e.instrument!.write(`n=1;note=${'x'}\n`);
      // something of everything to look through: the data, a stats payload, the log lines about them
      await waitFor(() => sub.messages.some((m) => m.topic === 'edgegate/gw1/devices/inst1/data'), 5000, 'the data');
      await waitFor(() => sub.messages.some((m) => m.topic === 'edgegate/gw1/stats'), 5000, 'a stats payload');
      await gw.stop();
      const everything = gw.stdout() + gw.stderr() + sub.messages.map((m) => m.payload).join('\n');
      assert.ok(gw.logs().length > 5, 'there are log lines to check');
      assert.not.ok(everything.includes(secret), 'the secret leaked');
    } finally {
      await e.cleanup();
    }
  });
}

test.run();
