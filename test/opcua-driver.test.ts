// The OPC UA driver against a node-opcua server over TCP on a free port:
// subscriptions, value types, quality, bad tags, deadband, writes, 1,000 items.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { MAX_NOTIFICATIONS_PER_PUBLISH } from '../drivers/opcua/monitor.js';
import { StatusCodes } from '../drivers/opcua/ua.js';
import { connected, sim, startDriver, stopAll, type Rig } from './helpers/opcua.js';
import { waitFor } from './helpers/peers.js';

const N = 1000;
let server: SimServer;
const node = (name: string) => ({ node: `ns=1;s=Sim.${name}` });

test.before(async () => {
  server = await sim({ variables: N, intervalMs: 100 });
});
test.after(async () => {
  await stopAll();
});

/** the driver on these settings; stopped whatever happens, and its session must then be gone from the server */
async function withDriver(device: Record<string, unknown>, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const t0 = Date.now();
  const rig = startDriver(server.endpoint, device);
  try {
    await connected(rig, 30_000);
    await fn(rig);
  } finally {
    await rig.stop();
  }
  assert.is(rig.outcome(), 'resolved');
  await waitFor(() => server.sessionCount() === 0, 10_000, 'the session to be closed on the server');
  if (process.env.OPCUA_TEST_TIMES) console.log(`  ${Date.now() - t0} ms`);
}

test('subscribe and receive: numbers, booleans, strings, DateTime as ms, arrays, Int64, with source timestamps', async () => {
  const tags = {
    T: node('Temperature'), C: node('Counter'), run: node('Running'), state: node('State'),
    ts: node('Timestamp'), spec: node('Spectrum'), big: node('BigCount'),
  };
  await withDriver({ tags }, async (rig) => {
    assert.equal(rig.statuses, [{ state: 'connecting' }, { state: 'connected' }]);
    await waitFor(() => Object.keys(tags).every((k) => rig.values(k).length >= 2), 10_000, 'two values of every tag');
    assert.type(rig.values('T')[0], 'number');
    assert.type(rig.values('run')[0], 'boolean');
    assert.type(rig.values('state')[0], 'string');
    const spec = rig.values('spec').at(-1) as number[];
    assert.ok(Array.isArray(spec) && spec.length === 4 && spec[1] === (spec[0] as number) + 1, `array ${JSON.stringify(spec)}`);
    const counts = rig.values('C') as number[];
    assert.ok(counts.every((c, i) => i === 0 || c === (counts[i - 1] as number) + 1), `every counter change, in order: ${counts.join(',')}`);
    const bigs = rig.values('big') as number[];
    assert.ok(bigs.every((b) => Number.isInteger(b)) && bigs.some((b) => counts.includes(b)), `Int64 as a number: ${bigs.join(',')}`);
    // the reading's ts is the server's source timestamp, set when the value was made, not when it arrived
    for (const r of rig.readings.filter((x) => x.key === 'ts')) {
      assert.is(r.value, r.ts, 'the DateTime value and the source timestamp of one change');
      assert.ok(r.ts <= r.at, 'stamped before arrival');
    }
    assert.ok(rig.readings.every((r) => r.quality === 'good'));
  });
});

test('quality: Good, Uncertain and Bad status codes map to good, uncertain, bad', async () => {
  await withDriver({ tags: { q: node('Quality') } }, async (rig) => {
    await waitFor(() => rig.values('q').length >= 1, 10_000, 'the initial value');
    server.set('Quality', 2, StatusCodes.UncertainLastUsableValue);
    await waitFor(() => rig.readings.some((r) => r.quality === 'uncertain'), 10_000, 'an uncertain reading');
    server.set('Quality', 0, StatusCodes.BadSensorFailure);
    await waitFor(() => rig.readings.some((r) => r.quality === 'bad'), 10_000, 'a bad reading');
    server.set('Quality', 4, StatusCodes.Good);
    await waitFor(() => rig.readings.at(-1)?.quality === 'good' && rig.readings.at(-1)?.value === 4, 10_000, 'good again');
    assert.equal(rig.readings.map((r) => r.quality), ['good', 'uncertain', 'bad', 'good']);
    assert.equal(rig.readings.slice(1).map((r) => r.value), [2, 0, 4]);
  });
});

test('a wrong node id, an invalid one, an unreadable node and an unsupported type are reported; the other tags keep working', async () => {
  const tags = {
    good: node('Counter'), missing: { node: 'ns=1;s=Sim.NoSuchNode' }, invalid: { node: 'not a node id' },
    secret: node('Secret'), label: node('Label'), also_good: node('Temperature'),
  };
  await withDriver({ tags }, async (rig) => {
    await waitFor(() => /4 of 6/.test(rig.lastStatus()?.error ?? ''), 10_000, 'four problems in the status');
    const status = rig.lastStatus()!;
    assert.is(status.state, 'connected');
    assert.match(status.error!, 'missing (BadNodeIdUnknown)');
    assert.match(status.error!, 'invalid (invalid node id "not a node id")');
    assert.match(status.error!, 'secret (BadNotReadable)');
    assert.match(status.error!, 'label (values of DataType LocalizedText are not supported)');
    assert.ok(rig.parseErrors.some((p) => p.includes('LocalizedText')), 'the unsupported value counted as a parse error');
    assert.ok(rig.logs.some((l) => l.level === 'warn' && l.obj.tag === 'secret'), 'logged');
    const before = rig.values('good').length;
    await waitFor(() => rig.values('good').length >= before + 3 && rig.values('also_good').length >= 1, 10_000, 'the good tags');
    assert.is(rig.values('missing').length + rig.values('secret').length + rig.values('label').length, 0);
  });
});

test('deadband: the server is not asked to filter; every sampled change reaches the gateway, whose deadband decides', async () => {
  // Ramp grows by 0.1 every 100 ms; a server-side filter would hold most of its changes back
  await withDriver({ tags: { banded: { ...node('Ramp'), deadband: 1 }, plain: node('Ramp'), text: { ...node('State'), deadband: 1 } } }, async (rig) => {
    await waitFor(() => rig.values('plain').length >= 10 && rig.values('banded').length >= 10, 15_000, '10 values of each');
    const banded = rig.values('banded') as number[];
    for (let i = 1; i < banded.length; i++) assert.ok(Math.abs((banded[i] as number) - (banded[i - 1] as number) - 0.1) < 1e-9, `every step of 0.1: ${banded.join(', ')}`);
    assert.ok(rig.values('text').length >= 1, 'the string tag is read');
    assert.is(rig.lastStatus()?.error, undefined);
  });
});

test("writes: the value becomes the node's DataType and round-trips; wrong types, ranges and read-only nodes are refused", async () => {
  const tags = {
    setpoint: { ...node('Setpoint'), writable: true }, level: { ...node('Level'), writable: true }, small: { ...node('Small'), writable: true },
    enable: { ...node('Enable'), writable: true, type: 'boolean' }, mode: { ...node('Mode'), writable: true, type: 'string' },
    ro: { ...node('ReadOnly'), writable: true }, spec: { ...node('Spectrum'), writable: true },
  };
  await withDriver({ tags }, async (rig) => {
    await rig.driver.write('setpoint', 12.5);
    await waitFor(() => rig.values('setpoint').includes(12.5), 10_000, 'the written setpoint back from the subscription');
    await rig.driver.write('level', -1234);
    await rig.driver.write('enable', true);
    await rig.driver.write('mode', 'manual');
    await waitFor(() => rig.values('level').includes(-1234) && rig.values('enable').includes(true) && rig.values('mode').includes('manual'), 10_000, 'Int16, Boolean and String written');
    const refused = async (key: string, value: number | boolean | string, pattern: RegExp) => {
      const err = await rig.driver.write(key, value).then(() => undefined, (e: unknown) => e as Error);
      assert.ok(err, `write ${key}=${String(value)} was accepted`);
      assert.match(err.message, pattern);
    };
    await refused('level', 40000, /Int16: 40000 is out of range -32768\.\.32767/);
    await refused('small', 256, /Byte: 256 is out of range 0\.\.255/);
    await refused('level', 1.5, /Int16: expected an integer/);
    await refused('setpoint', 'high', /Double: expected a number/);
    await refused('mode', 3, /String: expected a string/);
    await refused('ro', 1, /refused the write to ns=1;s=Sim.ReadOnly: BadNotWritable/);
    await refused('spec', 1, /array nodes cannot be written/);
  });
});

test(`${N} monitored items: created in chunks, every one reports, in publish responses of at most ${MAX_NOTIFICATIONS_PER_PUBLISH} changes`, async () => {
  const tags = Object.fromEntries(Array.from({ length: N }, (_, i) => [`v${i}`, { node: `ns=1;s=v${i}` }]));
  const t0 = Date.now();
  await withDriver({ tags, publishing_interval: 200 }, async (rig) => {
    const startMs = Date.now() - t0;
    const seen = new Set<string>();
    await waitFor(() => {
      for (const r of rig.readings) seen.add(r.key);
      return seen.size === N;
    }, 20_000, `values of all ${N} items`);
    // a response is decoded and dispatched in one task of the event loop: small ones leave room to the other devices
    assert.equal(server.notificationLimits(), [MAX_NOTIFICATIONS_PER_PUBLISH]);
    console.log(`  ${N} items: connected and monitored in ${startMs} ms, every item reported within ${Date.now() - t0} ms`);
    assert.is(rig.lastStatus()?.error, undefined);
  });
});

test.run();
