// End to end: a node-opcua server over TCP → the gateway CLI as a child
// process → a real Mosquitto → subscribers. Readings carry source timestamps;
// writes over MQTT 5 are answered on .../result and on the response topic.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { dataOf, gatewayConfig, latest, setup, waitForState } from './helpers/e2e.js';
import { runCli } from './helpers/gateway.js';
import { opcuaDeviceMap, sim, stopAll } from './helpers/opcua.js';
import { requirePeer, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker');
let server: SimServer;

if (enabled) {
  test.before(async () => {
    server = await sim();
  });
  test.after(async () => {
    await stopAll();
  });

  test('readings with their source timestamps reach MQTT; writes over MQTT 5 round-trip with response topic and correlation data', async () => {
    const e = await setup({ pty: false });
    const client = await mqtt.connectAsync(e.broker!.url, { protocolVersion: 5 });
    try {
      const sub = await e.subscribe(e.broker!.url);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [opcuaDeviceMap('plc1', server.endpoint)], { mqtt: { url: e.broker!.url, qos: 1, protocol_version: 5 } }));
      await waitForState(sub, 'plc1', 'connected', 20_000);
      // the client certificate the gateway made names its id (gw1), not node-opcua's author
      const own = new X509Certificate(readFileSync(join(e.dir, 'buffer', 'pki', 'own', 'certs', 'client_certificate.pem')));
      assert.equal(own.subject.split('\n').sort(), [`CN=edgegate gw1@${hostname()}`, 'O=edgegate']);
      const readings = () => dataOf(sub, 'plc1').flatMap((b) => b.readings);
      await waitFor(() => readings().filter((r) => r.tag === 'stamp').length >= 3, 10_000, 'timestamps');
      // the DateTime value and the source timestamp come from one change on the server
      for (const r of readings().filter((x) => x.tag === 'stamp')) assert.is(r.ts, r.value, 'ts is the source timestamp');
      assert.ok(readings().every((r) => r.quality === 'good'));

      const results: Array<{ topic: string; body: { ok: boolean; error?: string }; corr?: string }> = [];
      client.on('message', (topic, payload, packet) => {
        results.push({ topic, body: JSON.parse(payload.toString()), ...(packet.properties?.correlationData ? { corr: packet.properties.correlationData.toString() } : {}) });
      });
      await client.subscribeAsync(['edgegate/gw1/devices/plc1/set/+/result', 'replies/#'], { qos: 1 });
      await client.publishAsync('edgegate/gw1/devices/plc1/set/setpoint', '42.5', { qos: 1, properties: { responseTopic: 'replies/plc', correlationData: Buffer.from('req-1') } });
      await waitFor(() => results.some((r) => r.topic === 'replies/plc'), 10_000, 'the reply on the response topic');
      assert.equal(results.find((r) => r.topic === 'replies/plc'), { topic: 'replies/plc', body: { ok: true }, corr: 'req-1' });
      assert.ok(results.some((r) => r.topic === 'edgegate/gw1/devices/plc1/set/setpoint/result' && r.body.ok));
      await waitFor(() => readings().some((r) => r.tag === 'setpoint' && r.value === 42.5), 5000, 'the written value read back');

      const refuse = async (tag: string, payload: string, pattern: RegExp) => {
        const n = results.length;
        const topic = `edgegate/gw1/devices/plc1/set/${tag}/result`;
        await client.publishAsync(`edgegate/gw1/devices/plc1/set/${tag}`, payload, { qos: 1 });
        await waitFor(() => results.slice(n).some((r) => r.topic === topic), 5000, `the result of ${tag}=${payload}`);
        const r = results.slice(n).find((x) => x.topic === topic)!;
        assert.is(r.body.ok, false, `${tag}=${payload} accepted`);
        assert.match(r.body.error ?? '', pattern, `${tag}=${payload}: ${r.body.error}`);
      };
      await refuse('readonly', '1', /not writable/);
      await refuse('setpoint', '"warm"', /expected a (value of type )?number/); // min/max make it a number tag: the gateway refuses it first
      await refuse('setpoint', '150', /above max 100/);
      await refuse('level', '70000', /Int16: 70000 is out of range/);
      // every line on stdout is pino JSON: node-opcua's own output went through the logger
      const lines = gw.stdout().split('\n').filter((l) => l.trim() !== '');
      assert.ok(lines.length > 0);
      for (const l of lines) assert.ok(l.startsWith('{') && JSON.parse(l), `not JSON on stdout: ${l.slice(0, 120)}`);
      assert.is(server.sessionCount(), 1);
      assert.is((await gw.stop()).code, 0);
      await waitFor(() => server.sessionCount() === 0, 5000, 'the session closed at stop');
      await waitFor(() => latest(sub, 'edgegate/gw1/devices/plc1/status')?.state === 'disconnected', 5000, 'the retained status disconnected at stop');
    } finally {
      await client.endAsync();
      await e.cleanup();
    }
  });

  test('demo: the OPC UA device reads the simulated server in the demo process', async () => {
    const demo = runCli(['demo', '--duration', '60']);
    try {
      await waitFor(() => /mosquitto_sub -h (\S+) -p (\d+)/.test(demo.stdout()), 20_000, 'the demo banner');
      const [, host, port] = /mosquitto_sub -h (\S+) -p (\d+)/.exec(demo.stdout())!;
      assert.match(demo.stdout(), /device "plc1" \(OPC UA driver\) reads the simulated server opc\.tcp:\/\/127\.0\.0\.1:\d+/);
      const client = await mqtt.connectAsync(`mqtt://${host}:${port}`);
      const tags = new Set<string>();
      client.on('message', (topic, payload) => {
        if (topic.endsWith('/plc1/data')) for (const r of (JSON.parse(payload.toString()) as { readings: Array<{ tag: string }> }).readings) tags.add(r.tag);
      });
      await client.subscribeAsync('edgegate/demo/devices/plc1/data');
      await waitFor(() => tags.has('temperature') && tags.has('counter'), 15_000, 'OPC UA readings from the demo');
      await client.endAsync();
      assert.is((await demo.stop(10_000)).code, 0);
    } finally {
      await demo.stop(3000);
    }
  });
}

test.run();
