// Store-and-forward under faults, end to end (socat pty → gateway CLI →
// Mosquitto with persistence → a persistent-session subscriber): a SIGKILLed
// gateway with `durability: always`, a full buffer, damaged segments, a
// buffer dir that cannot be written, and a real filesystem that fills. Mosquitto is only ever stopped with
// SIGTERM here (see e2e-buffer-outage.test.ts for why).
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dataOf, gatewayConfig, latest, serialDevice, setup, waitForState, type Data, type Instrument, type Sub } from './helpers/e2e.js';
import { batchesOnDisk, bufferStats, delivery, figures, missing, smallFilesystem } from './helpers/e2e-buffer.js';
import { startMosquitto, type TestBroker } from './helpers/mosquitto.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const SUB = { clientId: 'e2e-buffer-faults-subscriber', clean: false } as const;

type Setup = Awaited<ReturnType<typeof setup>>;
interface Outage { e: Setup; broker: TestBroker; sub: Sub }

/**
 * A test that begins in an outage: the broker knows the subscriber's session
 * and is stopped. Everything it starts is stopped, whatever happens.
 */
function outageTest(name: string, body: (o: Outage) => Promise<void>): void {
  test(name, async () => {
    const e = await setup({ broker: false });
    let broker: TestBroker | undefined;
    try {
      broker = await startMosquitto({ persistence: true });
      const sub = await e.subscribe(broker.url, 'edgegate/#', SUB);
      await broker.stop();
      await body({ e, broker, sub });
    } finally {
      await e.cleanup();
      await broker?.stop();
    }
  });
}

/** the gateway with these buffer settings, reading `lines` wide lines while the broker is away */
async function fillInOutage(o: Outage, buffer: Record<string, unknown>, lines: number) {
  const config = gatewayConfig(o.broker.url, o.e.dir, [serialDevice('inst1', o.e.pty!.device)], { buffer: { dir: bufferDir(o.e), ...buffer } });
  const gw = o.e.start(config);
  await waitFor(() => gw.logs().some((l) => l.device === 'inst1' && l.state === 'connected'), 10_000, 'serial connected');
  await wideLines(o.e.instrument!, 1, lines);
  await sleep(800);
  return { config, gw };
}

/** lines of four readings each: bigger batches fill a small buffer sooner */
async function wideLines(instrument: Instrument, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; ) {
    let chunk = '';
    for (let k = 0; k < 40 && i <= to; k++, i++) chunk += `n=${i};T=${(20 + (i % 50) / 10).toFixed(1)};H=${40 + (i % 7)};P=1013.25\n`;
    instrument.write(chunk);
    await sleep(20);
  }
}

const bufferDir = (e: { dir: string }) => join(e.dir, 'buffer');
const segmentFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => join(dir, n));

if (enabled) {
  outageTest('SIGKILL with durability always: every batch that was written arrives after the restart', async ({ e, broker, sub }) => {
    await broker.restart();
    const config = gatewayConfig(broker.url, e.dir, [serialDevice('inst1', e.pty!.device)], { buffer: { dir: bufferDir(e), durability: 'always' } });
    const gw = e.start(config);
    await waitForState(sub, 'inst1', 'connected');
    await e.feed().run(1, 2000, 1000);
    await broker.stop();
    await waitFor(() => gw.logs().some((l) => l.msg === 'mqtt connection lost'), 5000, 'the outage noticed');
    await e.feed().run(2001, 4000, 1000);
    await sleep(500);
    gw.signal('SIGKILL');
    await gw.exited;
    const written = batchesOnDisk(bufferDir(e));
    assert.ok(written.length > 0, 'batches on disk');
    const lastWritten = Math.max(...written.flatMap((b) => b.readings.map((r) => r.value as number)));

    e.start(config);
    await broker.restart();
    const arrived = () => new Map(dataOf(sub, 'inst1').map((b) => [b.seq, JSON.stringify(b)]));
    await waitFor(() => written.every((b) => arrived().has(b.seq)), 30_000, `the ${written.length} batches written before the kill`, 100);
    for (const b of written) assert.is(arrived().get(b.seq), JSON.stringify(b), `batch ${b.seq} as written`);
    const d = delivery(dataOf(sub, 'inst1'));
    figures('SIGKILL with durability always', {
      readings_sent: 4000, last_value_written: lastWritten, batches_on_disk: written.length, messages: d.messages, duplicates: d.duplicates, lost: missing(d.values, lastWritten).length,
    });
    assert.equal(missing(d.values, lastWritten), [], 'nothing read before the last written batch is missing');
    assert.equal({ conflicting: d.conflicting, repeatedValues: d.repeatedValues, outOfOrder: d.outOfOrder }, { conflicting: 0, repeatedValues: 0, outOfOrder: 0 });
  });

  outageTest('max_size reached: the oldest batches are dropped and counted, the newest delivered in order', async (o) => {
    const { e, broker, sub } = o;
    const { gw } = await fillInOutage(o, { max_size: '256KiB' }, 5000);
    const onDisk = segmentFiles(bufferDir(e)).reduce((n, f) => n + statSync(f).size, 0);
    assert.ok(onDisk <= 256 * 1024, `${onDisk} bytes on disk`);
    await broker.restart();
    await waitFor(() => delivery(dataOf(sub, 'inst1')).values.includes(5000), 20_000, 'the newest value');
    await waitFor(() => bufferStats(sub)?.batches === 0, 10_000, 'the buffer empty again');
    const d = delivery(dataOf(sub, 'inst1'));
    const s = bufferStats(sub)!;
    const created = Math.max(...dataOf(sub, 'inst1').map((b) => b.seq));
    figures('max_size 256 KiB', { readings_sent: 20_000, batches_created: created, dropped_batches: s.dropped_batches, delivered_batches: d.batches, duplicates: d.duplicates });
    assert.ok(s.dropped_batches > 0, 'dropped');
    assert.is(s.dropped_batches + d.batches, created, 'every batch delivered or counted as dropped');
    const first = d.values[0]!;
    assert.ok(first > 1, 'the oldest went');
    assert.equal(d.values, Array.from({ length: 5001 - first }, (_, i) => first + i), 'the newest, complete and in order');
    assert.is(gw.logs().filter((l) => String(l.msg).includes('disk buffer full')).length, 1, 'warned once');
  });

  outageTest('a truncated and a corrupted segment: the rest delivered, the damage counted', async (o) => {
    const { e, broker, sub } = o;
    const { config, gw } = await fillInOutage(o, { max_size: '1MiB' }, 3000);
    assert.is((await gw.stop()).code, 0);
    const files = segmentFiles(bufferDir(e));
    assert.ok(files.length >= 2, `${files.length} segments`);
    const before = batchesOnDisk(bufferDir(e));
    // a power cut in the middle of the last write, and a flipped byte in the first segment
    const last = files[files.length - 1]!;
    truncateSync(last, statSync(last).size - 5);
    const first = readFileSync(files[0]!);
    const at = first.indexOf('"seq":3,');
    first[at + 2] = 0x21;
    writeFileSync(files[0]!, first);
    const damaged = new Set([3, before[before.length - 1]!.seq]);
    const expected = before.filter((b) => !damaged.has(b.seq));

    const gw2 = e.start(config);
    await waitFor(() => gw2.logs().some((l) => l.msg === 'disk buffer recovered'), 10_000, 'recovered');
    await broker.restart();
    await waitFor(() => delivery(dataOf(sub, 'inst1')).batches >= expected.length, 20_000, `${expected.length} batches`);
    await waitFor(() => bufferStats(sub)?.batches === 0, 10_000, 'the buffer empty again');
    const got = new Map(dataOf(sub, 'inst1').map((b: Data) => [b.seq, JSON.stringify(b)]));
    for (const b of expected) assert.is(got.get(b.seq), JSON.stringify(b), `batch ${b.seq}`);
    for (const seq of damaged) assert.not.ok(got.has(seq), `damaged batch ${seq} is not sent`);
    const s = bufferStats(sub)!;
    figures('damaged segments', { batches_on_disk: before.length, damaged_records: s.damaged_records, delivered: got.size, lost_beyond_damage: expected.filter((b) => !got.has(b.seq)).length });
    assert.is(s.damaged_records, 2);
    assert.ok(gw2.logs().some((l) => l.msg === 'disk buffer: damaged records skipped' && l.damaged_records === 2), 'logged');
  });

  test('a disk that fills (a 3 MiB tmpfs) in an outage: delivery resumes when the broker returns, nothing believed on disk that is not, mode and status recover', async () => {
    const fs = smallFilesystem('3m', 'the disk buffer on a filesystem that really fills');
    if (!fs) return;
    const e = await setup({ broker: false });
    let broker: TestBroker | undefined;
    try {
      broker = await startMosquitto({ persistence: true });
      const sub = await e.subscribe(broker.url, 'edgegate/#', SUB);
      await broker.stop();
      const config = gatewayConfig(broker.url, e.dir, [serialDevice('inst1', e.pty!.device)], { buffer: { dir: join(fs.dir, 'buffer'), max_size: '8MiB' } });
      const gw = e.start(config);
      await waitFor(() => gw.logs().some((l) => l.device === 'inst1' && l.state === 'connected'), 10_000, 'serial connected');
      // wide lines (8,000 readings/s) until the disk is full and then memory too: the oldest in memory are dropped
      const full = () => gw.logs().find((l) => l.msg === 'disk buffer unusable: batches are kept in memory (bounded) until it works again');
      let droppingSince: number | undefined;
      let last = 0;
      while (droppingSince === undefined || Date.now() - droppingSince < 2000) {
        await wideLines(e.instrument!, last + 1, last + 400);
        last += 400;
        if (droppingSince === undefined && gw.logs().some((l) => l.msg === 'disk buffer full: dropping the oldest batches')) droppingSince = Date.now();
        assert.ok(last < 2_000_000, 'memory never filled');
      }
      assert.match(String(full()?.err), /ENOSPC/);

      await broker.restart();
      await waitFor(() => delivery(dataOf(sub, 'inst1')).values.includes(last), 60_000, `the last value ${last}`, 100);
      await waitFor(() => bufferStats(sub)?.batches === 0, 30_000, 'the buffer empty again', 100);
      // the replay frees the disk: the probe finds it usable, with no write needed
      await waitFor(() => bufferStats(sub)?.mode === 'disk', 20_000, 'P/stats buffer.mode disk again', 100);
      await waitFor(() => latest(sub, 'edgegate/gw1/status')?.error === undefined, 5000, 'P/status without the error');
      const d = delivery(dataOf(sub, 'inst1'));
      const s = bufferStats(sub)!;
      const created = Math.max(...dataOf(sub, 'inst1').map((b) => b.seq));
      figures('a 3 MiB tmpfs filled in an outage', {
        lines_sent: last, batches_created: created, batches_delivered: d.batches, dropped_batches: s.dropped_batches,
        damaged_records: s.damaged_records, duplicates: d.duplicates,
      });
      assert.is(s.damaged_records, 0, 'nothing was believed on disk that was not there');
      assert.is(s.error, undefined);
      assert.ok(s.dropped_batches > 0, 'memory filled too');
      assert.is(s.dropped_batches + d.batches, created, 'every batch delivered or counted as dropped');
      assert.is(d.values[0], 1, 'what reached the disk first is kept');
      assert.equal({ conflicting: d.conflicting, repeatedValues: d.repeatedValues, outOfOrder: d.outOfOrder }, { conflicting: 0, repeatedValues: 0, outOfOrder: 0 });
      assert.not.ok(gw.logs().some((l) => /missing|skipped|cannot be read/.test(String(l.msg))), 'no record skipped');
      assert.ok(gw.logs().some((l) => l.msg === 'disk buffer usable again'), 'the recovery logged');
      assert.is((await gw.stop()).code, 0);
    } finally {
      await e.cleanup();
      await broker?.stop();
      fs.unmount();
    }
  });

  test('an unwritable buffer dir: the gateway keeps running, in memory, and says why', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const notADir = join(e.dir, 'not-a-dir');
      writeFileSync(notADir, 'x');
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)], { buffer: { dir: join(notADir, 'buffer') } }));
      await waitForState(sub, 'inst1', 'connected');
      await waitFor(() => gw.logs().some((l) => l.msg === 'buffer dir unusable: batches wait in memory only (bounded), and are lost at stop' && /ENOTDIR/.test(String(l.err))), 5000, 'a clear log line');
      await waitFor(() => /ENOTDIR/.test(String(latest(sub, 'edgegate/gw1/status')?.error ?? '')), 5000, 'P/status says why');
      await waitFor(() => bufferStats(sub)?.mode === 'memory', 5000, 'P/stats says memory');
      assert.match(bufferStats(sub)!.error ?? '', /ENOTDIR/);
      await e.feed().run(1, 500, 1000);
      await waitFor(() => delivery(dataOf(sub, 'inst1')).values.length >= 500, 10_000, 'data flows');
      assert.equal(missing(delivery(dataOf(sub, 'inst1')).values, 500), []);
      assert.is((await gw.stop()).code, 0);
    } finally {
      await e.cleanup();
    }
  });
}

test.run();
