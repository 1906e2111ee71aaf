// The Home Assistant output in process, with its waits shortened: HA's birth
// message (HA restarted) brings discovery and the latest states out again,
// once for a burst of births, after the delay; "offline" brings nothing.
// Judged by the birth timer's firings, never by how long a sleep was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { parseConfigText } from '../config/load.js';
import { Gateway } from '../gateway/gateway.js';
import { HomeAssistantOutput } from '../gateway/outputs/homeassistant/index.js';
import { brokerAndPty, gatewayConfig, serialDevice } from './helpers/e2e.js';
import { assertDiscovery } from './helpers/ha-discovery.js';
import { collect } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { requirePeer, waitFor } from './helpers/peers.js';
import { openInstrument } from './helpers/socat.js';
import { watchedClock } from './helpers/watched-clock.js';

const enabled = requirePeer('mosquitto', 'the gateway publishes to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');
const cleanups = cleanupsAfterEach(test);

const CONFIG = 'homeassistant/device/edgegate_gw1_s1/config';
const STATE = 'edgegate/gw1/devices/s1/tags/n';

if (enabled) {
  test('HA\'s birth republishes discovery and tag states after the delay, once for a burst; "offline" does not', async () => {
    const { dir, broker, pty } = await brokerAndPty(cleanups);
    const loaded = parseConfigText(JSON.stringify(gatewayConfig(broker.url, dir, [serialDevice('s1', pty.device, { tags: { n: { type: 'integer' } } })], {
      homeassistant: { enabled: true },
    })), 'config.json');
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
    if (!loaded.ok) return;
    const sub = await collect(broker.url, '#');
    cleanups.push(() => sub.close());
    const births: number[] = [];
    // long enough that three births sent back to back fall within it on a loaded machine
    const DELAY_MS = 2345;
    const output = new HomeAssistantOutput({ scanMs: 200, birthDelayMs: () => { births.push(Date.now()); return DELAY_MS; } });
    const { log } = captureLog();
    const clock = watchedClock();
    const gw = new Gateway(loaded.config, { log, clock, outputs: [output] });
    cleanups.push(() => gw.stop());
    await gw.start();
    const instrument = await openInstrument(pty.instrument);
    cleanups.push(() => instrument.close());
    await waitFor(() => sub.messages.some((m) => m.topic === CONFIG), 10_000, 'the discovery config');
    assertDiscovery(CONFIG, sub.messages.find((m) => m.topic === CONFIG)!.payload);
    await waitFor(() => sub.messages.some((m) => m.topic === 'edgegate/gw1/devices/s1/status' && m.payload.includes('"connected"')), 10_000, 's1 connected');
    await instrument.write('n=7\n');
    await waitFor(() => sub.messages.some((m) => m.topic === STATE), 5000, 'the tag state');
    const count = (topic: string) => sub.messages.filter((m) => m.topic === topic).length;
    const [configs, states] = [count(CONFIG), count(STATE)];

    const ha = await mqtt.connectAsync(broker.url);
    cleanups.push(() => ha.endAsync());
    await ha.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    for (let i = 0; i < 3; i++) await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    // the births came after "offline" on one connection: once they are seen, so was it
    await waitFor(() => births.length === 3, 15_000, 'the three births seen');
    assert.is(clock.fired(DELAY_MS), 0, '"offline" started no republish');
    assert.equal([count(CONFIG), count(STATE)], [configs, states], 'nothing republished before the delay');

    await waitFor(() => clock.fired(DELAY_MS) === 1 && clock.pending(DELAY_MS) === 0, 15_000, 'the delay over');
    await waitFor(() => count(CONFIG) === configs + 1 && count(STATE) === states + 1, 15_000, 'discovery and states again');
    // one timer fired and none is left: nothing more can come from this burst
    assert.is(clock.fired(DELAY_MS), 1, 'once for the burst: each birth restarted the delay');
    const state = sub.messages.filter((m) => m.topic === STATE).at(-1)!;
    assert.is((JSON.parse(state.payload) as { value: number }).value, 7);
  });
}

test.run();
