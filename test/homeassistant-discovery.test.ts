// The discovery payloads as pure functions of the config: platforms by type
// and writable, number ranges and steps, availability, hidden tags, ids HA
// accepts; every payload checked against the schema of HA's discovery, and
// the schema itself shown to refuse what HA refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import type { ResolvedConfig } from '../config/schema.js';
import {
  componentKey, configTopic, deviceDiscovery, discoveryConfigs, gatewayDiscovery, isOwnConfig, type DiscoveryContext,
} from '../gateway/outputs/homeassistant/discovery.js';
import { assertDiscovery, checkDiscovery } from './helpers/ha-discovery.js';

const ctx: DiscoveryContext = { gatewayId: 'gw1', prefix: 'edgegate/gw1', discoveryPrefix: 'homeassistant', version: '0.1.0' };

function config(devices: object[]): ResolvedConfig {
  const r = parseConfigText(JSON.stringify({ gateway: { id: 'gw1' }, homeassistant: { enabled: true }, devices }), 'config.json');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

const devices = [
  {
    id: 'boiler', driver: 'serial', port: '/dev/ttyUSB0', write_template: 'SET {tag} {value}\n',
    tags: {
      T: { name: 'temperature', unit: '°C', device_class: 'temperature', deadband: 0.2 },
      count: { type: 'integer', state_class: 'total_increasing' },
      energy: { type: 'number', unit: 'kWh', device_class: 'energy' },
      raw: {},
      label: { type: 'string' },
      'flow.rate': { type: 'number', decimals: 2, writable: true, min: 0, max: 50, unit: 'L/min' },
      secret: { type: 'number', homeassistant: false },
      mode: { type: 'string', writable: true },
    },
  },
  {
    id: 'meter1', driver: 'modbus-rtu', port: '/dev/ttyUSB1',
    tags: {
      voltage: { area: 'holding', address: 0, type: 'float32', unit: 'V', device_class: 'voltage' },
      relay: { area: 'coil', address: 3, writable: true },
      alarm: { area: 'discrete', address: 1, device_class: 'problem' },
      limit: { area: 'holding', address: 20, writable: true },
      scaled: { area: 'holding', address: 21, writable: true, scale: 0.1 },
    },
  },
  {
    id: 'plc1', driver: 'opcua', endpoint: 'opc.tcp://127.0.0.1:4840',
    tags: { setpoint: { node: 'ns=1;s=Sim.Setpoint', writable: true, min: 0, max: 100 }, running: { node: 'ns=1;s=Sim.Running', type: 'boolean' } },
  },
  { id: 'off', driver: 'serial', port: '/dev/ttyUSB9', enabled: false, tags: { x: {} } },
];

test('every config the gateway would publish passes the schema of HA discovery, one per enabled device and one for the gateway', () => {
  const all = discoveryConfigs(ctx, config(devices).devices);
  assert.equal([...all.keys()].sort(), [
    'homeassistant/device/edgegate_gw1/config', 'homeassistant/device/edgegate_gw1_boiler/config',
    'homeassistant/device/edgegate_gw1_meter1/config', 'homeassistant/device/edgegate_gw1_plc1/config',
  ]);
  for (const [topic, payload] of all) assertDiscovery(topic, payload);
});

test('platforms follow type and writable; numbers get a range, a step from decimals and box mode; commands go to the set topic', () => {
  const [boiler, meter, plc] = config(devices).devices;
  const b = deviceDiscovery(ctx, boiler!).cmps;
  const m = deviceDiscovery(ctx, meter!).cmps;
  const p = deviceDiscovery(ctx, plc!).cmps;
  assert.equal(b.temperature, {
    p: 'sensor', uniq_id: 'edgegate_gw1_boiler_temperature', name: 'temperature', stat_t: 'edgegate/gw1/devices/boiler/tags/temperature',
    val_tpl: '{{ value_json.value }}', unit_of_meas: '°C', dev_cla: 'temperature', stat_cla: 'measurement',
  });
  assert.is(b.count!.stat_cla, 'total_increasing', 'a state_class set wins over the default');
  assert.is(b.energy!.stat_cla, undefined, 'no default measurement where HA refuses it (energy is a total)');
  assert.is(b.raw!.p, 'sensor');
  assert.is(b.raw!.stat_cla, undefined, 'an untyped tag may carry text: no state class');
  assert.is(b.label!.stat_cla, undefined);
  assert.is(b.secret, undefined, 'homeassistant: false leaves the tag out');
  const flow = b[componentKey('flow.rate')]!;
  assert.match(componentKey('flow.rate'), /^flow_rate_[a-z0-9]+$/);
  assert.equal({ p: flow.p, min: flow.min, max: flow.max, step: flow.step, mode: flow.mode, cmd_t: flow.cmd_t, stat_t: flow.stat_t }, {
    p: 'number', min: 0, max: 50, step: 0.01, mode: 'box', cmd_t: 'edgegate/gw1/devices/boiler/set/flow.rate', stat_t: 'edgegate/gw1/devices/boiler/tags/flow.rate',
  });
  assert.equal([b.mode!.p, b.mode!.cmd_tpl], ['text', '{{ value | to_json }}'], 'a string write is JSON: HA quotes the text');
  assert.equal([m.voltage!.p, m.relay!.p, m.alarm!.p, m.limit!.p], ['sensor', 'switch', 'binary_sensor', 'number']);
  assert.equal([m.relay!.pl_on, m.relay!.pl_off, m.relay!.stat_on, m.relay!.val_tpl], ['true', 'false', 'ON', "{{ 'ON' if value_json.value else 'OFF' }}"]);
  assert.equal([m.limit!.step, m.scaled!.step], [1, 0.001], 'integer registers step 1, scaled ones 0.001');
  assert.ok((m.limit!.min as number) < -1e15 && (m.limit!.max as number) > 1e15, 'no min/max: no range HA would drop states outside of');
  assert.equal([p.setpoint!.p, p.setpoint!.min, p.setpoint!.max, p.running!.p], ['number', 0, 100, 'binary_sensor']);
});

test('a device is online in HA only while the gateway is online and the device connected; it hangs off the gateway device', () => {
  const d = deviceDiscovery(ctx, config(devices).devices[1]!);
  assert.equal(d.dev, { ids: ['edgegate_gw1_meter1'], name: 'meter1', mdl: 'modbus-rtu', via_device: 'edgegate_gw1' });
  assert.equal(d.o, { name: 'edgegate', sw: '0.1.0' });
  assert.is(d.avty_mode, 'all');
  assert.equal(d.avty, [
    { t: 'edgegate/gw1/status', val_tpl: '{{ value_json.state }}' },
    { t: 'edgegate/gw1/devices/meter1/status', val_tpl: "{{ 'online' if value_json.state == 'connected' else 'offline' }}" },
  ]);
  const g = gatewayDiscovery(ctx);
  assert.equal(Object.keys(g.cmps), ['readings_per_s', 'buffered_batches', 'broker']);
  assert.ok(Object.values(g.cmps).every((c) => c.ent_cat === 'diagnostic'));
  assert.equal([g.cmps.readings_per_s!.stat_t, g.cmps.buffered_batches!.val_tpl], ['edgegate/gw1/stats', '{{ value_json.buffer.batches }}']);
});

test('own configs are told apart by origin and gateway, also from a gateway whose id extends this one', () => {
  const own = discoveryConfigs(ctx, config(devices).devices);
  for (const payload of own.values()) assert.ok(isOwnConfig(payload, 'gw1'));
  const other = discoveryConfigs({ ...ctx, gatewayId: 'gw1_b' }, config(devices).devices);
  for (const payload of other.values()) assert.not.ok(isOwnConfig(payload, 'gw1'), 'gateway gw1_b is another gateway');
  const z2m = JSON.stringify({ dev: { ids: ['edgegate_gw1_x'] }, o: { name: 'Zigbee2MQTT' }, cmps: {} });
  assert.not.ok(isOwnConfig(z2m, 'gw1'));
  assert.not.ok(isOwnConfig('', 'gw1'));
  assert.not.ok(isOwnConfig('not json', 'gw1'));
  assert.ok(isOwnConfig(JSON.stringify({ device: { identifiers: 'edgegate_gw1' }, origin: { name: 'edgegate' } }), 'gw1'), 'full key names too');
  assert.is(configTopic('ha', 'edgegate_gw1'), 'ha/device/edgegate_gw1/config');
});

test('the schema refuses what HA refuses: impossible state class, wrong unit, a bad id, an unknown key, no origin, max below min', () => {
  const good = deviceDiscovery(ctx, config(devices).devices[0]!);
  const topic = 'homeassistant/device/edgegate_gw1_boiler/config';
  assert.ok(checkDiscovery(topic, JSON.stringify(good)).ok);
  const bad = (mutate: (d: Record<string, any>) => void, pattern: RegExp) => {
    const d = JSON.parse(JSON.stringify(good)) as Record<string, any>;
    mutate(d);
    const r = checkDiscovery(topic, JSON.stringify(d));
    assert.not.ok(r.ok, `accepted: ${pattern}`);
    if (!r.ok) assert.match(r.errors.join('\n'), pattern);
  };
  bad((d) => { d.cmps.temperature.stat_cla = 'total_increasing'; }, /impossible with device_class temperature/);
  bad((d) => { d.cmps.temperature.unit_of_meas = 'g'; }, /not valid with device_class temperature/);
  bad((d) => { d.cmps.temperature.dev_cla = 'temprature'; }, /device_class/);
  bad((d) => { d.cmps.temperature.uniq_id = 'a b'; }, /unique_id/);
  bad((d) => { d.cmps.temperature.stat_topic = 'x'; }, /stat_topic|Unrecognized/);
  bad((d) => { delete d.o; }, /origin/);
  bad((d) => { d.cmps[componentKey('flow.rate')].max = -1; }, /max .* must be > min/);
  bad((d) => { d.cmps[componentKey('flow.rate')].step = 0.0001; }, /step/);
  bad((d) => { d.cmps.temperature.state_topic = d.cmps.temperature.stat_t; }, /given twice/);
  bad((d) => { d.dev.ids = ['someone_else']; }, /not among the device identifiers/);
  assert.not.ok(checkDiscovery('homeassistant/sensor/x/config', JSON.stringify(good)).ok, 'a component topic is not device discovery');
});

test.run();
