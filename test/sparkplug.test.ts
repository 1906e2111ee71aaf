// The Sparkplug B edge node against a real Mosquitto, every message decoded
// with the protobuf decoder: births and deaths in order, DDATA by the aliases
// of the DBIRTH, seq wrapping over 300 messages, rebirth, commands through
// the write path, DDEATH on a device fault, and the primary host's STATE
// holding births and data back, replayed as historical.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeData } from '../gateway/outputs/sparkplug/payload.js';
import { serialDevice } from './helpers/e2e.js';
import { collect } from './helpers/mosquitto.js';
import { cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer, waitFor } from './helpers/peers.js';
import { seqBreaks, sparkplugRig, type SpMessage } from './helpers/sparkplug.js';

const enabled = requirePeer('mosquitto', 'the edge node talks to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const cleanups = cleanupsAfterEach(test);
const NODE = 'spBv1.0/edgegate/%s/gw1';
const topic = (verb: string, device?: string) => NODE.replace('%s', verb) + (device ? `/${device}` : '');

async function rig(sparkplug: Record<string, unknown>, batch: Record<string, unknown> = { max_readings: 1, max_wait: '200ms' }) {
  const r = await sparkplugRig(cleanups, {
    ports: 1,
    devices: ([port]) => [serialDevice('s1', port!, {
      write_template: 'SET {tag} {value}\n',
      tags: { n: { type: 'integer' }, t: { type: 'number' }, sp: { type: 'number', writable: true, max: 10 }, k: { type: 'integer', writable: true } },
    })],
    sparkplug,
    extra: { batch },
  });
  return { ...r, start: async () => (await r.start())[0]! };
}

const aliasOf = (birth: SpMessage, name: string) => birth.metrics.find((m) => m.name === name)?.alias;
const values = (msgs: SpMessage[], alias: number) => msgs.flatMap((m) => m.metrics.filter((x) => x.alias === alias).map((x) => x.value));

if (enabled) {
  test('births, DDATA by alias with seq wrapping over 300 messages, rebirth, DCMD through the write checks, DDEATH on a fault, NDEATH at stop', async () => {
    const r = await rig({});
    const instrument = await r.start();
    const { host } = r;
    await host.waitFor((m) => m.some((x) => x.verb === 'DBIRTH'), 15_000, 'NBIRTH and DBIRTH');
    const nbirth = host.of('NBIRTH')[0]!;
    assert.is(host.messages[0]!.verb, 'NBIRTH', 'the first message is NBIRTH');
    assert.is(nbirth.topic, topic('NBIRTH'));
    assert.is(nbirth.seq, 0);
    assert.is(nbirth.qos, 0);
    assert.is(nbirth.retain, false);
    assert.equal(nbirth.metrics.find((m) => m.name === 'bdSeq'), { name: 'bdSeq', type: 'Int64', value: 0, timestamp: nbirth.metrics[0]!.timestamp });
    const rebirth = nbirth.metrics.find((m) => m.name === 'Node Control/Rebirth')!;
    assert.equal([rebirth.type, rebirth.value, rebirth.alias], ['Boolean', false, undefined]);
    for (const m of nbirth.metrics) if (m.name !== 'Node Control/Rebirth' && m.name !== 'bdSeq') assert.ok(m.alias !== undefined, `${m.name} has an alias`);
    assert.ok(nbirth.metrics.some((m) => m.name === 'Gateway/Readings per second'));
    const dbirth = host.of('DBIRTH', 's1')[0]!;
    assert.is(dbirth.seq, 1);
    assert.equal(dbirth.metrics.map((m) => [m.name, m.type, m.value]), [['n', 'Int64', null], ['t', 'Double', null], ['sp', 'Double', null], ['k', 'Int64', null]]);
    const aliases = dbirth.metrics.map((m) => m.alias!);
    assert.is(new Set([...aliases, ...nbirth.metrics.map((m) => m.alias).filter((a) => a !== undefined)]).size, aliases.length + nbirth.metrics.length - 2, 'aliases unique across the node');

    // 300 readings, one batch each: 300 DDATA, seq wraps past 255
    let text = '';
    for (let i = 1; i <= 300; i++) text += `n=${i}\n`;
    instrument.write(text);
    const n = aliasOf(dbirth, 'n')!;
    await host.waitFor((m) => values(m.filter((x) => x.verb === 'DDATA'), n).length >= 300, 30_000, '300 DDATA');
    const ddata = host.of('DDATA', 's1');
    assert.equal(values(ddata, n), Array.from({ length: 300 }, (_, i) => i + 1), 'every reading, in order');
    assert.is(nbirth.datatypes, nbirth.metrics.length, 'births carry every datatype');
    assert.is(dbirth.datatypes, dbirth.metrics.length);
    for (const d of ddata) {
      assert.is(d.datatypes, 0, 'DDATA carries no datatype (payloads-metric-datatype-not-req)');
      for (const m of d.metrics) {
        assert.is(m.name, undefined, 'DDATA carries no names');
        assert.ok(aliases.includes(m.alias!), `alias ${String(m.alias)} is one of the DBIRTH`);
        assert.type(m.timestamp, 'number');
        assert.is(m.isHistorical, undefined);
      }
    }
    assert.ok(host.messages.length > 256, `${host.messages.length} messages`);
    assert.equal(seqBreaks(host.messages), []);

    // NCMD rebirth: NBIRTH (same bdSeq, seq 0) and DBIRTH again, with the current value
    const before = host.messages.length;
    await host.command(topic('NCMD'), [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }]);
    await host.waitFor((m) => m.slice(before).some((x) => x.verb === 'DBIRTH'), 10_000, 'rebirth');
    const again = host.messages.slice(before);
    assert.equal(again.map((m) => m.verb).slice(0, 2), ['NBIRTH', 'DBIRTH']);
    assert.is(again[0]!.metrics.find((m) => m.name === 'bdSeq')?.value, 0);
    assert.is(again[1]!.metrics.find((m) => m.name === 'n')?.value, 300);
    assert.equal(again[1]!.metrics.map((m) => m.alias), aliases, 'the same device map keeps its aliases');

    // DCMD by name and by alias reach the line; a value the checks refuse is counted, not written
    await host.command(topic('DCMD', 's1'), [{ name: 'sp', type: 'Double', value: 7.5 }]);
    await waitFor(() => instrument.received.includes('SET sp 7.5\n'), 15_000, 'DCMD by name written');
    await host.command(topic('DCMD', 's1'), [{ name: 'sp', type: 'Double', value: 11 }]);
    await host.command(topic('DCMD', 's1'), [{ name: 'n', type: 'Int64', value: 1 }]);
    await host.command(topic('DCMD', 's1'), [{ alias: aliasOf(dbirth, 'sp')!, type: 'Double', value: 3 }]);
    await waitFor(() => instrument.received.includes('SET sp 3\n'), 15_000, 'DCMD by alias written');
    // a host may leave the datatype out of a command, as of data: the DBIRTH's one applies
    // (an Int64 travels as a uint64: only the datatype says -3 is not 2^64 - 3)
    await host.client.publishAsync(topic('DCMD', 's1'), encodeData({ timestamp: Date.now(), metrics: [{ alias: aliasOf(dbirth, 'k')!, type: 'Int64', value: -3 }] }));
    await waitFor(() => instrument.received.includes('SET k -3\n'), 15_000, 'DCMD without datatype written');
    await waitFor(() => r.output.counters.refused_commands === 2, 15_000, 'two refusals counted');
    assert.is(instrument.received, 'SET sp 7.5\nSET sp 3\nSET k -3\n');

    // the device's port vanishes: DDEATH, seq still continuous
    await r.pty.stop();
    await host.waitFor((m) => m.some((x) => x.verb === 'DDEATH'), 15_000, 'DDEATH');
    assert.is(host.of('DDEATH', 's1')[0]!.topic, topic('DDEATH', 's1'));
    await r.stop();
    await host.waitFor((m) => m.some((x) => x.verb === 'NDEATH'), 15_000, 'NDEATH at stop');
    const ndeath = host.of('NDEATH')[0]!;
    assert.is(ndeath.seq, undefined, 'NDEATH has no seq');
    assert.equal(ndeath.metrics.map((m) => [m.name, m.type, m.value]), [['bdSeq', 'Int64', 0]]);
    assert.is(ndeath.qos, 1);
    assert.equal(seqBreaks(host.messages), []);
  });

  test('primary host: no births while its STATE is offline, data waits; online: births, then the held readings as historical DDATA, then live ones', async () => {
    const r = await rig({ primary_host_id: 'scada1' }, { max_readings: 2, max_wait: '100ms' });
    const { host } = r;
    const t0 = Date.now();
    await host.state('scada1', false, t0);
    const json = await collect(r.broker.url, 'edgegate/gw1/devices/s1/data');
    cleanups.push(() => json.close());
    const instrument = await r.start();
    instrument.write('n=1\nn=2\nn=3\nn=4\nn=5\n');
    const jsonReadings = () => json.messages.flatMap((m) => (JSON.parse(m.payload) as { readings: unknown[] }).readings).length;
    await waitFor(() => jsonReadings() === 5, 10_000, 'five readings on the JSON topic');
    assert.is(host.messages.length, 0, 'nothing on Sparkplug while the primary host is offline');

    await host.state('scada1', true, t0 + 1);
    await host.waitFor((m) => values(m.filter((x) => x.verb === 'DDATA'), 1).length + values(m.filter((x) => x.verb === 'DDATA'), 2).length + values(m.filter((x) => x.verb === 'DDATA'), 3).length >= 5 || m.filter((x) => x.verb === 'DDATA').flatMap((x) => x.metrics).length >= 5, 10_000, 'historical data');
    const verbs = host.messages.map((m) => m.verb);
    assert.equal(verbs.slice(0, 2), ['NBIRTH', 'DBIRTH']);
    const dbirth = host.of('DBIRTH', 's1')[0]!;
    const n = aliasOf(dbirth, 'n')!;
    assert.is(dbirth.metrics.find((m) => m.name === 'n')?.value, 5, 'DBIRTH has the current value');
    const historical = host.of('DDATA').flatMap((m) => m.metrics);
    assert.equal(historical.map((m) => [m.alias, m.value, m.isHistorical]), [1, 2, 3, 4, 5].map((v) => [n, v, true]));
    instrument.write('n=6\n');
    await host.waitFor((m) => values(m.filter((x) => x.verb === 'DDATA'), n).includes(6), 15_000, 'live data');
    assert.is(host.of('DDATA').flatMap((m) => m.metrics).find((m) => m.value === 6)?.isHistorical, undefined, 'live data is not historical');
    assert.equal(seqBreaks(host.messages), []);

    // a stale offline STATE (older than the online one) changes nothing; a current one ends the session with NDEATH
    await host.state('scada1', false, t0);
    instrument.write('n=7\n');
    await host.waitFor((m) => values(m.filter((x) => x.verb === 'DDATA'), n).includes(7), 15_000, 'data after a stale STATE');
    assert.is(host.of('NDEATH').length, 0);
    await host.state('scada1', false, t0 + 2);
    await host.waitFor((m) => m.some((x) => x.verb === 'NDEATH'), 15_000, 'NDEATH on offline');
    assert.is(host.of('NDEATH')[0]!.metrics[0]!.value, 0);
    const births = host.of('NBIRTH').length;
    instrument.write('n=8\n');
    await waitFor(() => jsonReadings() === 8, 15_000, 'n=8 on the JSON topic');
    assert.is(host.of('NBIRTH').length, births, 'no births while offline');
    await host.state('scada1', true, t0 + 3);
    await host.waitFor((m) => values(m.filter((x) => x.verb === 'DDATA'), n).includes(8), 10_000, 'n=8 replayed');
    const last = host.of('NBIRTH').at(-1)!;
    assert.is(last.metrics.find((m) => m.name === 'bdSeq')?.value, 1, 'the new session has the next bdSeq');
    assert.is(host.of('DDATA').flatMap((m) => m.metrics).find((m) => m.value === 8)?.isHistorical, true);
    assert.equal(seqBreaks(host.messages), []);
    await r.stop();
  });

  test('a batch closed by max_bytes during an outage: every reading comes out in the historical DDATA, in order', async () => {
    // one reading fits in max_bytes, two do not: each reading closes the batch before it
    const r = await rig({ primary_host_id: 'scada1' }, { max_readings: 100, max_bytes: 150, max_wait: '300ms' });
    const { host } = r;
    const t0 = Date.now();
    await host.state('scada1', false, t0);
    const json = await collect(r.broker.url, 'edgegate/gw1/devices/s1/data');
    cleanups.push(() => json.close());
    const instrument = await r.start();
    instrument.write('n=1\nn=2\nn=3\nn=4\nn=5\n');
    const batches = () => json.messages.map((m) => (JSON.parse(m.payload) as { readings: unknown[] }).readings.length);
    await waitFor(() => batches().reduce((a, b) => a + b, 0) === 5, 15_000, 'five readings on the JSON topic');
    assert.equal(batches(), [1, 1, 1, 1, 1], 'each batch closed by the next reading (max_bytes)');
    await host.state('scada1', true, t0 + 1);
    const n = () => aliasOf(host.of('DBIRTH', 's1')[0]!, 'n')!;
    await host.waitFor((m) => m.some((x) => x.verb === 'DBIRTH') && values(m.filter((x) => x.verb === 'DDATA'), n()).length >= 5, 15_000, 'five historical readings');
    const metrics = host.of('DDATA').flatMap((m) => m.metrics);
    assert.equal(metrics.map((m) => [m.value, m.isHistorical]), [1, 2, 3, 4, 5].map((v) => [v, true]));
    await r.stop();
  });
}

test.run();
