// The Modbus RTU driver against a pymodbus slave on the far end of a socat
// pty pair: every type and word order, coalesced reads counted on the slave,
// writes, exception answers and CRC errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { modbusRtuDevice } from '../config/schema.js';
import { ModbusDriver } from '../drivers/modbus/driver.js';
import { LAYOUT, layoutTags, qualityRecorder, requirePymodbus, start, startModbusPeer, type ModbusPeer, type Rec } from './peers/modbus.js';
import { ptyPair, type PtyPair } from './helpers/socat.js';
import { requirePeer, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'Modbus RTU tests run over socat pty pairs') && requirePymodbus();

function device(port: string, extra: Record<string, unknown> = {}) {
  return modbusRtuDevice.parse({ id: 'm', driver: 'modbus-rtu', port, baud_rate: 115200, poll_interval: 100, timeout: 300, ...extra });
}

interface Bench {
  pty: PtyPair;
  peer: ModbusPeer;
  close(): Promise<void>;
}

async function bench(units = [1]): Promise<Bench> {
  const tmp = tempDir();
  const pty = await ptyPair(tmp.dir);
  let peer: ModbusPeer;
  try {
    peer = await startModbusPeer({ rtu: pty.instrument, units });
  } catch (e) {
    await pty.stop();
    tmp.remove();
    throw e;
  }
  return {
    pty,
    peer,
    async close() {
      await peer.stop();
      await pty.stop();
      tmp.remove();
    },
  };
}

/** a pymodbus slave on a fresh pty pair and a recorder; both stopped whatever the test does */
async function withSlave(fn: (b: Bench, rec: Rec) => Promise<void>): Promise<void> {
  const b = await bench();
  const rec = qualityRecorder('m');
  try {
    await fn(b, rec);
  } finally {
    rec.abort();
    await b.close();
  }
}

if (enabled) {
  test('every type, word order and byte swap, read in one coalesced request per poll', () => withSlave(async (b, rec) => {
    const { tags, words } = layoutTags();
    await b.peer.set(1, 'holding', 0, words);
    await b.peer.set(1, 'coil', 0, [1, 0, 1]);
    const bits = { c0: { area: 'coil', address: 0 }, c1: { area: 'coil', address: 1 }, c2: { area: 'coil', address: 2, type: 'bool' } };
    const r = start(new ModbusDriver(device(b.pty.device, { tags: { ...tags, ...bits } })), rec);
    await waitFor(() => rec.values('text_swap').length >= 5, 10_000, 'five polls');
    rec.abort();
    await r.done;
    assert.is(r.outcome(), 'resolved');
    for (const [key, , , , value] of LAYOUT) assert.equal(rec.values(key)[0], value, key);
    assert.equal(['c0', 'c1', 'c2'].map((k) => rec.values(k)[0]), [true, false, true]);
    assert.ok(rec.qualities.every((q) => q.quality === 'good'));
    assert.equal(rec.statuses.slice(0, 2), [{ state: 'connecting' }, { state: 'connected' }]);
    const polls = rec.values('u16').length;
    const counts = await b.peer.counts();
    assert.ok(words.length <= 125 && words.length > 30, `${words.length} registers`);
    // a request in flight when the driver stopped may be counted without its emit
    assert.ok(counts['1:3']! >= polls && counts['1:3']! <= polls + 1, `${counts['1:3']} register reads for ${polls} polls`);
    assert.ok(counts['1:1']! >= polls && counts['1:1']! <= polls + 1, `${counts['1:1']} coil reads for ${polls} polls`);
  }));

  test('writes of every type and word order reach the registers encoded; coils with FC 5, registers with FC 6 and 16', () => withSlave(async (b, rec) => {
    const { tags, words } = layoutTags(true);
    const driver = new ModbusDriver(device(b.pty.device, { poll_interval: 1000, tags: { ...tags, relay: { area: 'coil', address: 7, writable: true } } }));
    const r = start(driver, rec);
    await waitFor(() => rec.lastStatus()?.state === 'connected', 5000, 'connected');
    for (const [key, , , , value] of LAYOUT) await driver.write(key, value);
    assert.equal(await b.peer.get(1, 'holding', 0, words.length), words);
    await driver.write('relay', true);
    assert.equal(await b.peer.get(1, 'coil', 7, 1), [1]);
    await driver.write('relay', false);
    assert.equal(await b.peer.get(1, 'coil', 7, 1), [0]);
    const counts = await b.peer.counts();
    const single = LAYOUT.filter(([, type]) => type === 'uint16' || type === 'int16').length;
    assert.is(counts['1:6'], single, 'one-register types with FC 6');
    assert.is(counts['1:16'], LAYOUT.length - single, 'the others with FC 16');
    assert.is(counts['1:5'], 2, 'coils with FC 5');
    await driver.write('u16', 70000).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, 'outside the uint16 range'));
    await driver.write('text', 'far too long for three').then(() => assert.unreachable(), (e: Error) => assert.match(e.message, 'does not fit'));
    rec.abort();
    await r.done;
  }));

  test('an exception answer makes its block bad and leaves the rest good; a write to a missing address says why', () => withSlave(async (b, rec) => {
    await b.peer.set(1, 'holding', 0, [42]);
    const driver = new ModbusDriver(device(b.pty.device, {
      tags: { ok: { area: 'holding', address: 0 }, missing: { area: 'holding', address: 5000, writable: true }, also: { area: 'input', address: 1 } },
    }));
    const r = start(driver, rec);
    await waitFor(() => rec.values('also').length >= 3, 5000, 'three polls');
    assert.ok(rec.qualities.filter((q) => q.key === 'missing').every((q) => q.value === null && q.quality === 'bad'));
    assert.ok(rec.qualities.filter((q) => q.key !== 'missing').every((q) => q.quality === 'good'));
    assert.equal(rec.values('ok').slice(0, 3), [42, 42, 42]);
    assert.is(rec.lastStatus()?.state, 'connected');
    await driver.write('missing', 1).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, 'exception 2 (illegal data address)'));
    rec.abort();
    await r.done;
    assert.is(r.outcome(), 'resolved');
  }));

  test('CRC errors are counted as parse errors; polling goes on and the device stays connected', () => withSlave(async (b, rec) => {
    await b.peer.set(1, 'holding', 0, [7]);
    const r = start(new ModbusDriver(device(b.pty.device, { tags: { v: { area: 'holding', address: 0 } } })), rec);
    await waitFor(() => rec.values('v').length >= 2, 5000, 'two polls');
    await b.peer.corrupt(3);
    const before = rec.values('v').length;
    await waitFor(() => rec.values('v').length >= before + 3, 5000, 'polls after the corrupt answers');
    assert.is(rec.parseErrors.filter((p) => p.reason === 'CRC error').length, 3);
    assert.ok(rec.values('v').every((v) => v === 7), 'no garbled value emitted');
    assert.is(rec.timeouts, 0);
    assert.is(rec.lastStatus()?.state, 'connected');
    rec.abort();
    await r.done;
  }));

  test('a slow answer: the timeout is counted, late answers never pass for another block, reads resume', () => withSlave(async (b, rec) => {
    await b.peer.set(1, 'holding', 0, [1, 1]);
    await b.peer.set(1, 'holding', 10, [2, 2]);
    const tags = { a: { area: 'holding', address: 0, type: 'uint32' }, b: { area: 'holding', address: 10, type: 'uint32' } };
    const r = start(new ModbusDriver(device(b.pty.device, { poll_interval: 50, timeout: 150, tags })), rec);
    await waitFor(() => rec.values('b').length >= 2, 5000, 'two polls');
    await b.peer.delay(1, 250);
    await waitFor(() => rec.timeouts >= 2, 5000, 'two timeouts');
    await b.peer.delay(1, 0);
    const n = rec.values('b').length;
    await waitFor(() => rec.values('b').length >= n + 3, 5000, 'reads after the slow phase');
    assert.ok(rec.values('a').every((v) => v === 0x00010001), `a: ${JSON.stringify(rec.values('a'))}`);
    assert.ok(rec.values('b').every((v) => v === 0x00020002), `b: ${JSON.stringify(rec.values('b'))}`);
    assert.is(rec.lastStatus()?.state, 'connected');
    rec.abort();
    await r.done;
  }));
}

test.run();
