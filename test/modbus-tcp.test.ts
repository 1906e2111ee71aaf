// The Modbus TCP driver against a pymodbus TCP server on a free port: types,
// coalesced reads, writes, exceptions, late answers told apart by their
// transaction id, a shared connection, and the server going away.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { modbusTcpDevice } from '../config/schema.js';
import { openBuses } from '../drivers/modbus/bus.js';
import { ModbusDriver } from '../drivers/modbus/driver.js';
import { LAYOUT, layoutTags, qualityRecorder, requirePymodbus, start, startModbusPeer, type ModbusPeer, type Rec } from './peers/modbus.js';
import { freePort, waitFor } from './helpers/peers.js';
import { systemClock } from '../gateway/clock.js';
import type { Clock } from '../gateway/types.js';

const enabled = requirePymodbus();


function device(id: string, port: number, extra: Record<string, unknown> = {}) {
  return modbusTcpDevice.parse({ id, driver: 'modbus-tcp', host: '127.0.0.1', port, unit_id: 1, poll_interval: 100, timeout: 300, ...extra });
}


async function withPeer(units: number[], fn: (peer: ModbusPeer, recs: Rec[]) => Promise<void>): Promise<void> {
  const peer = await startModbusPeer({ tcp: 0, units });
  const recs: Rec[] = [];
  try {
    await fn(peer, recs);
  } finally {
    for (const r of recs) r.abort();
    await peer.stop();
  }
}

if (enabled) {
  test('every type and word order in one request per poll; writes of each land encoded', () => withPeer([1], async (peer, recs) => {
    const { tags, words } = layoutTags(true);
    await peer.set(1, 'holding', 0, words);
    const rec = qualityRecorder('m');
    recs.push(rec);
    const driver = new ModbusDriver(device('m', peer.port, { tags }));
    const r = start(driver, rec);
    await waitFor(() => rec.values('text_swap').length >= 3, 5000, 'three polls');
    for (const [key, , , , value] of LAYOUT) assert.equal(rec.values(key)[0], value, key);
    await peer.set(1, 'holding', 0, words.map(() => 0));
    for (const [key, , , , value] of LAYOUT) await driver.write(key, value);
    assert.equal(await peer.get(1, 'holding', 0, words.length), words);
    rec.abort();
    await r.done;
    const polls = rec.values('u16').length;
    const counts = await peer.counts();
    assert.ok(counts['1:3']! >= polls && counts['1:3']! <= polls + 1, `${counts['1:3']} reads for ${polls} polls`);
    assert.is(r.outcome(), 'resolved');
  }));

  test('polls go on when the wall clock is stepped back an hour', () => withPeer([1], async (peer, recs) => {
    await peer.set(1, 'holding', 0, [7]);
    const rec = qualityRecorder('m');
    recs.push(rec);
    let wallOffset = 0;
    const clock: Clock = { ...systemClock, now: () => Date.now() + wallOffset };
    const driver = new ModbusDriver(device('m', peer.port, { poll_interval: 50, tags: { v: { area: 'holding', address: 0, type: 'uint16' } } }));
    const r = start(driver, { ...rec, ctx: { ...rec.ctx, clock } });
    await waitFor(() => rec.values('v').length >= 3, 5000, 'three polls');
    wallOffset = -3_600_000;
    const before = rec.values('v').length;
    await waitFor(() => rec.values('v').length >= before + 5, 5000, 'five more polls after the step');
    rec.abort();
    await r.done;
    assert.is(r.outcome(), 'resolved');
  }));

  test('exception answers: the block is bad, the rest good, a write says why', () => withPeer([1], async (peer, recs) => {
    await peer.set(1, 'input', 3, [99]);
    const rec = qualityRecorder('m');
    recs.push(rec);
    const driver = new ModbusDriver(device('m', peer.port, { tags: { ok: { area: 'input', address: 3 }, missing: { area: 'coil', address: 4000, writable: true } } }));
    start(driver, rec);
    await waitFor(() => rec.values('ok').length >= 2, 5000, 'two polls');
    assert.ok(rec.qualities.filter((q) => q.key === 'missing').every((q) => q.value === null && q.quality === 'bad'));
    assert.equal(rec.values('ok').slice(0, 2), [99, 99]);
    await driver.write('missing', true).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, 'illegal data address'));
    assert.is(rec.lastStatus()?.state, 'connected');
  }));

  test('late answers are told apart by transaction id: counted timeouts, never a wrong value', () => withPeer([1], async (peer, recs) => {
    await peer.set(1, 'holding', 0, [1, 1]);
    await peer.set(1, 'holding', 10, [2, 2]);
    const rec = qualityRecorder('m');
    recs.push(rec);
    const tags = { a: { area: 'holding', address: 0, type: 'uint32' }, b: { area: 'holding', address: 10, type: 'uint32' } };
    start(new ModbusDriver(device('m', peer.port, { poll_interval: 50, timeout: 150, tags })), rec);
    await waitFor(() => rec.values('b').length >= 2, 5000, 'two polls');
    await peer.delay(1, 200);
    await waitFor(() => rec.timeouts >= 2, 5000, 'two timeouts');
    await peer.delay(1, 0);
    const n = rec.values('b').length;
    await waitFor(() => rec.values('b').length >= n + 3, 10_000, 'reads after the slow phase');
    assert.ok(rec.values('a').every((v) => v === 0x00010001), `a: ${JSON.stringify(rec.values('a'))}`);
    assert.ok(rec.values('b').every((v) => v === 0x00020002), `b: ${JSON.stringify(rec.values('b'))}`);
    assert.is(rec.lastStatus()?.state, 'connected');
  }));

  test('two units behind one host:port share one connection; the server stopping fails both runs', () => withPeer([1, 2], async (peer, recs) => {
    await peer.set(2, 'holding', 0, [2]);
    recs.push(qualityRecorder('a'), qualityRecorder('b'));
    const runs = [
      start(new ModbusDriver(device('a', peer.port, { tags: { v: { area: 'holding', address: 0 } } })), recs[0]!),
      start(new ModbusDriver(device('b', peer.port, { unit_id: 2, tags: { v: { area: 'holding', address: 0 } } })), recs[1]!),
    ];
    await waitFor(() => recs.every((r) => r.values('v').length > 1), 5000, 'both polling');
    assert.is(openBuses().get(`127.0.0.1:${peer.port}`)?.clients, 2);
    assert.equal(recs[1]!.values('v')[0], 2);
    await peer.stop();
    await waitFor(() => runs.every((r) => r.outcome() !== 'running'), 5000, 'both runs to end');
    for (const r of runs) assert.match((r.outcome() as Error).message, `127.0.0.1:${peer.port}`);
    assert.is(openBuses().has(`127.0.0.1:${peer.port}`), false);
  }));
}

test('nothing listening: run() rejects with the reason', async () => {
  const port = await freePort();
  const rec = qualityRecorder('m');
  const err = await new ModbusDriver(device('m', port, { tags: { v: { area: 'holding', address: 0 } } })).run(rec.ctx).then(() => undefined, (e: unknown) => e as Error);
  assert.match(err?.message ?? '', `cannot connect to 127.0.0.1:${port}: connect ECONNREFUSED`);
  assert.equal(rec.statuses, [{ state: 'connecting' }]);
});

test.run();
