// The deadband of an OPC UA tag, end to end: a node-opcua server over TCP →
// the gateway CLI → a real Mosquitto. What reaches MQTT must be exactly what
// SPEC's rule (a change of at least `deadband` from the last published value,
// in published units) gives over the values the server sampled: no edge lost
// to a server-side filter that compares with a different value, strictly, or
// in raw units.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { dataOf, gatewayConfig, setup, waitForState } from './helpers/e2e.js';
import { sim, stopAll } from './helpers/opcua.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker');
const SAMPLING_MS = 100;
let server: SimServer;

/** SPEC §3's deadband over a sequence: what must be published */
function deadbandRule(values: number[], d: number): number[] {
  const out: number[] = [];
  for (const v of values) if (out.length === 0 || Math.abs(v - (out.at(-1) as number)) >= d) out.push(v);
  return out;
}

if (enabled) {
  test.before(async () => {
    server = await sim();
  });
  test.after(async () => {
    await stopAll();
  });

  test('deadband 5 over 43 → 45 → 47 → 50 → 52 → 40 → 45, and scale 10 with raw steps of 1: MQTT carries exactly what the rule gives', async () => {
    const e = await setup({ pty: false });
    try {
      const sub = await e.subscribe(e.broker!.url);
      // each banded tag has a twin without deadband on the same node: seeing the twin's value
      // on MQTT proves the server sampled it before the next write
      const device = {
        id: 'plc1', driver: 'opcua', endpoint: server.endpoint, sampling_interval: SAMPLING_MS, publishing_interval: '50ms',
        tags: {
          level: { node: 'ns=1;s=Sim.Level', type: 'integer' },
          level_db: { node: 'ns=1;s=Sim.Level', type: 'integer', deadband: 5 },
          small: { node: 'ns=1;s=Sim.Small', type: 'integer' },
          small_x10: { node: 'ns=1;s=Sim.Small', scale: 10, deadband: 5 },
        },
      };
      e.start(gatewayConfig(e.broker!.url, e.dir, [device], { batch: { max_wait: '50ms' } }));
      await waitForState(sub, 'plc1', 'connected', 20_000);
      const values = (tag: string) => dataOf(sub, 'plc1').flatMap((b) => b.readings).filter((r) => r.tag === tag).map((r) => r.value as number);
      await waitFor(() => values('level').length === 1 && values('small').length === 1, 10_000, 'the initial values');

      const sequence = [43, 45, 47, 50, 52, 40, 45];
      for (const v of sequence) await writeSampled(server, values, 'Level', 'level', v);
      for (const v of [1, 2, 3]) await writeSampled(server, values, 'Small', 'small', v);

      assert.equal(values('level'), [0, ...sequence], 'every write was sampled');
      assert.equal(values('level_db'), deadbandRule([0, ...sequence], 5));
      assert.equal(values('level_db'), [0, 43, 50, 40, 45]);
      assert.equal(values('small_x10'), [0, 10, 20, 30], 'raw steps of 1 are 10 published units: each passes deadband 5');
    } finally {
      await e.cleanup();
    }
  });
}

/** sets a Sim variable and waits until its twin without deadband has it on MQTT, then one sampling interval more */
async function writeSampled(s: SimServer, values: (tag: string) => number[], name: string, twin: string, v: number): Promise<void> {
  const n = values(twin).length;
  s.set(name, v);
  await waitFor(() => values(twin).length > n, 10_000, `${name} = ${v} on MQTT`);
  await sleep(SAMPLING_MS);
}

test.run();
