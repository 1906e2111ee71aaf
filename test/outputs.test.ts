// The seam between the core and its outputs: every output sees each reading,
// batch and status; one that throws (or cannot start) costs the others
// nothing; the context gives the latest values and the write path with its checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayContext, Output } from '../gateway/outputs/output.js';
import type { Batch, Reading } from '../gateway/types.js';
import { brokerAndPty, gatewayConfig, serialDevice } from './helpers/e2e.js';
import { captureLog, cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer, waitFor } from './helpers/peers.js';
import { openInstrument } from './helpers/socat.js';

const enabled = requirePeer('mosquitto', 'the gateway publishes to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const cleanups = cleanupsAfterEach(test);

class Recorder implements Output {
  readonly name = 'recorder';
  ctx: GatewayContext | undefined;
  readings: Array<[string, Reading]> = [];
  batches: Batch[] = [];
  statuses: Array<[string, string]> = [];
  stopped = false;
  async start(ctx: GatewayContext) { this.ctx = ctx; }
  async stop() { this.stopped = true; }
  reading(device: string, r: Reading) { this.readings.push([device, r]); }
  batch(b: Batch) { this.batches.push(b); }
  status(device: string, s: { state: string }) { this.statuses.push([device, s.state]); }
}

class Broken implements Output {
  readonly name = 'broken';
  /** hooks called, stop included */
  calls = 0;
  constructor(private readonly failStart: boolean) {}
  async start() { if (this.failStart) throw new Error('cannot bind'); }
  async stop() { this.calls++; throw new Error('stop failed'); }
  reading(): void { this.calls++; throw new Error('reading failed'); }
  batch(): void { this.calls++; throw new Error('batch failed'); }
  status(): void { this.calls++; throw new Error('status failed'); }
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the write was not refused');
}

if (enabled) {
  test('every output sees readings, batches and statuses; a throwing one and one that cannot start cost the others nothing', async () => {
    const { dir, broker, pty } = await brokerAndPty(cleanups);
    const text = JSON.stringify(gatewayConfig(broker.url, dir, [serialDevice('s1', pty.device, {
      write_template: 'SET {tag} {value}\n',
      tags: { n: { type: 'integer' }, sp: { type: 'number', writable: true, max: 10 } },
    })]));
    const loaded = parseConfigText(text, 'config.json');
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
    if (!loaded.ok) return;
    const { log, lines } = captureLog();
    const rec = new Recorder();
    const unstarted = new Broken(true);
    const gw = new Gateway(loaded.config, { log, outputs: [new Broken(false), rec, unstarted] });
    let stopped = false;
    cleanups.push(async () => { if (!stopped) await gw.stop(); });
    await gw.start();
    const instrument = await openInstrument(pty.instrument);
    cleanups.push(() => instrument.close());
    await waitFor(() => rec.statuses.some(([d, s]) => d === 's1' && s === 'connected'), 20_000, 'the recorder saw s1 connected');
    assert.equal(rec.statuses[0], ['s1', 'connecting']);
    instrument.write('n=1\nn=2\nn=3\n');
    await waitFor(() => rec.batches.length > 0 && rec.readings.length === 3, 15_000, 'three readings and a batch');
    assert.equal(rec.readings.map(([d, r]) => [d, r.tag, r.value]), [['s1', 'n', 1], ['s1', 'n', 2], ['s1', 'n', 3]]);
    assert.is(rec.batches[0]!.device, 's1');
    const ctx = rec.ctx!;
    assert.is(ctx.latest('s1')?.get('n')?.value, 3);
    assert.equal(ctx.devices().map((d) => [d.id, d.status.state, d.counters.readings_out]), [['s1', 'connected', 3]]);
    assert.is(ctx.stats().devices.s1?.readings_in, 3);
    await waitFor(() => ctx.broker().connected, 15_000, 'the broker connection seen by outputs');
    assert.equal(ctx.health(), { ok: true });

    // the write path: checks refuse, a good value reaches the line
    assert.match(await refusal(ctx.write('s1', 'sp', 11)), /max/);
    assert.match(await refusal(ctx.write('s1', 'n', 1)), /not writable/);
    assert.match(await refusal(ctx.write('nope', 'sp', 1)), /unknown device/);
    await ctx.write('s1', 'sp', 7.5);
    await waitFor(() => instrument.received.includes('\n'), 15_000, 'the write on the line');
    assert.is(instrument.received, 'SET sp 7.5\n');

    await gw.stop();
    stopped = true;
    assert.ok(rec.stopped);
    assert.equal(rec.statuses.at(-1), ['s1', 'disconnected']);
    // the broken output's failures were logged, rate limited, not thrown at the core
    const failures = lines.filter((l) => l.msg === 'output failed to handle an event');
    assert.ok(failures.length >= 1 && failures.length < rec.readings.length + rec.batches.length + rec.statuses.length, `${failures.length} failure lines`);
    assert.ok(lines.some((l) => l.msg === 'output could not start; the gateway runs without it'));
    assert.ok(lines.some((l) => l.msg === 'output did not stop cleanly'));
    assert.is(unstarted.calls, 0, 'an output that could not start gets no events and no stop');
  });

  test('stop: the JSON publisher drains and disconnects while an output is still saying goodbye', async () => {
    const { dir, broker, pty } = await brokerAndPty(cleanups);
    const loaded = parseConfigText(JSON.stringify(gatewayConfig(broker.url, dir, [serialDevice('s1', pty.device)])), 'config.json');
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
    if (!loaded.ok) return;
    const { log, lines } = captureLog();
    // an output whose goodbye takes as long as the test wants
    let release = () => {};
    let stopCalled = false;
    const slow: Output = {
      name: 'slow',
      async start() {},
      stop: () => { stopCalled = true; return new Promise<void>((resolve) => { release = resolve; }); },
    };
    const gw = new Gateway(loaded.config, { log, outputs: [slow] });
    let done = false;
    cleanups.push(async () => { release(); if (!done) await gw.stop(); });
    await gw.start();
    await waitFor(() => [...gw.devices].every((d) => d.status.state === 'connected'), 20_000, 's1 connected');
    const stopping = gw.stop().then(() => { done = true; });
    await waitFor(() => stopCalled, 15_000, 'the output asked to stop');
    // one after the other, the publisher would wait for the output's goodbye first
    await waitFor(() => lines.some((l) => l.msg === 'mqtt stopped'), 15_000, 'the publisher stopped while the output is still stopping');
    assert.not.ok(done, 'the gateway waits for its outputs');
    release();
    await stopping;
    assert.ok(done);
  });
}

test.run();
