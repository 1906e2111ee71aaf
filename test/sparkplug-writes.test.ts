// DCMD through the normal write path to real devices: a writable OPC UA
// variable on the simulated node-opcua server and a Modbus coil and register
// on a pymodbus slave; DBIRTH datatypes follow the tag's type and driver.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import { createOutputs } from '../gateway/cli/outputs.js';
import { Gateway } from '../gateway/gateway.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { opcuaDeviceMap, sharedPki, sim, stopAll } from './helpers/opcua.js';
import { requirePeer, tempDir, waitFor } from './helpers/peers.js';
import { sparkplugHost } from './helpers/sparkplug.js';
import { requirePymodbus, startModbusPeer } from './peers/modbus.js';

const enabled = requirePeer('mosquitto', 'the edge node talks to a real broker') && requirePymodbus();
const cleanups = cleanupsAfterEach(test);

if (enabled) {
  test('DCMD writes an OPC UA variable and a Modbus coil and register; refused values are counted and change nothing', async () => {
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const server = await sim();
    cleanups.push(() => stopAll());
    const peer = await startModbusPeer({ tcp: 0, units: [1] });
    cleanups.push(() => peer.stop());
    const host = await sparkplugHost(broker.url);
    cleanups.push(() => host.close());
    const cfg = {
      gateway: { id: 'gw1' }, mqtt: { url: broker.url }, buffer: { dir: `${tmp.dir}/buffer` }, sparkplug: { enabled: true },
      devices: [
        { ...opcuaDeviceMap('plc1', server.endpoint), pki_dir: sharedPki(), auto_accept_server_certificate: true },
        {
          id: 'meter1', driver: 'modbus-tcp', host: '127.0.0.1', port: peer.port, unit_id: 1, poll_interval: '200ms', timeout: '500ms',
          tags: {
            relay: { area: 'coil', address: 3, writable: true },
            setpoint: { area: 'holding', address: 10, type: 'int32', writable: true, max: 100000 },
            voltage: { area: 'holding', address: 0, type: 'float32' },
            temp: { area: 'input', address: 5, type: 'int16', scale: 0.1 },
          },
        },
      ],
    };
    const loaded = parseConfigText(JSON.stringify(cfg), 'config.json');
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    const { log } = captureLog();
    const outputs = await createOutputs(loaded.config);
    const gw = new Gateway(loaded.config, { log, outputs });
    cleanups.push(() => gw.stop());
    await gw.start();
    await host.waitFor((m) => m.filter((x) => x.verb === 'DBIRTH').length >= 2, 30_000, 'both DBIRTHs');
    const types = (device: string) => Object.fromEntries(host.of('DBIRTH', device)[0]!.metrics.map((m) => [m.name, m.type]));
    assert.equal(types('meter1'), { relay: 'Boolean', setpoint: 'Int32', voltage: 'Float', temp: 'Double' });
    assert.is(types('plc1').counter, 'Int64');
    assert.is(types('plc1').setpoint, 'Double');

    await host.command('spBv1.0/edgegate/DCMD/gw1/plc1', [{ name: 'setpoint', type: 'Double', value: 42.5 }]);
    await waitFor(() => server.variable('Setpoint').readValue().value.value === 42.5, 10_000, 'the OPC UA setpoint written');
    await host.command('spBv1.0/edgegate/DCMD/gw1/meter1', [{ name: 'relay', type: 'Boolean', value: true }, { name: 'setpoint', type: 'Int32', value: 70000 }]);
    let coil: number[] = [], regs: number[] = [];
    // the slave is asked over its control channel (async), so poll it
    for (let i = 0; i < 100 && !(coil[0] === 1 && regs[0] === 1 && regs[1] === 70000 - 65536); i++) {
      coil = await peer.get(1, 'coil', 3, 1);
      regs = await peer.get(1, 'holding', 10, 2);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(coil, [1]);
    assert.equal(regs, [1, 70000 - 65536], 'int32 70000, big word order');

    const output = outputs[0] as unknown as { counters: { refused_commands: number } };
    await host.command('spBv1.0/edgegate/DCMD/gw1/meter1', [{ name: 'setpoint', type: 'Int32', value: 100001 }, { name: 'voltage', type: 'Float', value: 1 }]);
    await host.command('spBv1.0/edgegate/DCMD/gw1/plc1', [{ name: 'setpoint', type: 'Double', value: 101 }]);
    await waitFor(() => output.counters.refused_commands === 3, 10_000, 'three refusals counted');
    assert.equal(await peer.get(1, 'holding', 10, 2), [1, 70000 - 65536]);
    assert.is(server.variable('Setpoint').readValue().value.value, 42.5);
  });
}

test.run();
