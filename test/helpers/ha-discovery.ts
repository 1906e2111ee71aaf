// Home Assistant's MQTT discovery payload as a zod schema, written from HA's
// documentation (integrations/mqtt: device discovery payload, supported
// abbreviations, the sensor / binary_sensor / number / switch / text platform
// pages) and its sources (mqtt/abbreviations.py, sensor/const.py
// DEVICE_CLASS_STATE_CLASSES and DEVICE_CLASS_UNITS, mqtt/sensor.py). Home
// Assistant cannot run here, so every config the gateway publishes in tests
// is checked against it.
//
// Stricter than HA on purpose: HA ignores unknown keys of a component, which
// is how a misspelt key fails silently, so unknown keys are errors here; and
// the device class / state class / unit combinations that HA's sensor entity
// rejects at run time (a warning, a repair issue, statistics not kept) are
// errors too.
import { z } from 'zod';

/** HA's documented abbreviations of the keys these platforms use (mqtt/abbreviations.py) */
const ABBREVIATIONS: Record<string, string> = {
  avty: 'availability', avty_mode: 'availability_mode', avty_t: 'availability_topic', avty_tpl: 'availability_template',
  cmd_t: 'command_topic', cmd_tpl: 'command_template', cmps: 'components', dev: 'device', dev_cla: 'device_class',
  e: 'encoding', en: 'enabled_by_default', ent_cat: 'entity_category', ent_pic: 'entity_picture', exp_aft: 'expire_after',
  frc_upd: 'force_update', ic: 'icon', json_attr_t: 'json_attributes_topic', json_attr_tpl: 'json_attributes_template',
  lrst_val_tpl: 'last_reset_value_template', max: 'max', min: 'min', mode: 'mode', name: 'name', o: 'origin',
  obj_id: 'object_id', def_ent_id: 'default_entity_id', off_dly: 'off_delay', ops: 'options', opt: 'optimistic', p: 'platform',
  pl_avail: 'payload_available', pl_not_avail: 'payload_not_available', pl_off: 'payload_off', pl_on: 'payload_on',
  pl_rst: 'payload_reset', ptrn: 'pattern', ret: 'retain', stat_cla: 'state_class', stat_off: 'state_off', stat_on: 'state_on',
  stat_t: 'state_topic', step: 'step', sug_dsp_prc: 'suggested_display_precision', t: 'topic', uniq_id: 'unique_id',
  unit_of_meas: 'unit_of_measurement', val_tpl: 'value_template',
};
const DEVICE_ABBREVIATIONS: Record<string, string> = {
  cns: 'connections', cu: 'configuration_url', ids: 'identifiers', name: 'name', mf: 'manufacturer', mdl: 'model',
  mdl_id: 'model_id', hw: 'hw_version', sw: 'sw_version', sa: 'suggested_area', sn: 'serial_number', via_device: 'via_device',
};
const ORIGIN_ABBREVIATIONS: Record<string, string> = { name: 'name', sw: 'sw_version', url: 'support_url' };

/** SensorDeviceClass → the state classes HA allows with it (sensor/const.py) */
const ALL_STATE = ['measurement', 'measurement_angle', 'total', 'total_increasing'];
const M = ['measurement'];
const TOTALS = ['total', 'total_increasing'];
export const SENSOR_STATE_CLASSES: Record<string, string[]> = {
  apparent_power: M, aqi: M, area: ALL_STATE, atmospheric_pressure: M, battery: M, blood_glucose_concentration: M,
  carbon_monoxide: M, carbon_dioxide: M, conductivity: M, current: M, data_rate: M, data_size: ALL_STATE, date: [],
  distance: ALL_STATE, duration: ALL_STATE, energy: TOTALS, energy_distance: M, energy_storage: M, enum: [], frequency: M,
  gas: TOTALS, humidity: M, illuminance: M, irradiance: M, moisture: M, monetary: ['total'], nitrogen_dioxide: M,
  nitrogen_monoxide: M, nitrous_oxide: M, ozone: M, ph: M, pm1: M, pm10: M, pm25: M, power_factor: M, power: M,
  precipitation: ALL_STATE, precipitation_intensity: M, pressure: M, reactive_power: M, signal_strength: M, sound_pressure: M,
  speed: M, sulphur_dioxide: M, temperature: M, timestamp: [], volatile_organic_compounds: M, volatile_organic_compounds_parts: M,
  voltage: M, volume: TOTALS, volume_storage: M, volume_flow_rate: M, water: TOTALS,
  weight: ['measurement', 'total', 'total_increasing'], wind_direction: ['measurement_angle'], wind_speed: M,
};
const NON_NUMERIC = new Set(['date', 'enum', 'timestamp']);

/** the units HA accepts with a device class, for the classes checked here (sensor/const.py DEVICE_CLASS_UNITS); others take any */
const UG = ['µg/m³'];
export const DEVICE_CLASS_UNITS: Record<string, Array<string | null>> = {
  temperature: ['°C', '°F', 'K'], humidity: ['%'], battery: ['%'], moisture: ['%'], power_factor: ['%', null],
  voltage: ['µV', 'mV', 'V', 'kV', 'MV'], current: ['mA', 'A'], power: ['mW', 'W', 'kW', 'MW', 'GW', 'TW'],
  frequency: ['Hz', 'kHz', 'MHz', 'GHz'], illuminance: ['lx'], carbon_dioxide: ['ppm'], carbon_monoxide: ['ppm'],
  pm1: UG, pm10: UG, pm25: UG, nitrogen_dioxide: UG, ozone: UG, sulphur_dioxide: UG, volatile_organic_compounds: UG,
  energy: ['J', 'kJ', 'MJ', 'GJ', 'mWh', 'Wh', 'kWh', 'MWh', 'GWh', 'TWh', 'cal', 'kcal', 'Mcal', 'Gcal'],
  pressure: ['Pa', 'hPa', 'kPa', 'bar', 'cbar', 'mbar', 'mmHg', 'inHg', 'inH₂O', 'psi'],
  duration: ['d', 'h', 'min', 's', 'ms', 'µs'], wind_direction: ['°'], signal_strength: ['dB', 'dBm'], aqi: [null], ph: [null],
};

export const BINARY_SENSOR_CLASSES = ['battery', 'battery_charging', 'carbon_monoxide', 'cold', 'connectivity', 'door', 'garage_door',
  'gas', 'heat', 'light', 'lock', 'moisture', 'motion', 'moving', 'occupancy', 'opening', 'plug', 'power', 'presence', 'problem',
  'running', 'safety', 'smoke', 'sound', 'tamper', 'update', 'vibration', 'window'];
export const NUMBER_CLASSES = Object.keys(SENSOR_STATE_CLASSES).filter((c) => !NON_NUMERIC.has(c));
export const SWITCH_CLASSES = ['outlet', 'switch'];

const ID = /^[a-zA-Z0-9_-]+$/;
const id = z.string().regex(ID, 'expected [a-zA-Z0-9_-] only');
/** a topic to publish to or subscribe to exactly: no wildcards */
const topic = z.string().min(1).regex(/^[^#+\u0000]+$/, 'expected a topic without wildcards');
const template = z.string().min(1).refine((s) => s.includes('{{') || s.includes('{%'), 'expected a Jinja template');

const device = z.strictObject({
  identifiers: z.union([id, z.array(id).min(1)]), connections: z.array(z.tuple([z.string(), z.string()])).optional(),
  name: z.string().min(1), manufacturer: z.string().optional(), model: z.string().optional(), model_id: z.string().optional(),
  hw_version: z.string().optional(), sw_version: z.string().optional(), suggested_area: z.string().optional(),
  serial_number: z.string().optional(), configuration_url: z.string().url().optional(), via_device: id.optional(),
});
const origin = z.strictObject({ name: z.string().min(1), sw_version: z.string().optional(), support_url: z.string().url().optional() });
const availabilityEntry = z.strictObject({
  topic, value_template: template.optional(), payload_available: z.string().optional(), payload_not_available: z.string().optional(),
});

const entity = {
  platform: z.enum(['sensor', 'binary_sensor', 'number', 'switch', 'text']),
  unique_id: id,
  name: z.string().min(1).nullable().optional(),
  state_topic: topic.optional(),
  value_template: template.optional(),
  availability: z.array(availabilityEntry).optional(),
  availability_mode: z.enum(['all', 'any', 'latest']).optional(),
  entity_category: z.enum(['config', 'diagnostic']).optional(),
  enabled_by_default: z.boolean().optional(),
  icon: z.string().regex(/^[a-z0-9-]+:[a-z0-9-]+$/).optional(),
  qos: z.literal([0, 1, 2]).optional(),
  encoding: z.string().optional(),
  json_attributes_topic: topic.optional(),
  json_attributes_template: template.optional(),
  object_id: z.string().optional(),
  default_entity_id: z.string().optional(),
};
const commanded = { command_topic: topic, command_template: template.optional(), retain: z.boolean().optional(), optimistic: z.boolean().optional() };
const unit = z.string().min(1);

const sensor = z.strictObject({
  ...entity, platform: z.literal('sensor'), state_topic: topic,
  device_class: z.enum(Object.keys(SENSOR_STATE_CLASSES) as [string, ...string[]]).optional(),
  state_class: z.enum(ALL_STATE as [string, ...string[]]).optional(), unit_of_measurement: unit.optional(),
  expire_after: z.number().int().min(0).optional(), force_update: z.boolean().optional(),
  suggested_display_precision: z.number().int().min(0).optional(), last_reset_value_template: template.optional(),
  options: z.array(z.string()).min(1).optional(),
}).superRefine((c, ctx) => {
  const dc = c.device_class;
  if (dc !== undefined && c.state_class !== undefined && !SENSOR_STATE_CLASSES[dc]!.includes(c.state_class)) {
    ctx.addIssue({ code: 'custom', message: `state_class ${c.state_class} is impossible with device_class ${dc}` });
  }
  checkUnit(dc, c.unit_of_measurement, ctx);
  if (c.state_class === 'measurement_angle' && c.unit_of_measurement !== '°') ctx.addIssue({ code: 'custom', message: 'state_class measurement_angle needs unit °' });
  if (dc !== undefined && NON_NUMERIC.has(dc) && (c.state_class !== undefined || c.unit_of_measurement !== undefined)) {
    ctx.addIssue({ code: 'custom', message: `device_class ${dc} takes no state_class or unit` });
  }
  if (c.options !== undefined && dc !== 'enum') ctx.addIssue({ code: 'custom', message: 'options need device_class enum' });
  if (c.last_reset_value_template !== undefined && c.state_class !== 'total') ctx.addIssue({ code: 'custom', message: 'last_reset_value_template needs state_class total' });
});

const binarySensor = z.strictObject({
  ...entity, platform: z.literal('binary_sensor'), state_topic: topic,
  device_class: z.enum(BINARY_SENSOR_CLASSES as [string, ...string[]]).optional(),
  payload_on: z.string().optional(), payload_off: z.string().optional(), off_delay: z.number().int().min(0).optional(),
  expire_after: z.number().int().min(0).optional(), force_update: z.boolean().optional(),
});

const number = z.strictObject({
  ...entity, ...commanded, platform: z.literal('number'),
  device_class: z.enum(NUMBER_CLASSES as [string, ...string[]]).optional(), unit_of_measurement: unit.optional(),
  min: z.number().optional(), max: z.number().optional(), step: z.number().min(0.001).optional(),
  mode: z.enum(['auto', 'box', 'slider']).optional(), payload_reset: z.string().optional(),
}).superRefine((c, ctx) => {
  // HA's defaults are 1 and 100
  if ((c.max ?? 100) <= (c.min ?? 1)) ctx.addIssue({ code: 'custom', message: `max (${c.max ?? 100}) must be > min (${c.min ?? 1})` });
  checkUnit(c.device_class, c.unit_of_measurement, ctx);
});

const switchEntity = z.strictObject({
  ...entity, ...commanded, platform: z.literal('switch'), device_class: z.enum(SWITCH_CLASSES as [string, ...string[]]).optional(),
  payload_on: z.string().optional(), payload_off: z.string().optional(), state_on: z.string().optional(), state_off: z.string().optional(),
});

const text = z.strictObject({
  ...entity, ...commanded, platform: z.literal('text'),
  min: z.number().int().min(0).optional(), max: z.number().int().min(1).max(255).optional(),
  mode: z.enum(['text', 'password']).optional(), pattern: z.string().optional(),
}).superRefine((c, ctx) => {
  if ((c.max ?? 255) < (c.min ?? 0)) ctx.addIssue({ code: 'custom', message: 'text max must be >= min' });
});

function checkUnit(dc: string | undefined, u: string | undefined, ctx: z.RefinementCtx): void {
  const allowed = dc === undefined ? undefined : DEVICE_CLASS_UNITS[dc];
  if (allowed && !allowed.includes(u ?? null)) ctx.addIssue({ code: 'custom', message: `unit ${JSON.stringify(u ?? null)} is not valid with device_class ${dc} (${allowed.join(', ')})` });
}

const component = z.discriminatedUnion('platform', [sensor, binarySensor, number, switchEntity, text]);

/** a device discovery payload, keys expanded */
export const deviceDiscoverySchema = z.strictObject({
  device, origin,
  components: z.record(id, component).refine((c) => Object.keys(c).length > 0, 'at least one component'),
  // the shared options HA documents for the root of a device discovery payload
  availability: z.array(availabilityEntry).min(1).optional(),
  availability_mode: z.enum(['all', 'any', 'latest']).optional(),
  availability_topic: topic.optional(),
  availability_template: template.optional(),
  state_topic: topic.optional(), command_topic: topic.optional(), qos: z.literal([0, 1, 2]).optional(), encoding: z.string().optional(),
});
export type DeviceDiscovery = z.output<typeof deviceDiscoverySchema>;

/** abbreviated keys → full ones (as HA's discovery does); a key given both ways is an error */
function expand(o: Record<string, unknown>, table: Record<string, string>, where: string, errors: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const full = table[k] ?? k;
    if (full in out) errors.push(`${where}: "${full}" given twice (abbreviated and in full)`);
    out[full] = v;
  }
  return out;
}

/** validates one published discovery message (topic and payload) as HA would read it */
export function checkDiscovery(topicName: string, payload: string): { ok: true; config: DeviceDiscovery } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const m = /^[^#+]+\/device\/([^/]+)\/config$/.exec(topicName);
  if (!m || !ID.test(m[1]!)) errors.push(`${topicName}: not <prefix>/device/<[a-zA-Z0-9_-]+>/config`);
  let doc: unknown;
  try {
    doc = JSON.parse(payload);
  } catch {
    return { ok: false, errors: [...errors, 'payload is not JSON'] };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, errors: [...errors, 'payload is not a JSON object'] };
  const root = expand(doc as Record<string, unknown>, ABBREVIATIONS, 'root', errors);
  const obj = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  if (obj(root.device)) root.device = expand(obj(root.device)!, DEVICE_ABBREVIATIONS, 'device', errors);
  if (obj(root.origin)) root.origin = expand(obj(root.origin)!, ORIGIN_ABBREVIATIONS, 'origin', errors);
  const avail = (list: unknown, where: string) => (Array.isArray(list) ? list.map((a, i) => (obj(a) ? expand(obj(a)!, ABBREVIATIONS, `${where}[${i}]`, errors) : a)) : list);
  root.availability = avail(root.availability, 'availability');
  if (root.availability === undefined) delete root.availability;
  const comps = obj(root.components);
  if (comps) {
    for (const [k, c] of Object.entries(comps)) {
      if (!obj(c)) continue;
      const e = expand(obj(c)!, ABBREVIATIONS, `components.${k}`, errors);
      if (e.availability !== undefined) e.availability = avail(e.availability, `components.${k}.availability`);
      comps[k] = e;
    }
  }
  const r = deviceDiscoverySchema.safeParse(root);
  if (!r.success) errors.push(...r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  if (r.success && m) {
    const ids = ([] as string[]).concat(r.data.device.identifiers);
    if (!ids.includes(m[1]!)) errors.push(`the topic's object id ${m[1]} is not among the device identifiers ${ids.join(', ')}`);
    const uids = Object.values(r.data.components).map((c) => c.unique_id);
    if (new Set(uids).size !== uids.length) errors.push('unique_id used twice');
  }
  return errors.length === 0 && r.success ? { ok: true, config: r.data } : { ok: false, errors };
}

/** throws with every problem when a published discovery message would not be accepted */
export function assertDiscovery(topicName: string, payload: string): DeviceDiscovery {
  const r = checkDiscovery(topicName, payload);
  if (!r.ok) throw new Error(`invalid Home Assistant discovery on ${topicName}:\n  ${r.errors.join('\n  ')}\n${payload}`);
  return r.config;
}
