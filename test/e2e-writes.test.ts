// Writes over MQTT are bounded, end to end: a real Mosquitto, the gateway CLI
// and a serial instrument on a socat pty. Oversized, deeply nested and
// non-finite writes are refused with a clear result and never reach the
// device; a burst of writes logs a bounded number of lines that still
// account for every write.
import { createReadStream } from 'node:fs';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gatewayConfig, serialDevice, setup, waitForState } from './helpers/e2e.js';
import { requirePeer, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');

const TAGS = { mode: { writable: true, type: 'string' }, sp: { writable: true, type: 'number', min: 0, max: 100_000 } };
type Result = { topic: string; ok: boolean; error?: string; sent?: boolean };

/** everything the instrument end of the pty receives (read continuously, so the gateway's writes never block) */
function listen(path: string): { text: () => string; close: () => void } {
  let received = '';
  const rs = createReadStream(path);
  rs.on('data', (d) => { received += d.toString(); });
  rs.on('error', () => {});
  return { text: () => received, close: () => rs.destroy() };
}

async function resultsClient(url: string) {
  const client = await mqtt.connectAsync(url);
  const results: Result[] = [];
  client.on('message', (topic, payload) => results.push({ topic, ...(JSON.parse(payload.toString()) as { ok: boolean; error?: string }) }));
  await client.subscribeAsync('edgegate/gw1/devices/+/set/+/result', { qos: 1 });
  return { client, results };
}

if (enabled) {
  test('oversized, deeply nested and non-finite writes are refused with a clear result; nothing reaches the device', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const inst1 = serialDevice('inst1', e.pty!.device, { write_template: 'SET {tag} {value}\n', tags: TAGS });
      // a device configured for large writes: its payloads are checked before the device is even reached
      const big = serialDevice('big', `${e.dir}/no-such-port`, { write_template: 'SET {tag} {value}\n', max_write_bytes: '1MiB', tags: TAGS });
      e.start(gatewayConfig(e.broker!.url, e.dir, [inst1, big]));
      await waitForState(sub, 'inst1', 'connected');
      const line = listen(e.pty!.instrument);
      const { client, results } = await resultsClient(e.broker!.url);
      try {
        const write = async (device: string, tag: string, payload: string): Promise<Result> => {
          const before = results.length;
          await client.publishAsync(`edgegate/gw1/devices/${device}/set/${tag}`, payload, { qos: 1 });
          await waitFor(() => results.length > before, 10_000, `the result of a ${payload.length}-byte write to ${device}/${tag}`);
          return results[before]!;
        };
        // clearing a retained write (an empty payload, retained or not) is no write: no result for it
        await client.publishAsync('edgegate/gw1/devices/inst1/set/sp', '', { qos: 1, retain: true });
        await client.publishAsync('edgegate/gw1/devices/inst1/set/sp', '', { qos: 1 });
        const typed = await write('inst1', 'sp', '"x"');
        assert.match(String(typed.error), /expected a value of type number/, 'the first result is the next real write\'s');
        assert.is(results.length, 1, 'the empty payloads got no result');
        const huge = await write('inst1', 'mode', `"${'x'.repeat(1_000_000)}"`);
        assert.equal(huge, { topic: 'edgegate/gw1/devices/inst1/set/mode/result', ok: false, error: 'the payload is 1000002 bytes, more than max_write_bytes (1024) allows' });
        // within the payload limit, but the filled-in template is not
        const long = await write('inst1', 'mode', `"${'y'.repeat(1020)}"`);
        assert.equal(long.error, 'the command would be 1030 bytes, more than max_write_bytes (1024) allows');
        const deep = await write('big', 'mode', '['.repeat(200_000) + ']'.repeat(200_000));
        assert.equal(deep.error, 'the payload is nested too deeply (a write is one value)');
        const deepSmall = await write('inst1', 'sp', '{"value":'.repeat(100) + '1' + '}'.repeat(100));
        assert.equal(deepSmall.error, 'the payload is nested too deeply (a write is one value)');
        const inf = await write('inst1', 'sp', '1e400');
        assert.equal(inf.error, 'the value is not a finite number');
        const ok = await write('inst1', 'sp', '12.5');
        assert.is(ok.ok, true);
        // writes go to the line in the order they were handled: the good one came last
        await waitFor(() => line.text().includes('SET sp 12.5\n'), 5000, 'the good write at the instrument');
        assert.is(line.text(), 'SET sp 12.5\n', 'nothing of the refused writes reached the device');
      } finally {
        line.close();
        await client.endAsync();
      }
    } finally {
      await e.cleanup();
    }
  });

  test('MQTT 5: a retained write published while the gateway is connected is refused (retain-as-published); a plain one is carried out', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const inst1 = serialDevice('inst1', e.pty!.device, { write_template: 'SET {tag} {value}\n', tags: TAGS });
      e.start(gatewayConfig(e.broker!.url, e.dir, [inst1], { mqtt: { url: e.broker!.url, qos: 1, protocol_version: 5 } }));
      await waitForState(sub, 'inst1', 'connected');
      const line = listen(e.pty!.instrument);
      const { client, results } = await resultsClient(e.broker!.url);
      try {
        // the broker delivers it to the live subscription at once; without retain-as-published it would arrive unflagged
        await client.publishAsync('edgegate/gw1/devices/inst1/set/sp', '7', { qos: 1, retain: true });
        await waitFor(() => results.length >= 1, 10_000, 'the result of the retained write');
        assert.equal(results[0], { topic: 'edgegate/gw1/devices/inst1/set/sp/result', ok: false, error: 'retained writes are ignored: publish the write without the retain flag' });
        await client.publishAsync('edgegate/gw1/devices/inst1/set/sp', '', { qos: 1, retain: true }); // cleared: no result
        await client.publishAsync('edgegate/gw1/devices/inst1/set/sp', '8', { qos: 1 });
        await waitFor(() => results.length >= 2, 10_000, 'the result of the plain write');
        // a serial write is confirmed as sent: the instrument did not say it took it
        assert.equal(results[1], { topic: 'edgegate/gw1/devices/inst1/set/sp/result', ok: true, sent: true });
        assert.is(results.length, 2, 'the cleared retained write got no result');
        await waitFor(() => line.text().includes('SET sp 8\n'), 5000, 'the plain write at the instrument');
        assert.is(line.text(), 'SET sp 8\n', 'the retained write never reached the device');
      } finally {
        line.close();
        await client.endAsync();
      }
    } finally {
      await e.cleanup();
    }
  });

  test('a burst of 5,000 writes logs a bounded number of lines, with the count of those held back', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device, { write_template: 'SET {tag} {value}\n', tags: TAGS })]));
      await waitForState(sub, 'inst1', 'connected');
      const line = listen(e.pty!.instrument);
      const client = await mqtt.connectAsync(e.broker!.url);
      try {
        const started = Date.now();
        // every fifth write is refused (a string for a number tag)
        for (let i = 1; i <= 5000; i++) client.publish('edgegate/gw1/devices/inst1/set/sp', i % 5 === 0 ? '"abc"' : String(i), { qos: 1 });
        const writeLines = () => gw.logs().filter((l) => l.msg === 'write' || l.msg === 'writes held back from the log');
        // a 'write' line is one write plus those held back before it; the closing line, only those held back
        const accounted = (ok: boolean) => writeLines().filter((l) => l.ok === ok)
          .reduce((n, l) => n + (l.msg === 'write' ? 1 : 0) + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
        // a good write may also be refused while MAX_PENDING_WRITES wait for the line: accounted all the same
        await waitFor(() => accounted(true) + accounted(false) === 5000, 60_000, 'every write accounted for in the log');
        const elapsed = Date.now() - started;
        assert.ok(accounted(false) >= 1000, 'the wrongly typed writes are refused');
        const sent = () => line.text().split('\n').filter((l) => l.startsWith('SET sp ')).length;
        await waitFor(() => sent() === accounted(true), 5000, `every accepted write at the instrument (${accounted(true)})`);
        const lines = writeLines();
        // per outcome: one line per 10 s at most, and one for the count held back at the end
        const bound = 2 * (2 + Math.ceil(elapsed / 10_000));
        assert.ok(lines.length <= bound, `${lines.length} log lines for 5,000 writes (at most ${bound})`);
        const refused = lines.find((l) => l.ok === false && l.msg === 'write');
        assert.match(String(refused?.error), /expected a value of type number/, 'a refused write is still visible with its reason');
        console.log(`# 5,000 writes in ${elapsed} ms: ${lines.length} write log lines, ${gw.logs().length} lines in all`);
      } finally {
        line.close();
        await client.endAsync();
      }
    } finally {
      await e.cleanup();
    }
  });
}

test.run();
