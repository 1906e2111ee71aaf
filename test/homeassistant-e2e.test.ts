// Home Assistant discovery end to end: the gateway CLI with a serial
// instrument (socat pty), a Modbus RTU slave (pymodbus) and an OPC UA server
// publishes to a real Mosquitto, and the test reads the broker as Home
// Assistant would: retained configs (each checked against the schema of HA's
// discovery), the state and availability they point to, and commands sent
// the way HA sends them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { deviceDiscovery } from '../gateway/outputs/homeassistant/discovery.js';
import { parseConfigText } from '../config/load.js';
import { gatewayConfig, latest, serialDevice, setup, waitForState, type Sub } from './helpers/e2e.js';
import { runCliToEnd, writeConfig } from './helpers/gateway.js';
import { assertDiscovery, type DeviceDiscovery } from './helpers/ha-discovery.js';
import { collect } from './helpers/mosquitto.js';
import { opcuaDeviceMap, sim, stopAll, stopSim } from './helpers/opcua.js';
import { requirePeer, waitFor } from './helpers/peers.js';
import { requirePymodbus, startModbusPeer, type ModbusPeer } from './peers/modbus.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs') && requirePymodbus();

const topicOf = (device: string) => `homeassistant/device/edgegate_gw1_${device}/config`;
const GATEWAY_TOPIC = 'homeassistant/device/edgegate_gw1/config';
const FOREIGN = 'homeassistant/device/z2m_bridge_0x00124b/config';
const FOREIGN_PAYLOAD = JSON.stringify({ dev: { ids: ['z2m_bridge_0x00124b'], name: 'Zigbee2MQTT Bridge' }, o: { name: 'Zigbee2MQTT' }, cmps: {} });

/** the latest config on a topic, checked against HA's schema; undefined once cleared */
function config(sub: Sub, topic: string): DeviceDiscovery | undefined {
  for (let i = sub.messages.length - 1; i >= 0; i--) {
    const m = sub.messages[i]!;
    if (m.topic !== topic) continue;
    return m.payload === '' ? undefined : assertDiscovery(topic, m.payload);
  }
  return undefined;
}

/** the few templates edgegate's configs use, rendered as HA's Jinja would */
function render(template: string | undefined, payload: string): string {
  const doc = JSON.parse(payload) as Record<string, any>;
  if (template === undefined) return payload;
  let m = /^\{\{ value_json\.([\w.]+) \}\}$/.exec(template);
  if (m) return String(m[1]!.split('.').reduce<any>((o, k) => o?.[k], doc));
  m = /^\{\{ '(\w+)' if value_json\.(\w+) == '(\w+)' else '(\w+)' \}\}$/.exec(template);
  if (m) return doc[m[2]!] === m[3] ? m[1]! : m[4]!;
  m = /^\{\{ '(\w+)' if value_json\.(\w+) else '(\w+)' \}\}$/.exec(template);
  if (m) return doc[m[2]!] ? m[1]! : m[3]!;
  throw new Error(`template not understood by the test: ${template}`);
}

/** availability as HA computes it with availability_mode all */
function available(sub: Sub, c: DeviceDiscovery): boolean {
  return (c.availability ?? []).every((a) => {
    const payload = sub.messages.filter((m) => m.topic === a.topic && m.payload !== '').at(-1)?.payload;
    return payload !== undefined && render(a.value_template, payload) === (a.payload_available ?? 'online');
  });
}

/** an entity's state as HA shows it: unavailable, or its state topic through its value template */
function state(sub: Sub, c: DeviceDiscovery, key: string): string | undefined {
  if (!available(sub, c)) return 'unavailable';
  const comp = c.components[key]!;
  const payload = sub.messages.filter((m) => m.topic === comp.state_topic).at(-1)?.payload;
  return payload === undefined || payload === '' ? undefined : render(comp.value_template, payload);
}

/** a key of a component that only some platforms have */
function field(c: DeviceDiscovery, component: string, key: string): string {
  const v = (c.components[component] as Record<string, unknown> | undefined)?.[key];
  if (typeof v !== 'string') throw new Error(`components.${component}.${key} is not a string`);
  return v;
}

function meter(port: string, tags: Record<string, object>) {
  return { id: 'meter1', driver: 'modbus-rtu', port, baud_rate: 19200, parity: 'even', unit_id: 1, poll_interval: '200ms', timeout: '300ms', tags };
}

if (enabled) {
  let server: SimServer | undefined;
  test.after(async () => {
    await stopAll();
  });

  test('serial, Modbus and OPC UA devices appear with their entities; states follow readings, availability follows faults; number and switch commands reach the devices; a reload removes a tag\'s entity; other publishers\' configs survive', async () => {
    const e = await setup();
    let peer: ModbusPeer | undefined;
    const ha = await mqtt.connectAsync(e.broker!.url);
    server = await sim();
    try {
      // already on the broker: another publisher's config, and one of this gateway for a device it no longer has
      const gone = parseConfigText(JSON.stringify({ gateway: { id: 'gw1' }, devices: [serialDevice('gone', '/dev/null-gone')] }), 'x');
      assert.ok(gone.ok);
      const stale = JSON.stringify(deviceDiscovery({ gatewayId: 'gw1', prefix: 'edgegate/gw1', discoveryPrefix: 'homeassistant', version: '0.0.1' }, gone.ok ? gone.config.devices[0]! : undefined!));
      await ha.publishAsync(topicOf('gone'), stale, { qos: 1, retain: true });
      await ha.publishAsync(FOREIGN, FOREIGN_PAYLOAD, { qos: 1, retain: true });

      peer = await startModbusPeer({ ownPty: true, units: [1] });
      await peer.set(1, 'holding', 0, [0x4148, 0x0000]); // 12.5 as float32
      const sub = await e.subscribe(e.broker!.url, '#');
      const devices = [
        serialDevice('boiler', e.pty!.device, { tags: { T: { name: 'temperature', unit: '°C', device_class: 'temperature', type: 'number' } } }),
        meter(peer.path!, {
          voltage: { area: 'holding', address: 0, type: 'float32', unit: 'V', device_class: 'voltage' },
          limit: { area: 'holding', address: 20, writable: true },
          relay: { area: 'coil', address: 3, writable: true },
        }),
        opcuaDeviceMap('plc1', server.endpoint, { tags: { setpoint: { node: 'ns=1;s=Sim.Setpoint', writable: true, min: 0, max: 100, decimals: 1 } } }),
      ];
      const base = gatewayConfig(e.broker!.url, e.dir, devices, { homeassistant: { enabled: true } });
      const gw = e.start(base);
      for (const t of [GATEWAY_TOPIC, topicOf('boiler'), topicOf('meter1'), topicOf('plc1')]) {
        await waitFor(() => config(sub, t) !== undefined, 20_000, `the config on ${t}`);
      }
      const boiler = config(sub, topicOf('boiler'))!;
      const meter1 = config(sub, topicOf('meter1'))!;
      const plc1 = config(sub, topicOf('plc1'))!;
      assert.equal(Object.keys(meter1.components).sort(), ['limit', 'relay', 'voltage']);
      assert.equal([meter1.components.limit!.platform, meter1.components.relay!.platform, plc1.components.setpoint!.platform], ['number', 'switch', 'number']);
      assert.equal(boiler.device.via_device, 'edgegate_gw1');

      // states follow readings; a device shows available once connected
      await waitForState(sub, 'boiler', 'connected');
      e.instrument!.write('T=21.5\n');
      await waitFor(() => state(sub, boiler, 'temperature') === '21.5', 10_000, 'the temperature state 21.5');
      await waitFor(() => state(sub, meter1, 'voltage') === '12.5', 10_000, 'the voltage state 12.5');
      await waitFor(() => state(sub, plc1, 'setpoint') === '50', 20_000, 'the setpoint state 50');
      await waitFor(() => state(sub, meter1, 'relay') === 'OFF', 10_000, 'the relay state OFF');
      const gateway = config(sub, GATEWAY_TOPIC)!;
      await waitFor(() => Number(state(sub, gateway, 'readings_per_s')) > 0, 10_000, 'readings per second > 0 on the gateway device');
      assert.is(state(sub, gateway, 'broker'), 'ON');

      // commands as HA sends them: the number's value as text, the switch's payload_on
      await ha.publishAsync(field(plc1, 'setpoint', 'command_topic'), '42.5', { qos: 0 });
      await waitFor(() => state(sub, plc1, 'setpoint') === '42.5', 10_000, 'the OPC UA setpoint read back as 42.5');
      await ha.publishAsync(field(meter1, 'limit', 'command_topic'), '1234', { qos: 0 });
      await waitFor(() => state(sub, meter1, 'limit') === '1234', 10_000, 'the register read back as 1234');
      assert.equal(await peer.get(1, 'holding', 20, 1), [1234]);
      await ha.publishAsync(field(meter1, 'relay', 'command_topic'), field(meter1, 'relay', 'payload_on'), { qos: 0 });
      await waitFor(() => state(sub, meter1, 'relay') === 'ON', 10_000, 'the coil switched on');
      assert.equal(await peer.get(1, 'coil', 3, 1), [1]);

      // faults: the serial cable goes, then the OPC UA server; each shows unavailable alone
      await e.pty!.stop();
      await waitFor(() => state(sub, boiler, 'temperature') === 'unavailable', 10_000, 'the boiler unavailable');
      assert.is(state(sub, meter1, 'voltage'), '12.5');
      await stopSim(server);
      server = undefined;
      await waitFor(() => state(sub, plc1, 'setpoint') === 'unavailable', 20_000, 'the PLC unavailable');
      assert.is(state(sub, meter1, 'voltage'), '12.5', 'the Modbus device stays available');

      // the stale config of this gateway is cleared at start; the other publisher's stays
      await waitFor(() => sub.messages.some((m) => m.topic === topicOf('gone') && m.payload === ''), 15_000, 'the stale config cleared');
      assert.not.ok(sub.messages.some((m) => m.topic === FOREIGN && m.payload !== FOREIGN_PAYLOAD), 'the foreign config untouched');

      // a reload that removes a tag: the device's config goes out again without it
      const [b0, m0, p0] = devices as [object, ReturnType<typeof meter>, object];
      writeConfig(e.dir, { ...base, devices: [b0, { ...m0, tags: { voltage: m0.tags.voltage!, relay: m0.tags.relay! } }, p0] });
      gw.signal('SIGHUP');
      await waitFor(() => config(sub, topicOf('meter1'))?.components.limit === undefined, 10_000, 'meter1 without limit');
      assert.equal(Object.keys(config(sub, topicOf('meter1'))!.components).sort(), ['relay', 'voltage']);

      // what a newcomer (HA starting now) reads, retained: ours, without the stale one, and the foreign one
      const fresh = await collect(e.broker!.url, 'homeassistant/#');
      try {
        await waitFor(() => fresh.messages.length >= 5, 5000, 'the retained configs');
        assert.equal(fresh.messages.map((m) => m.topic).sort(), [GATEWAY_TOPIC, topicOf('boiler'), topicOf('meter1'), topicOf('plc1'), FOREIGN].sort());
        assert.ok(fresh.messages.every((m) => m.retain));
        assert.is(fresh.messages.find((m) => m.topic === FOREIGN)!.payload, FOREIGN_PAYLOAD);
        for (const m of fresh.messages.filter((x) => x.topic !== FOREIGN)) assertDiscovery(m.topic, m.payload);
      } finally {
        await fresh.close();
      }
      assert.is((await gw.stop()).code, 0);
    } finally {
      await ha.endAsync();
      await peer?.stop();
      if (server) await stopSim(server);
      await e.cleanup();
    }
  });

  test('a device removed by a reload or between runs loses its config; homeassistant --clear removes every config of this gateway and nothing else', async () => {
    const e = await setup({ pty: false });
    const ha = await mqtt.connectAsync(e.broker!.url);
    try {
      await ha.publishAsync(FOREIGN, FOREIGN_PAYLOAD, { qos: 1, retain: true });
      // another edgegate gateway whose id extends this one's
      const other = parseConfigText(JSON.stringify({ gateway: { id: 'gw1_b' }, devices: [serialDevice('a', '/dev/null-a')] }), 'x');
      assert.ok(other.ok);
      const otherTopic = 'homeassistant/device/edgegate_gw1_b_a/config';
      const otherPayload = JSON.stringify(deviceDiscovery({ gatewayId: 'gw1_b', prefix: 'edgegate/gw1_b', discoveryPrefix: 'homeassistant', version: '0.1.0' }, other.ok ? other.config.devices[0]! : undefined!));
      await ha.publishAsync(otherTopic, otherPayload, { qos: 1, retain: true });
      const sub = await e.subscribe(e.broker!.url, 'homeassistant/#');
      // devices need no peer to be discovered: their ports do not exist
      const three = ['a', 'b', 'c'].map((id) => serialDevice(id, `${e.dir}/missing-${id}`, { tags: { n: { type: 'integer' } } }));
      const base = gatewayConfig(e.broker!.url, e.dir, three, { homeassistant: { enabled: true } });
      let gw = e.start(base);
      for (const id of ['a', 'b', 'c']) await waitFor(() => config(sub, topicOf(id)) !== undefined, 15_000, `config of ${id}`);

      writeConfig(e.dir, { ...base, devices: three.slice(0, 2) });
      gw.signal('SIGHUP');
      await waitFor(() => sub.messages.some((m) => m.topic === topicOf('c') && m.payload === ''), 10_000, 'c cleared by the reload');
      assert.is((await gw.stop()).code, 0);

      // b goes while the gateway is stopped: the next start finds its config and clears it
      const n = sub.messages.length;
      gw = e.start({ ...base, devices: three.slice(0, 1) });
      await waitFor(() => sub.messages.slice(n).some((m) => m.topic === topicOf('b') && m.payload === ''), 15_000, 'b cleared at start');
      assert.ok(config(sub, topicOf('a')), 'a stays');
      assert.is((await gw.stop()).code, 0);

      const file = writeConfig(e.dir, { ...base, devices: three.slice(0, 1) });
      const r = await runCliToEnd(['homeassistant', '--clear', '--config', file, '--wait', '1s']);
      assert.is(r.code, 0, r.stderr);
      assert.match(r.stdout, `cleared ${GATEWAY_TOPIC}`);
      assert.match(r.stdout, `cleared ${topicOf('a')}`);
      assert.match(r.stdout, /2 Home Assistant discovery configs of gateway "gw1" cleared/);
      const fresh = await collect(e.broker!.url, 'homeassistant/#');
      try {
        await waitFor(() => fresh.messages.length >= 2, 5000, 'the retained configs left');
        await new Promise((res) => setTimeout(res, 300));
        assert.equal(fresh.messages.map((m) => m.topic).sort(), [FOREIGN, otherTopic].sort(), 'only the other publishers\' configs are left');
        assert.is(fresh.messages.find((m) => m.topic === otherTopic)!.payload, otherPayload);
      } finally {
        await fresh.close();
      }
      const again = await runCliToEnd(['homeassistant', '--clear', '--config', file, '--wait', '500ms']);
      assert.is(again.code, 0);
      assert.match(again.stdout, /0 Home Assistant discovery configs/);
      assert.is((await runCliToEnd(['homeassistant', '--config', file])).code, 2, 'no action: a usage error');
      assert.ok(latest(sub, FOREIGN) !== undefined);
    } finally {
      await ha.endAsync();
      await e.cleanup();
    }
  });
}

test.run();
