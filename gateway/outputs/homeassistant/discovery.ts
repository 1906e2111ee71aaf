// Home Assistant's device-based MQTT discovery (SPEC §4a, HA 2024.11+): one
// retained config per edgegate device, with its tags as components, and one
// for the gateway itself. Pure functions of the config: the same config
// always gives the same payloads, so a reload can tell what changed by
// comparing strings. Keys use HA's documented abbreviations throughout.
import { modbusTagType, type DeviceConfig, type TagConfig, type ValueType } from '../../../config/schema.js';
import { valueTypeOf } from '../../tags.js';

export const ORIGIN_NAME = 'edgegate';

/** what a config for one gateway is built from */
export interface DiscoveryContext {
  gatewayId: string;
  /** mqtt.topic_prefix: the state and availability topics live under it */
  prefix: string;
  /** homeassistant.discovery_prefix */
  discoveryPrefix: string;
  version: string;
}

export type Platform = 'sensor' | 'binary_sensor' | 'number' | 'switch' | 'text';

export type Component = Record<string, unknown> & { p: Platform; uniq_id: string };

export interface DiscoveryPayload {
  dev: Record<string, unknown>;
  /** url (a support URL) is left out: the project publishes none yet */
  o: { name: string; sw: string };
  avty: Array<Record<string, string>>;
  avty_mode?: 'all' | 'any' | 'latest';
  cmps: Record<string, Component>;
}

/** the bound of a number entity whose tag sets no min/max (HA's own default range is 1..100, and it drops states outside) */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;
/**
 * device classes with which HA refuses state class `measurement` (totals,
 * money, angles, non-numeric): a number tag of these gets no default state
 * class, the config says which (sensor/const.py DEVICE_CLASS_STATE_CLASSES)
 */
const NOT_MEASUREMENT = new Set(['energy', 'gas', 'monetary', 'volume', 'water', 'wind_direction', 'date', 'enum', 'timestamp']);
/** HA's number entity refuses a step below 0.001 */
const MIN_STEP = 0.001;

export const gatewayObjectId = (gatewayId: string): string => `edgegate_${gatewayId}`;
export const deviceObjectId = (gatewayId: string, deviceId: string): string => `edgegate_${gatewayId}_${deviceId}`;
export const configTopic = (discoveryPrefix: string, objectId: string): string => `${discoveryPrefix}/device/${objectId}/config`;

/**
 * A tag name as a component key and in unique_id: HA wants [a-zA-Z0-9_-];
 * other characters become "_", with a short hash of the name when that changed
 * it, so that "a.b" and "a_b" stay two entities.
 */
export function componentKey(name: string): string {
  const safe = name.replace(/[^a-zA-Z0-9_-]/g, '_');
  return safe === name ? name : `${safe}_${hash(name)}`;
}

function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36).slice(0, 5);
}

/** a tag's value type as the gateway converts it (Modbus register types decoded), undefined: untyped */
export function tagValueType(tag: TagConfig): ValueType | undefined {
  return valueTypeOf('area' in tag ? modbusTagType(tag) : tag.type);
}

/** SPEC §4a: the platform from the type and `writable` */
export function tagPlatform(tag: TagConfig): Platform {
  const type = tagValueType(tag);
  const numeric = type === 'number' || type === 'integer';
  if (tag.writable) {
    if (numeric) return 'number';
    if (type === 'boolean') return 'switch';
    // a string tag, or an untyped one: the text typed in HA is sent as the write payload
    return 'text';
  }
  return type === 'boolean' ? 'binary_sensor' : 'sensor';
}

/**
 * The smallest change a number entity offers: 10^-decimals, 1 for an
 * integer tag, else 0.001 (HA's smallest step; the field takes any value
 * typed in a box anyway).
 */
export function numberStep(tag: TagConfig): number {
  if (tag.decimals !== undefined) return Math.max(MIN_STEP, Number((10 ** -tag.decimals).toFixed(tag.decimals)));
  const type = tagValueType(tag);
  const scaled = tag.scale !== undefined || tag.offset !== undefined;
  return type === 'integer' && !scaled ? 1 : MIN_STEP;
}

function availability(ctx: DiscoveryContext, deviceId?: string): Array<Record<string, string>> {
  const list = [{ t: `${ctx.prefix}/status`, val_tpl: '{{ value_json.state }}' }];
  if (deviceId !== undefined) {
    list.push({ t: `${ctx.prefix}/devices/${deviceId}/status`, val_tpl: "{{ 'online' if value_json.state == 'connected' else 'offline' }}" });
  }
  return list;
}

const origin = (ctx: DiscoveryContext) => ({ name: ORIGIN_NAME, sw: ctx.version });

function tagComponent(ctx: DiscoveryContext, device: DeviceConfig, name: string, tag: TagConfig): Component {
  const p = tagPlatform(tag);
  const type = tagValueType(tag);
  const base = `${ctx.prefix}/devices/${device.id}`;
  const c: Component = {
    p,
    uniq_id: `${deviceObjectId(ctx.gatewayId, device.id)}_${componentKey(name)}`,
    name,
    stat_t: `${base}/tags/${name}`,
    val_tpl: '{{ value_json.value }}',
  };
  if (tag.unit !== undefined && tag.unit !== '' && p !== 'binary_sensor' && p !== 'switch' && p !== 'text') c.unit_of_meas = tag.unit;
  if (tag.device_class !== undefined && p !== 'text') c.dev_cla = tag.device_class;
  switch (p) {
    case 'sensor':
      // a state class makes HA keep long-term statistics, and needs numbers
      if (tag.state_class !== undefined) c.stat_cla = tag.state_class;
      else if ((type === 'number' || type === 'integer') && !NOT_MEASUREMENT.has(tag.device_class ?? '')) c.stat_cla = 'measurement';
      break;
    case 'binary_sensor':
      c.val_tpl = "{{ 'ON' if value_json.value else 'OFF' }}";
      break;
    case 'number':
      c.cmd_t = `${base}/set/${name}`;
      c.min = tag.min ?? -UNBOUNDED;
      c.max = tag.max ?? UNBOUNDED;
      c.step = numberStep(tag);
      c.mode = 'box';
      break;
    case 'switch':
      c.cmd_t = `${base}/set/${name}`;
      // the write payload is JSON: true / false
      c.pl_on = 'true';
      c.pl_off = 'false';
      c.val_tpl = "{{ 'ON' if value_json.value else 'OFF' }}";
      c.stat_on = 'ON';
      c.stat_off = 'OFF';
      break;
    case 'text':
      c.cmd_t = `${base}/set/${name}`;
      // a string tag takes a JSON string: HA's text is quoted; an untyped tag takes the text as JSON (42, true, "on")
      if (type === 'string') c.cmd_tpl = '{{ value | to_json }}';
      break;
  }
  return c;
}

/** the retained config of one edgegate device; its tags without `homeassistant: false` are its components */
export function deviceDiscovery(ctx: DiscoveryContext, device: DeviceConfig): DiscoveryPayload {
  const cmps: Record<string, Component> = {};
  for (const [key, tag] of Object.entries(device.tags) as Array<[string, TagConfig]>) {
    if (tag.homeassistant === false) continue;
    const name = tag.name ?? key;
    cmps[componentKey(name)] = tagComponent(ctx, device, name, tag);
  }
  return {
    dev: { ids: [deviceObjectId(ctx.gatewayId, device.id)], name: device.id, mdl: device.driver, via_device: gatewayObjectId(ctx.gatewayId) },
    o: origin(ctx),
    avty: availability(ctx, device.id),
    avty_mode: 'all',
    cmps,
  };
}

/** the gateway as a device: diagnostic sensors from the retained P/stats and P/status */
export function gatewayDiscovery(ctx: DiscoveryContext): DiscoveryPayload {
  const id = gatewayObjectId(ctx.gatewayId);
  const diagnostic = { ent_cat: 'diagnostic' };
  return {
    dev: { ids: [id], name: `edgegate ${ctx.gatewayId}`, mdl: 'edgegate gateway', mf: 'edgegate', sw: ctx.version },
    o: origin(ctx),
    avty: availability(ctx),
    cmps: {
      readings_per_s: {
        p: 'sensor', uniq_id: `${id}_readings_per_s`, name: 'Readings per second', stat_t: `${ctx.prefix}/stats`,
        val_tpl: '{{ value_json.readings_per_s }}', unit_of_meas: 'readings/s', stat_cla: 'measurement', ...diagnostic,
      },
      buffered_batches: {
        p: 'sensor', uniq_id: `${id}_buffered_batches`, name: 'Buffered batches', stat_t: `${ctx.prefix}/stats`,
        val_tpl: '{{ value_json.buffer.batches }}', unit_of_meas: 'batches', stat_cla: 'measurement', ...diagnostic,
      },
      broker: {
        p: 'binary_sensor', uniq_id: `${id}_broker`, name: 'Broker connection', dev_cla: 'connectivity', stat_t: `${ctx.prefix}/status`,
        val_tpl: "{{ 'ON' if value_json.state == 'online' else 'OFF' }}", ...diagnostic,
      },
    },
  };
}

/** every retained config this gateway publishes for a config, by topic */
export function discoveryConfigs(ctx: DiscoveryContext, devices: readonly DeviceConfig[]): Map<string, string> {
  const out = new Map<string, string>();
  out.set(configTopic(ctx.discoveryPrefix, gatewayObjectId(ctx.gatewayId)), JSON.stringify(gatewayDiscovery(ctx)));
  for (const d of devices) {
    if (!d.enabled) continue;
    out.set(configTopic(ctx.discoveryPrefix, deviceObjectId(ctx.gatewayId, d.id)), JSON.stringify(deviceDiscovery(ctx, d)));
  }
  return out;
}

/**
 * Is a retained config one this gateway published (in any earlier version)?
 * Its origin is edgegate and its device is this gateway or hangs off it
 * (via_device): the ids alone are ambiguous, "edgegate_a_b_c" may be device
 * "b_c" of gateway "a" or device "c" of gateway "a_b".
 */
export function isOwnConfig(payload: Buffer | string, gatewayId: string): boolean {
  if (payload.length === 0 || payload.length > 1024 * 1024) return false;
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString());
  } catch {
    return false;
  }
  if (typeof doc !== 'object' || doc === null) return false;
  const o = field(doc, 'o', 'origin');
  if (typeof o !== 'object' || o === null || field(o, 'name', 'name') !== ORIGIN_NAME) return false;
  const dev = field(doc, 'dev', 'device');
  if (typeof dev !== 'object' || dev === null) return false;
  const own = gatewayObjectId(gatewayId);
  const rawIds = field(dev, 'ids', 'identifiers');
  const ids = Array.isArray(rawIds) ? rawIds : [rawIds];
  return ids.includes(own) || field(dev, 'via_device', 'via_device') === own;
}

function field(o: object, short: string, full: string): unknown {
  const r = o as Record<string, unknown>;
  return r[short] ?? r[full];
}
