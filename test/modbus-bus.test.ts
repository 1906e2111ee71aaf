// Several devices on one RTU bus: a dead slave costs the live one at most one
// timeout per round and never touches its status; the port is shared, opened
// once and closed by the last device; a lost port fails every device on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialPort } from 'serialport';
import { modbusRtuDevice } from '../config/schema.js';
import { openBuses } from '../drivers/modbus/bus.js';
import { ModbusDriver, MISSES_BEFORE_DISCONNECTED } from '../drivers/modbus/driver.js';
import { crc16 } from '../drivers/modbus/pdu.js';
import { RtuTransport } from '../drivers/modbus/rtu.js';
import { qualityRecorder, requirePymodbus, start, startModbusPeer, type ModbusPeer, type Rec } from './peers/modbus.js';
import { openInstrument, ptyPair, type PtyPair } from './helpers/socat.js';
import { requirePeer, sleep, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'Modbus RTU tests run over socat pty pairs') && requirePymodbus();


function device(id: string, port: string, unit: number, extra: Record<string, unknown> = {}) {
  return modbusRtuDevice.parse({
    id, driver: 'modbus-rtu', port, baud_rate: 115200, unit_id: unit, poll_interval: 100, timeout: 300,
    tags: { v: { area: 'holding', address: 0 } }, ...extra,
  });
}


/** whether another program could open (and lock) the port now */
async function canOpen(path: string): Promise<boolean> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  const ok = await new Promise<boolean>((resolve) => port.open((err) => resolve(!err)));
  if (ok) await new Promise<void>((resolve) => port.close(() => resolve()));
  return ok;
}

/** notes, in the order they happen, how the rounds of a recorder's device end: `answer` (a tag emitted, or a garbled answer) or `timeout` */
function tapRounds(rec: Rec, name: string, order: string[]): void {
  const { emit, parseError, timeout } = rec.ctx;
  rec.ctx = {
    ...rec.ctx,
    emit: (key, value, ts, quality) => {
      order.push(`${name} answer`);
      emit(key, value, ts, quality);
    },
    parseError: (reason, sample) => {
      order.push(`${name} answer`);
      parseError(reason, sample);
    },
    timeout: () => {
      order.push(`${name} timeout`);
      timeout();
    },
  };
}

/** the promise's value, or `late` after ms; the timer does not outlive it */
async function within<T>(p: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(late()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface OnBus {
  pty: PtyPair;
  /** a pymodbus slave with units 1 and 2; a test that replaces it puts the new one here */
  peer: ModbusPeer;
  /** a recorder, aborted when the test ends */
  recorder(id: string): Rec;
}

async function onBus(fn: (b: OnBus) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const pty = await ptyPair(tmp.dir);
  const recs: Rec[] = [];
  let b: OnBus | undefined;
  try {
    const peer = await startModbusPeer({ rtu: pty.instrument, units: [1, 2] });
    b = { pty, peer, recorder: (id) => { const r = qualityRecorder(id); recs.push(r); return r; } };
    await fn(b);
  } finally {
    for (const r of recs) r.abort();
    await b?.peer.stop();
    await pty.stop();
    tmp.remove();
  }
}

if (enabled) {
  test('a dead slave: marked disconnected, one request per round then backoff; the live one keeps its rate and status', () => onBus(async (b) => {
    const { pty, peer } = b;
    const live = b.recorder('live');
    const dead = b.recorder('dead');
    await peer.set(1, 'holding', 0, [11]);
    await peer.dead(2, true);
    // three separate blocks: a dead slave must still cost only one timeout per round
    const deadTags = { a: { area: 'holding', address: 0 }, b: { area: 'holding', address: 10 }, c: { area: 'input', address: 0 } };
    const order: string[] = [];
    tapRounds(live, 'live', order);
    tapRounds(dead, 'dead', order);
    const rl = start(new ModbusDriver(device('live', pty.device, 1)), live);
    const rd = start(new ModbusDriver(device('dead', pty.device, 2, { tags: deadTags })), dead);
    const t0 = Date.now();
    await waitFor(() => dead.lastStatus()?.state === 'disconnected', 15_000, 'the dead slave marked disconnected');
    // then a while of probing with backoff
    await sleep(Math.max(0, t0 + 4000 - Date.now()));
    const seconds = (Date.now() - t0) / 1000;
    assert.is(rl.outcome(), 'running');
    assert.is(rd.outcome(), 'running', 'a dead slave does not fail its run (the shared port stays open)');
    assert.is(openBuses().get(pty.device)?.clients, 2);
    // the live device: a round of the dead one delays it by one timeout at most, so between two of
    // its rounds the dead one never times out twice (exact, whatever the speed of each exchange)
    const rounds = order.join(' ').split(/live (?:answer|timeout)/);
    rounds.forEach((between, i) => assert.ok(between.split('dead timeout').length - 1 <= 1, `${between.trim()} before live round ${i + 1}`));
    // and in time: about 10 polls/s alone, a gap of at most poll_interval + the dead one's timeout,
    // plus the time of the exchanges and a margin for a busy machine
    const bound = 100 + 300 + 300 + 500;
    const polls = live.values('v').length;
    assert.ok(polls >= Math.floor((seconds * 1000) / bound) - 1, `${polls} polls of the live slave in ${seconds} s`);
    const ts = live.emits.map((e) => e.ts);
    const worst = Math.max(...ts.slice(1).map((t, i) => t - ts[i]!));
    assert.ok(worst < bound, `longest gap between live polls ${worst} ms`);
    assert.equal(live.statuses, [{ state: 'connecting' }, { state: 'connected' }], 'the live status never flaps');
    // the dead device: disconnected with the reason, one request per round, then fewer (backoff)
    assert.is(dead.lastStatus()?.state, 'disconnected');
    assert.match(dead.lastStatus()?.error ?? '', 'unit 2 does not answer');
    assert.is(dead.emits.length, 0);
    // every request that timed out has reached the slave (a busy socat may still be passing the last one on)
    const timedOut = dead.timeouts;
    let counts: Record<string, number> = {};
    const asked = () => (counts['2:3'] ?? 0) + (counts['2:4'] ?? 0);
    const end = Date.now() + 5000;
    while ((counts = await peer.counts()), asked() < timedOut && Date.now() < end) await sleep(50);
    assert.is(counts['2:4'] ?? 0, 0, 'no round of the dead slave got past its first block');
    // at most one request is waiting for its timeout
    assert.ok(asked() >= timedOut && asked() <= dead.timeouts + 1, `${asked()} requests, ${timedOut} then ${dead.timeouts} timeouts`);
    assert.ok(timedOut >= MISSES_BEFORE_DISCONNECTED && timedOut <= MISSES_BEFORE_DISCONNECTED + 4, `${timedOut} timeouts in ${seconds} s: probed with backoff`);
    // it comes back: connected again, data flows, the live one is still untouched
    await peer.set(2, 'holding', 0, [22]);
    await peer.dead(2, false);
    await waitFor(() => dead.lastStatus()?.state === 'connected', 40_000, 'the revived slave connected');
    await waitFor(() => dead.values('a').length > 0, 5000, 'data from the revived slave');
    assert.is(dead.values('a')[0], 22);
    assert.equal(live.statuses, [{ state: 'connecting' }, { state: 'connected' }]);
  }));

  test('one port for all devices on it: closed only when the last one stops', () => onBus(async ({ pty, recorder }) => {
    const a = recorder('a');
    const b = recorder('b');
    const ra = start(new ModbusDriver(device('a', pty.device, 1)), a);
    const rb = start(new ModbusDriver(device('b', pty.device, 2)), b);
    await waitFor(() => a.values('v').length > 2 && b.values('v').length > 2, 10_000, 'both polling');
    assert.is(openBuses().get(pty.device)?.clients, 2);
    assert.not.ok(await canOpen(pty.device), 'the bus holds the port (locked)');
    a.abort();
    await ra.done;
    assert.is(ra.outcome(), 'resolved');
    const n = b.values('v').length;
    await waitFor(() => b.values('v').length > n + 2, 10_000, 'b polling on after a stopped');
    assert.is(openBuses().get(pty.device)?.clients, 1);
    b.abort();
    await rb.done;
    assert.is(rb.outcome(), 'resolved');
    assert.is(openBuses().has(pty.device), false);
    assert.ok(await canOpen(pty.device), 'the port is free again');
  }));

  test('the port vanishes: run() rejects for every device on it, and both come back on a new bus', () => onBus(async (b) => {
    const { pty } = b;
    const recs = [b.recorder('a'), b.recorder('b')];
    const drivers = [new ModbusDriver(device('a', pty.device, 1)), new ModbusDriver(device('b', pty.device, 2))];
    let runs = drivers.map((d, i) => start(d, recs[i]!));
    await waitFor(() => recs.every((r) => r.values('v').length > 0), 10_000, 'both polling');
    await b.peer.stop();
    await pty.stop();
    await waitFor(() => runs.every((r) => r.outcome() !== 'running'), 5000, 'both runs to end');
    for (const r of runs) assert.match(String((r.outcome() as Error).message), `${pty.device}: device removed`);
    assert.is(openBuses().has(pty.device), false);
    // what the supervisor does next: run() again once the port is back
    await pty.restart();
    b.peer = await startModbusPeer({ rtu: pty.instrument, units: [1, 2] });
    await b.peer.set(2, 'holding', 0, [5]);
    runs = drivers.map((d, i) => start(d, recs[i]!));
    await waitFor(() => recs[1]!.values('v').includes(5), 10_000, 'data after the port returned');
    assert.is(openBuses().get(pty.device)?.clients, 2);
    for (const r of runs) assert.is(r.outcome(), 'running');
  }));

  test('a vanishing port is noticed promptly, every time (reads on the pty end with EBADF or end of file)', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    try {
      for (let i = 0; i < 10; i++) {
        if (i > 0) await pty.restart();
        const t = new RtuTransport({ path: pty.device, baudRate: 115200, dataBits: 8, parity: 'none', stopBits: 1 });
        await t.open();
        const lost = new Promise<Error>((resolve) => { t.onLost = resolve; });
        await pty.stop();
        // counted from when socat has gone: stop() itself waits for it to exit
        const t0 = Date.now();
        const err = await within(lost, 5000, () => new Error('not noticed'));
        const took = Date.now() - t0;
        await t.close();
        assert.match(err.message, `${pty.device}: device removed`, `round ${i}`);
        assert.ok(took < 2000, `round ${i}: ${took} ms`);
      }
    } finally {
      await pty.stop();
      tmp.remove();
    }
  });

  test('noise before an answer is skipped; bytes while no request waits are dropped', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    const instrument = await openInstrument(pty.instrument);
    const rec = qualityRecorder('m');
    try {
      const frame = (value: number) => {
        const f = Buffer.from([1, 3, 2, value >> 8, value & 0xff, 0, 0]);
        f.writeUInt16LE(crc16(f, 0, 5), 5);
        return f;
      };
      // time enough to answer each request through socat, and for a stray frame to arrive before the next
      const r = start(new ModbusDriver(device('m', pty.device, 1, { poll_interval: 1000, timeout: 2000 })), rec);
      for (let round = 1; round <= 3; round++) {
        await waitFor(() => instrument.received.length >= 8 * round, 10_000, `request ${round}`);
        await instrument.write(Buffer.concat([Buffer.from([0x00, 0xff, 0x07, 0x01]), frame(round)]));
        await waitFor(() => rec.values('v').length >= round, 5000, `answer ${round}`);
        // a stray frame between requests: must not become the next answer
        await instrument.write(frame(0x9999));
      }
      assert.equal(rec.values('v'), [1, 2, 3]);
      assert.is(rec.parseErrors.length, 0);
      rec.abort();
      await r.done;
    } finally {
      rec.abort();
      await instrument.close();
      await pty.stop();
      tmp.remove();
    }
  });
}

test('a missing port rejects run() with the reason; a second line setting on one port is refused', async () => {
  const tmp = tempDir();
  const path = `${tmp.dir}/ttyUSB9`;
  try {
    const rec = qualityRecorder('m');
    const err = await new ModbusDriver(device('m', path, 1)).run(rec.ctx).then(() => undefined, (e: unknown) => e as Error);
    assert.is(err?.message, `cannot open ${path}: ENOENT (no such port)`);
    assert.is(openBuses().has(path), false);
    const a = qualityRecorder('a');
    const ra = start(new ModbusDriver(device('a', path, 1)), a);
    const e2 = await new ModbusDriver(device('b', path, 2, { baud_rate: 9600 })).run(qualityRecorder('b').ctx).then(() => undefined, (e: unknown) => e as Error);
    assert.match(e2?.message ?? '', 'not 9600 baud 8N1');
    await ra.done;
  } finally {
    tmp.remove();
  }
});

test.run();
