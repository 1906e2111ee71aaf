// The Sparkplug B edge node across a reload (Gateway.reload, as SIGHUP does
// it), its own metrics as NDATA, and a device without a tag list: every
// message decoded, against a real Mosquitto.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialDevice } from './helpers/e2e.js';
import { cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer } from './helpers/peers.js';
import { seqBreaks, sparkplugRig, type SpMessage } from './helpers/sparkplug.js';

const enabled = requirePeer('mosquitto', 'the edge node talks to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const cleanups = cleanupsAfterEach(test);
const BATCH = { batch: { max_readings: 1, max_wait: '200ms' } };

const aliasOf = (birth: SpMessage, name: string) => birth.metrics.find((m) => m.name === name)?.alias;
const verbsOf = (msgs: SpMessage[], device: string) => msgs.filter((m) => m.device === device).map((m) => m.verb);
const dataValues = (msgs: SpMessage[], device: string, alias: number) =>
  msgs.filter((m) => m.verb === 'DDATA' && m.device === device).flatMap((m) => m.metrics.filter((x) => x.alias === alias).map((x) => x.value));

if (enabled) {
  test('reload: a changed map is DDEATH then a DBIRTH with new aliases used by the DDATA after it; a removed device gets DDEATH; an unchanged one is not reborn', async () => {
    const tags = { n: { type: 'integer' } };
    const devices = ([a, b, c]: string[]) => [serialDevice('a', a!, { tags }), serialDevice('b', b!, { tags }), serialDevice('c', c!, { tags })];
    const r = await sparkplugRig(cleanups, { ports: 3, devices, extra: BATCH });
    const [ia, ib] = await r.start();
    const { host } = r;
    await host.waitFor((m) => m.filter((x) => x.verb === 'DBIRTH').length === 3, 15_000, 'three DBIRTH');
    const births = new Map(host.of('DBIRTH').map((m) => [m.device!, m]));
    const oldAliases = new Set([...host.of('NBIRTH')[0]!.metrics, ...host.of('DBIRTH').flatMap((m) => m.metrics)].map((m) => m.alias).filter((x) => x !== undefined));
    ib!.write('n=1\n');
    await host.waitFor((m) => dataValues(m, 'b', aliasOf(births.get('b')!, 'n')!).includes(1), 15_000, 'b data before');

    const before = host.messages.length;
    const ports = r.ptys.map((p) => p.device);
    const changed = devices(ports).slice(0, 2);
    changed[1] = serialDevice('b', ports[1]!, { tags: { n: { type: 'integer' }, m: { type: 'number' } } });
    const result = await r.gw.reload(r.parse(changed));
    assert.equal([result.kept, result.restarted, result.removed], [['a'], ['b'], ['c']]);
    await host.waitFor((m) => m.slice(before).some((x) => x.verb === 'DBIRTH' && x.device === 'b') && m.slice(before).some((x) => x.verb === 'DDEATH' && x.device === 'c'), 15_000, 'b reborn, c dead');
    const after = host.messages.slice(before);
    assert.equal(verbsOf(after, 'c'), ['DDEATH']);
    assert.equal(verbsOf(after, 'b'), ['DDEATH', 'DBIRTH']);
    const reborn = after.find((m) => m.verb === 'DBIRTH' && m.device === 'b')!;
    assert.equal(reborn.metrics.map((m) => [m.name, m.type]), [['n', 'Int64'], ['m', 'Double']]);
    for (const m of reborn.metrics) assert.not.ok(oldAliases.has(m.alias!), `${m.name}: a new alias, none used before in the node`);

    ib!.write('n=5\nm=2.5\n');
    ia!.write('n=9\n');
    const n = aliasOf(reborn, 'n')!;
    await host.waitFor((m) => dataValues(m, 'b', aliasOf(reborn, 'm')!).includes(2.5) && dataValues(m, 'a', aliasOf(births.get('a')!, 'n')!).includes(9), 15_000, 'data after the reload');
    assert.equal(dataValues(host.messages.slice(before), 'b', n), [5], 'b by its new alias');
    assert.equal(dataValues(host.messages.slice(before), 'b', aliasOf(births.get('b')!, 'n')!), [], 'never by its old one');
    assert.equal(verbsOf(host.messages.slice(before), 'a'), ['DDATA'], 'a: no DDEATH, no DBIRTH, its aliases unchanged');
    assert.equal(seqBreaks(host.messages), []);
    await r.stop();
  });

  test('NDATA: the gateway metrics at stats_interval (a reloaded one too) when they change, by alias, with seq and timestamp', async () => {
    const r = await sparkplugRig(cleanups, { ports: 1, devices: ([p]) => [serialDevice('s1', p!, { tags: { n: { type: 'integer' } } })], extra: { ...BATCH, stats_interval: '1h' } });
    const [instrument] = await r.start();
    const { host } = r;
    await host.waitFor((m) => m.some((x) => x.verb === 'DBIRTH'), 15_000, 'births');
    const nbirth = host.of('NBIRTH')[0]!;
    // a new stats_interval applies to NDATA at once, as to the JSON stats
    await r.gw.reload(r.parse([serialDevice('s1', r.pty.device, { tags: { n: { type: 'integer' } } })], { ...BATCH, stats_interval: '200ms' }));
    instrument!.write('n=1\nn=2\nn=3\n');
    const rate = aliasOf(nbirth, 'Gateway/Readings per second')!;
    const rates = () => host.of('NDATA').flatMap((m) => m.metrics.filter((x) => x.alias === rate).map((x) => x.value as number));
    await host.waitFor(() => rates().some((v) => v > 0) && rates().at(-1) === 0, 15_000, 'the rate up, then back to 0');

    const state = new Map(nbirth.metrics.filter((m) => m.alias !== undefined).map((m) => [m.alias!, m.value]));
    for (const d of host.of('NDATA')) {
      assert.is(d.topic, 'spBv1.0/edgegate/NDATA/gw1');
      assert.ok(d.timestamp! >= nbirth.timestamp!, 'payload timestamp');
      assert.is(d.datatypes, 0, 'no datatype');
      assert.ok(d.metrics.length > 0);
      for (const m of d.metrics) {
        assert.is(m.name, undefined, 'by alias only');
        assert.ok(state.has(m.alias!), `alias ${String(m.alias)} is one of the NBIRTH`);
        assert.is.not(m.value, state.get(m.alias!), 'only metrics that changed');
        assert.is(m.timestamp, d.timestamp);
        state.set(m.alias!, m.value);
      }
    }
    const version = aliasOf(nbirth, 'Properties/Version');
    assert.not.ok(host.of('NDATA').some((d) => d.metrics.some((m) => m.alias === version)), 'the version never changes');
    assert.is(host.of('DBIRTH').length, 1, 'the unchanged device is not reborn by the reload');
    assert.equal(seqBreaks(host.messages), []);
    await r.stop();
  });

  test('a device without a tag list: a key its DBIRTH lacks is born (DBIRTH again, earlier aliases kept) before its DDATA', async () => {
    const r = await sparkplugRig(cleanups, { ports: 1, devices: ([p]) => [serialDevice('s1', p!)], extra: BATCH });
    const [instrument] = await r.start();
    const { host } = r;
    await host.waitFor((m) => m.some((x) => x.verb === 'DBIRTH'), 15_000, 'births');
    assert.equal(host.of('DBIRTH')[0]!.metrics, [], 'no tag seen yet');
    instrument!.write('x=1\n');
    await host.waitFor((m) => m.some((x) => x.verb === 'DDATA'), 15_000, 'x');
    instrument!.write('y=hello\n');
    await host.waitFor((m) => m.filter((x) => x.verb === 'DDATA').length === 2, 15_000, 'y');
    assert.equal(host.messages.filter((m) => m.device === 's1').map((m) => m.verb), ['DBIRTH', 'DBIRTH', 'DDATA', 'DBIRTH', 'DDATA']);
    const [, second, third] = host.of('DBIRTH');
    assert.equal(second!.metrics.map((m) => [m.name, m.type, m.value]), [['x', 'Double', 1]]);
    assert.equal(third!.metrics.map((m) => [m.name, m.type, m.value]), [['x', 'Double', 1], ['y', 'String', 'hello']]);
    assert.is(aliasOf(third!, 'x'), aliasOf(second!, 'x'), 'x keeps its alias');
    const [dx, dy] = host.of('DDATA');
    assert.equal(dx!.metrics.map((m) => [m.alias, m.value]), [[aliasOf(second!, 'x'), 1]]);
    assert.equal(dy!.metrics.map((m) => [m.alias, m.value]), [[aliasOf(third!, 'y'), 'hello']]);
    assert.equal(seqBreaks(host.messages), []);
    await r.stop();
  });

  test('an untyped tag is born String before any value; its first number gets a DBIRTH with Double and a new alias before its DDATA', async () => {
    const tags = { n: { type: 'integer' }, u: {} };
    const r = await sparkplugRig(cleanups, { ports: 1, devices: ([p]) => [serialDevice('s1', p!, { tags })], extra: BATCH });
    const [instrument] = await r.start();
    const { host } = r;
    await host.waitFor((m) => m.some((x) => x.verb === 'DBIRTH'), 15_000, 'births');
    const first = host.of('DBIRTH')[0]!;
    assert.equal(first.metrics.map((m) => [m.name, m.type, m.value]), [['n', 'Int64', null], ['u', 'String', null]]);
    instrument!.write('u=5\n');
    await host.waitFor((m) => m.some((x) => x.verb === 'DDATA'), 15_000, 'u=5');
    instrument!.write('u=6\n');
    await host.waitFor((m) => m.filter((x) => x.verb === 'DDATA').length === 2, 15_000, 'u=6');
    assert.equal(host.messages.filter((m) => m.device === 's1').map((m) => m.verb), ['DBIRTH', 'DBIRTH', 'DDATA', 'DDATA']);
    const second = host.of('DBIRTH')[1]!;
    assert.equal(second.metrics.map((m) => [m.name, m.type, m.value]), [['n', 'Int64', null], ['u', 'Double', 5]]);
    assert.is(aliasOf(second, 'n'), aliasOf(first, 'n'), 'n keeps its alias');
    assert.is.not(aliasOf(second, 'u'), aliasOf(first, 'u'), 'u, born again with another datatype, gets a new alias');
    assert.equal(host.of('DDATA').flatMap((m) => m.metrics.map((x) => [x.alias, x.type, x.value])), [[aliasOf(second, 'u'), 'Double', 5], [aliasOf(second, 'u'), 'Double', 6]]);
    assert.equal(seqBreaks(host.messages), []);
    await r.stop();
  });
}

test.run();
