// The OPC UA connection closes its session only once a subscription being
// created has been answered: node-opcua announces a new subscription from an
// event and asserts there that its session is still open, and that assertion
// ended the process when a stop came right after the connect (`edgegate demo
// --duration 1` on a busy machine). Fakes stand in for node-opcua's client
// and session, so the order of events is the test's to decide.
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configSchema, type OpcuaDeviceConfig } from '../config/schema.js';
import type { OpenSession } from '../drivers/opcua/client.js';
import { OpcuaConnection } from '../drivers/opcua/connection.js';
import { slotsOf } from '../drivers/opcua/monitor.js';
import { systemClock } from '../gateway/clock.js';
import type { DriverContext } from '../gateway/types.js';
import { capturingLogger } from './helpers/opcua.js';

const settle = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

test('a stop while the subscription is being created: the session closes only after the server answered', async () => {
  const config = configSchema.parse({
    devices: [{ id: 'plc', driver: 'opcua', endpoint: 'opc.tcp://127.0.0.1:4840', tags: { a: { node: 'ns=1;s=A' } } }],
  }).devices[0] as OpcuaDeviceConfig;
  let answer: (err: Error) => void = () => undefined;
  const session = Object.assign(new EventEmitter(), {
    createSubscription2: () => new Promise((_resolve, reject) => { answer = reject; }),
  });
  const client = Object.assign(new EventEmitter(), { connectionStrategy: { maxRetry: 0, initialDelay: 1000 } });
  const events: string[] = [];
  const open = { client, session, close: async () => void events.push('session closed') } as unknown as OpenSession;
  const controller = new AbortController();
  const ctx: DriverContext = {
    deviceId: 'plc', log: capturingLogger([]), clock: systemClock, signal: controller.signal,
    emit: () => undefined, setStatus: () => undefined, parseError: () => undefined, timeout: () => undefined,
  };
  const connection = new OpcuaConnection(config, ctx, open, slotsOf(config));
  const run = connection.run().then(() => events.push('run ended'));
  await settle();
  controller.abort();
  await settle();
  assert.equal(events, [], 'the session stays open while the subscription is being created');
  events.push('server answered');
  answer(new Error('BadSessionClosed'));
  await run;
  assert.equal(events, ['server answered', 'session closed', 'run ended']);
});

test.run();
