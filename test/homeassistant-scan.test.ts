// The stale-config scan of the Home Assistant output: stop() ends a scan in
// progress (its timer with it), and a scan cut short by a lost connection
// runs again at the next connect, so a stale config is still cleared.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { parseConfigText } from '../config/load.js';
import { Gateway } from '../gateway/gateway.js';
import { deviceDiscovery } from '../gateway/outputs/homeassistant/discovery.js';
import { HomeAssistantOutput } from '../gateway/outputs/homeassistant/index.js';
import { gatewayConfig, serialDevice } from './helpers/e2e.js';
import { collect, startMosquitto } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach, MqttProxy } from './helpers/mqtt-fixtures.js';
import { requirePeer, tempDir, waitFor } from './helpers/peers.js';
import { watchedClock } from './helpers/watched-clock.js';

const enabled = requirePeer('mosquitto', 'the gateway publishes to a real broker');
const cleanups = cleanupsAfterEach(test);

const STALE = 'homeassistant/device/edgegate_gw1_gone/config';
const PUBLISH = 3;

function config(url: string, dir: string) {
  const loaded = parseConfigText(JSON.stringify(gatewayConfig(url, dir, [serialDevice('s1', `${dir}/no-such-port`)], {
    homeassistant: { enabled: true },
  })), 'config.json');
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  return loaded.config;
}

if (enabled) {
  test('stop() ends a stale-config scan in progress: no scan timer left behind', async () => {
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const clock = watchedClock();
    const SCAN_MS = 60_000;
    const gw = new Gateway(config(broker.url, tmp.dir), { log: captureLog().log, clock, outputs: [new HomeAssistantOutput({ scanMs: SCAN_MS })] });
    cleanups.push(() => gw.stop());
    await gw.start();
    await waitFor(() => clock.pending(SCAN_MS) === 1, 15_000, 'the scan waiting');
    await gw.stop();
    assert.is(clock.pending(SCAN_MS), 0, 'the scan timer is cleared by stop()');
  });

  test('a scan cut short by a lost connection runs again at the next connect: the stale config is cleared', async () => {
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    // on the broker already: a config of this gateway for a device it no longer has
    const gone = parseConfigText(JSON.stringify({ gateway: { id: 'gw1' }, devices: [serialDevice('gone', '/dev/null-gone')] }), 'x');
    if (!gone.ok) throw new Error(gone.errors.join('\n'));
    const ha = await mqtt.connectAsync(broker.url);
    cleanups.push(() => ha.endAsync());
    const stale = deviceDiscovery({ gatewayId: 'gw1', prefix: 'edgegate/gw1', discoveryPrefix: 'homeassistant', version: '0.0.1' }, gone.config.devices[0]!);
    await ha.publishAsync(STALE, JSON.stringify(stale), { qos: 1, retain: true });
    const sub = await collect(broker.url, 'homeassistant/#');
    cleanups.push(() => sub.close());

    // the first connection's scan never sees the retained config: the broker's copy is held back
    let holding = true;
    let held = 0;
    const proxy = new MqttProxy(broker.port, '/data', {
      dropDown: (type, body) => {
        if (!holding || type !== PUBLISH || !body.toString('latin1', 2, 2 + body.readUInt16BE(0)).startsWith('homeassistant/device/')) return false;
        held++;
        return true;
      },
    });
    await proxy.open();
    cleanups.push(() => proxy.close());
    const clock = watchedClock();
    const SCAN_MS = 2500;
    const { log, text } = captureLog();
    const gw = new Gateway(config(proxy.url, tmp.dir), { log, clock, outputs: [new HomeAssistantOutput({ scanMs: SCAN_MS, reconnectMs: 200 })] });
    cleanups.push(() => gw.stop());
    await gw.start();
    await waitFor(() => held > 0 && clock.pending(SCAN_MS) === 1, 15_000, 'the scan waiting, the retained config held back');
    holding = false;
    proxy.cut();
    await waitFor(() => sub.messages.some((m) => m.topic === STALE && m.payload === ''), 20_000, 'the stale config cleared after the reconnect');
    assert.match(text(), 'stale config scan failed');
  });
}

test.run();
