// The naive OPC UA baseline: what a simple OPC UA-to-MQTT flow does. The same
// node-opcua subscription as the gateway (one group of monitored items, the
// same publishing interval), and EACH data change published as its own QoS 1
// message on P/v<i>, payload {"value":…,"ts":…}, with MQTT.js defaults: no
// window, no batching, nothing bounded.
//
// The benchmark reads "ready" on stdout once every item is monitored and MQTT
// is connected, and on SIGTERM a JSON line with its counts and its own
// event-loop delay p99.
//
//   node dist/bench/opcua-naive.js ENDPOINT MQTT_URL TOPIC_PREFIX VARIABLES PUBLISHING_MS
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect } from 'mqtt';
import {
  AttributeIds, OPCUACertificateManager, OPCUAClient, setErrorLogger, setWarningLogger, TimestampsToReturn, type DataValue,
} from 'node-opcua';

const [endpoint, url, prefix, variables, publishing] = process.argv.slice(2);
if (endpoint === undefined || url === undefined || prefix === undefined || variables === undefined || publishing === undefined) {
  console.error('usage: opcua-naive.js ENDPOINT MQTT_URL TOPIC_PREFIX VARIABLES PUBLISHING_MS');
  process.exit(2);
}
// stdout carries "ready" and the report only
setWarningLogger(() => undefined);
setErrorLogger((_ctx: unknown, ...args: unknown[]) => console.error(...args));

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let changes = 0, published = 0, acked = 0;

const mqttClient = connect(url);
mqttClient.on('error', (err) => console.error(`mqtt: ${err.message}`));
const mqttUp = new Promise<void>((resolve) => mqttClient.once('connect', () => resolve()));

const pki = mkdtempSync(join(tmpdir(), 'edgegate-naive-pki-'));
const client = OPCUAClient.create({
  endpointMustExist: false,
  connectionStrategy: { maxRetry: 0 },
  clientCertificateManager: new OPCUACertificateManager({ rootFolder: pki, disableFileWatchers: true }),
});
await client.connect(endpoint);
const session = await client.createSession();
const subscription = await session.createSubscription2({
  requestedPublishingInterval: Number(publishing), requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 120, maxNotificationsPerPublish: 0, publishingEnabled: true,
});
const n = Number(variables);
const items = Array.from({ length: n }, (_, i) => ({ nodeId: `ns=1;s=v${i}`, attributeId: AttributeIds.Value }));
const group = await subscription.monitorItems(items, { samplingInterval: 0, queueSize: 10, discardOldest: true }, TimestampsToReturn.Both);
group.on('changed', (_item: unknown, dv: DataValue, index: number) => {
  changes++;
  published++;
  const ts = dv.sourceTimestamp?.getTime() ?? Date.now();
  mqttClient.publish(`${prefix}/v${index}`, JSON.stringify({ value: dv.value.value as number, ts }), { qos: 1 }, (err) => {
    if (!err) acked++;
  });
});
await mqttUp;
loop.reset(); // the delay of the run, not of the start-up
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  const p99 = loop.count > 0 ? loop.percentile(99) / 1e6 : 0;
  process.stdout.write(`${JSON.stringify({ changes, published, acked, loop_p99_ms: Math.round(p99 * 100) / 100 })}\n`);
  rmSync(pki, { recursive: true, force: true });
  process.exit(0);
});
