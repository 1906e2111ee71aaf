// The edge node's last will: the gateway CLI killed with SIGKILL leaves an
// NDEATH (QoS 1, not retained) whose bdSeq is the one of its NBIRTH; the next
// start uses the next bdSeq, kept in buffer.dir.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, writeConfig } from './helpers/gateway.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer, tempDir, waitFor } from './helpers/peers.js';
import { sparkplugHost } from './helpers/sparkplug.js';

const enabled = requirePeer('mosquitto', 'the will is delivered by a real broker');
const cleanups = cleanupsAfterEach(test);

if (enabled) {
  test('kill -9: the will is NDEATH with the bdSeq of the NBIRTH; a restart counts on', async () => {
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const host = await sparkplugHost(broker.url);
    cleanups.push(() => host.close());
    const config = writeConfig(tmp.dir, {
      gateway: { id: 'gw1' }, mqtt: { url: broker.url }, buffer: { dir: `${tmp.dir}/buffer` }, sparkplug: { enabled: true }, devices: [],
    });
    const bdSeq = (verb: string, i: number) => host.of(verb)[i]?.metrics.find((m) => m.name === 'bdSeq')?.value;
    const gw = runCli(['run', '--config', config], { env: { LOG_LEVEL: 'info' } });
    cleanups.push(async () => { await gw.stop(); });
    await host.waitFor((m) => m.some((x) => x.verb === 'NBIRTH'), 20_000, 'NBIRTH');
    gw.signal('SIGKILL');
    await gw.exited;
    await host.waitFor((m) => m.some((x) => x.verb === 'NDEATH'), 10_000, 'the will');
    const will = host.of('NDEATH')[0]!;
    assert.is(bdSeq('NDEATH', 0), bdSeq('NBIRTH', 0));
    assert.is(bdSeq('NBIRTH', 0), 0);
    assert.is(will.seq, undefined);
    assert.is(will.qos, 1, 'the will is QoS 1');
    assert.is(will.retain, false);
    assert.equal(will.metrics.map((m) => [m.name, m.type]), [['bdSeq', 'Int64']]);

    const again = runCli(['run', '--config', config], { env: { LOG_LEVEL: 'info' } });
    cleanups.push(async () => { await again.stop(); });
    await host.waitFor((m) => m.filter((x) => x.verb === 'NBIRTH').length === 2, 20_000, 'NBIRTH after restart');
    assert.is(bdSeq('NBIRTH', 1), 1, 'bdSeq kept across the restart and incremented');
    const r = await again.stop();
    assert.is(r.code, 0);
    await host.waitFor((m) => m.filter((x) => x.verb === 'NDEATH').length === 2, 15_000, 'NDEATH at a clean stop');
    assert.is(bdSeq('NDEATH', 1), 1);
  });
}

test('a broker without MQTT 5 (the embedded one): the edge node goes on with MQTT 3.1.1 and is born', async () => {
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  const config = writeConfig(tmp.dir, {
    gateway: { id: 'gw1' }, mqtt: { url: 'embedded' }, buffer: { dir: `${tmp.dir}/buffer` }, sparkplug: { enabled: true }, devices: [],
  });
  const gw = runCli(['run', '--config', config], { env: { LOG_LEVEL: 'info' } });
  cleanups.push(async () => { await gw.stop(); });
  await waitFor(() => gw.logs().some((l) => l.msg === 'embedded MQTT broker listening'), 20_000, 'the embedded broker');
  const url = String(gw.logs().find((l) => l.msg === 'embedded MQTT broker listening')!.url);
  const host = await sparkplugHost(url, 'edgegate', 4);
  cleanups.push(() => host.close());
  await waitFor(() => gw.logs().some((l) => l.msg === 'sparkplug connected'), 20_000, 'the edge node connected');
  // the NBIRTH may have gone before this host subscribed: a rebirth asks for it again
  await host.command('spBv1.0/edgegate/NCMD/gw1', [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }]);
  await host.waitFor((m) => m.some((x) => x.verb === 'NBIRTH'), 20_000, 'NBIRTH');
  assert.ok(gw.logs().some((l) => String(l.msg).includes('sparkplug goes on with MQTT 3.1.1')));
  const r = await gw.stop();
  assert.is(r.code, 0);
});

test.run();
