// The one schema of the configuration: validation and TypeScript types both
// come from here (z.output / z.input). Pure: no I/O, no side effects.
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

const ID = /^[A-Za-z0-9_-]+$/;

/** A duration: ms as a number, or "250ms", "5s", "2m", "1h". Output: ms. */
export const duration = z.unknown().transform((input, ctx): number => {
  const ms = parseDuration(input);
  if (ms === undefined) {
    ctx.issues.push({ code: 'custom', input, message: `expected a duration (milliseconds, or a string like "250ms", "5s", "2m", "1h", at most 24 days)` });
    return z.NEVER;
  }
  return ms;
});

/** a duration that must not be 0 (a 0 ms poll or stats interval would spin) */
export const positiveDuration = duration.refine((ms) => ms > 0, { message: 'expected a duration > 0' });

/** A size: bytes as a number, or "64KiB", "256MiB". Output: bytes. */
export const size = z.unknown().transform((input, ctx): number => {
  const bytes = parseSize(input);
  if (bytes === undefined) {
    ctx.issues.push({ code: 'custom', input, message: `expected a size (bytes, or a string like "64KiB", "256MiB")` });
    return z.NEVER;
  }
  return bytes;
});

const id = z.string().regex(ID, { message: 'expected an id of letters, digits, "_" or "-"' });
const nonNegative = z.number().min(0);
const positiveInt = z.number().int().positive();

// ---------------------------------------------------------------- tags

const tagCommon = {
  /** the tag name used on MQTT (default: the key) */
  name: z.string().regex(/^[^/#+\s]+$/, { message: 'expected a name without "/", "#", "+" or spaces' }).optional(),
  unit: z.string().optional(),
  description: z.string().optional(),
  scale: z.number().optional(),
  offset: z.number().optional(),
  /** decimal places the number is rounded to, after scale and offset */
  decimals: z.number().int().min(0).max(15).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  deadband: nonNegative.optional(),
  min_interval: duration.optional(),
  max_interval: duration.optional(),
  writable: z.boolean().optional(),
  /** Home Assistant (used only with homeassistant.enabled): the entity's device_class */
  device_class: z.string().regex(/^[a-z0-9_]+$/, { message: 'expected a Home Assistant device class like "temperature"' }).optional(),
  /** Home Assistant: measurement (default for number tags), total, total_increasing or measurement_angle */
  state_class: z.enum(['measurement', 'total', 'total_increasing', 'measurement_angle']).optional(),
  /** false: the tag is left out of Home Assistant discovery */
  homeassistant: z.boolean().optional(),
};

export const valueType = z.enum(['number', 'integer', 'boolean', 'string']);

type UntypedTag = { type?: z.output<typeof valueType> | undefined } & Partial<Record<'scale' | 'offset' | 'min' | 'max' | 'deadband' | 'decimals', number | undefined>>;

/**
 * A tag without a type that uses a numeric key is a number tag (SPEC §3):
 * settled here, once, so the pipeline, writes and every consumer see
 * `type: number`, and text reaching such a tag is a parse error.
 */
export function numberTagType<T extends UntypedTag>(tag: T): T {
  if (tag.type !== undefined) return tag;
  const numeric = tag.scale !== undefined || tag.offset !== undefined || tag.min !== undefined || tag.max !== undefined
    || (tag.deadband !== undefined && tag.deadband > 0) || tag.decimals !== undefined;
  return numeric ? { ...tag, type: 'number' } : tag;
}

export const serialTag = z.strictObject({ ...tagCommon, type: valueType.optional() }).transform(numberTagType);

export const modbusTag = z.strictObject({
  ...tagCommon,
  area: z.enum(['coil', 'discrete', 'holding', 'input']),
  address: z.number().int().min(0).max(65535),
  type: z.enum(['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64', 'string']).optional(),
  /** registers of a string tag */
  length: z.number().int().min(1).max(125).optional(),
  word_order: z.enum(['big', 'little']).default('big'),
  byte_swap: z.boolean().default(false),
});

/** a Modbus tag's type, with its area's default: bool for coils and discrete inputs, uint16 for registers */
export function modbusTagType(tag: z.output<typeof modbusTag>): NonNullable<z.output<typeof modbusTag>['type']> {
  if (tag.type !== undefined) return tag.type;
  return tag.area === 'coil' || tag.area === 'discrete' ? 'bool' : 'uint16';
}

export const opcuaTag = z.strictObject({
  ...tagCommon,
  type: valueType.optional(),
  node: z.string().min(1),
  sampling_interval: duration.optional(),
  queue_size: positiveInt.optional(),
}).transform(numberTagType);

// ---------------------------------------------------------------- devices

export const batchSettings = z.strictObject({
  max_readings: positiveInt.default(500),
  max_bytes: size.default(256 * 1024),
  max_wait: duration.default(1000),
});
const batchOverride = z.strictObject({
  max_readings: positiveInt.optional(),
  max_bytes: size.optional(),
  max_wait: duration.optional(),
});

const serialLine = {
  port: z.string().min(1),
  baud_rate: positiveInt.default(9600),
  data_bits: z.literal([5, 6, 7, 8]).default(8),
  parity: z.enum(['none', 'even', 'odd', 'mark', 'space']).default('none'),
  stop_bits: z.literal([1, 1.5, 2]).default(1),
};

/** the largest write a device takes, as an MQTT payload and as the command sent (bounds how long a write holds the line) */
const maxWriteBytes = z.unknown().transform((input, ctx): number => {
  const bytes = parseSize(input);
  if (bytes === undefined || bytes < 1 || bytes > 1024 * 1024) {
    ctx.issues.push({ code: 'custom', input, message: 'expected a size from 1 byte to 1MiB (bytes, or a string like "1KiB")' });
    return z.NEVER;
  }
  return bytes;
});

const deviceCommon = {
  id,
  enabled: z.boolean().default(true),
  batch: batchOverride.optional(),
  max_write_bytes: maxWriteBytes.default(1024),
};

export const serialDevice = z.strictObject({
  ...deviceCommon,
  driver: z.literal('serial'),
  ...serialLine,
  delimiter: z.string().min(1).default('\n'),
  encoding: z.enum(['utf8', 'ascii', 'latin1']).default('utf8'),
  max_line_length: size.default(4096),
  format: z.enum(['kv', 'json', 'csv', 'regex', 'nmea']).default('kv'),
  /** csv: the column names, in order */
  columns: z.array(z.string().min(1)).min(1).optional(),
  /** csv: the column separator (default ","); kv: the pair separator (default ";") */
  separator: z.string().min(1).optional(),
  /** regex: a pattern with named groups, one per tag */
  pattern: z.string().min(1).optional(),
  /** query/response instruments: sent every poll_interval */
  request: z.string().min(1).optional(),
  poll_interval: positiveDuration.default(1000),
  timeout: positiveDuration.default(1000),
  /** streaming instruments: no line for this long marks the device and reopens the port */
  no_data_timeout: duration.optional(),
  write_template: z.string().min(1).optional(),
  /** a write waits for a line matching pattern ({tag}, {value} filled in); that line is the acknowledgement, not data */
  write_ack: z.strictObject({
    pattern: z.string().min(1),
    timeout: positiveDuration.default(2000),
  }).optional(),
  tags: z.record(z.string().min(1), serialTag).prefault({}),
});

export const modbusRtuDevice = z.strictObject({
  ...deviceCommon,
  driver: z.literal('modbus-rtu'),
  ...serialLine,
  /** 0 is the broadcast address: no slave answers it, so it cannot be polled */
  unit_id: z.number().int().min(1).max(247).default(1),
  poll_interval: positiveDuration.default(1000),
  timeout: positiveDuration.default(1000),
  tags: z.record(z.string().min(1), modbusTag).prefault({}),
});

export const modbusTcpDevice = z.strictObject({
  ...deviceCommon,
  driver: z.literal('modbus-tcp'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(502),
  unit_id: z.number().int().min(0).max(255).default(1),
  poll_interval: positiveDuration.default(1000),
  timeout: positiveDuration.default(1000),
  tags: z.record(z.string().min(1), modbusTag).prefault({}),
});

export const opcuaDevice = z.strictObject({
  ...deviceCommon,
  driver: z.literal('opcua'),
  endpoint: z.string().regex(/^opc\.tcp:\/\/.+/, { message: 'expected an opc.tcp://host:port URL' }),
  security_mode: z.enum(['None', 'Sign', 'SignAndEncrypt']).default('None'),
  security_policy: z.enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss']).default('None'),
  username: z.string().optional(),
  password: z.string().optional(),
  pki_dir: z.string().optional(),
  auto_accept_server_certificate: z.boolean().default(false),
  sampling_interval: duration.default(1000),
  publishing_interval: positiveDuration.default(1000),
  queue_size: positiveInt.default(10),
  tags: z.record(z.string().min(1), opcuaTag).prefault({}),
});

export const device = z.discriminatedUnion('driver', [
  serialDevice.superRefine(checkDevice),
  modbusRtuDevice.superRefine(checkDevice),
  modbusTcpDevice.superRefine(checkDevice),
  opcuaDevice.superRefine(checkDevice),
]);

// ---------------------------------------------------------------- gateway

export const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

const tlsSettings = z.strictObject({
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  reject_unauthorized: z.boolean().default(true),
});

/** 127.0.0.0/8 as a dotted-quad literal */
const LOOPBACK_V4 = /^127(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** a topic (or prefix) to publish to: no wildcards, no leading or trailing "/" */
const topicFilterFree = z.string().min(1).regex(/^[^#+]+$/, { message: 'expected a topic without "#" or "+"' })
  .refine((s) => !s.startsWith('/') && !s.endsWith('/'), { message: 'must not start or end with "/"' });

export const configSchema = z.strictObject({
  gateway: z.strictObject({
    id: id.optional(),
    /** an alias of log.level, kept for configs written before the log section */
    log_level: logLevel.optional(),
  }).prefault({}),
  log: z.strictObject({
    level: logLevel.optional(),
    /** auto: journal under systemd, pretty on a terminal, else json */
    format: z.enum(['auto', 'json', 'pretty', 'journal']).default('auto'),
  }).prefault({}),
  mqtt: z.strictObject({
    url: z.string().regex(/^(mqtts?|wss?):\/\/.+|^embedded$/, { message: 'expected an mqtt://, mqtts://, ws:// or wss:// URL, or "embedded"' }).default('mqtt://127.0.0.1:1883'),
    client_id: z.string().min(1).max(128).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    tls: tlsSettings.optional(),
    protocol_version: z.literal([3, 4, 5]).default(4),
    qos: z.literal([0, 1]).default(1),
    topic_prefix: z.string().regex(/^[^#+]+$/, { message: 'expected a topic without "#" or "+"' })
      .refine((s) => !s.startsWith('/') && !s.endsWith('/'), { message: 'must not start or end with "/"' }).optional(),
    retain_last_values: z.boolean().default(false),
    keepalive: duration.default(30_000),
    connect_timeout: positiveDuration.default(10_000),
    /** publishes handed to the client and not yet acknowledged, at most */
    max_inflight: z.number().int().min(1).max(65535).default(64),
  }).superRefine((m, ctx) => {
    if (m.username !== undefined && m.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], input: undefined, message: NEEDS_PASSWORD });
  }).prefault({}),
  buffer: z.strictObject({
    dir: z.string().min(1).optional(),
    max_size: size.default(256 * 1024 * 1024),
    durability: z.enum(['on_outage', 'always']).default('on_outage'),
    /** readings per second while a backlog is replayed after an outage; 0: unlimited */
    replay_rate: z.number().refine((r) => r === 0 || (r >= 1 && Number.isFinite(r)), { message: 'expected 0 (unlimited) or a number of readings per second >= 1' }).default(0),
    /** a backlog's replay starts after a random delay of up to this, so that gateways reconnecting together spread out */
    replay_jitter: duration.refine((ms) => ms <= 60_000, { message: 'expected a duration of at most 60s' }).default(3000),
  }).prefault({}),
  batch: batchSettings.prefault({}),
  stats_interval: positiveDuration.default(60_000),
  homeassistant: z.strictObject({
    enabled: z.boolean().default(false),
    discovery_prefix: topicFilterFree.default('homeassistant'),
    /** Home Assistant's birth and last will: "online" there means it restarted */
    status_topic: topicFilterFree.default('homeassistant/status'),
  }).prefault({}),
  sparkplug: z.strictObject({
    enabled: z.boolean().default(false),
    group_id: id.default('edgegate'),
    /** default: gateway.id */
    edge_node_id: id.optional(),
    /** publish births only while this host application's STATE says online */
    primary_host_id: id.optional(),
    /** default: mqtt.url; a connection of its own (its last will is NDEATH) */
    url: z.string().regex(/^(mqtts?|wss?):\/\/.+|^embedded$/, { message: 'expected an mqtt://, mqtts://, ws:// or wss:// URL, or "embedded"' }).optional(),
    /** default: edgegate-<gateway.id>-spb */
    client_id: z.string().min(1).max(128).optional(),
    /** default (with username, password and tls): mqtt's, when url is absent or equal to mqtt.url */
    username: z.string().optional(),
    password: z.string().optional(),
    tls: tlsSettings.optional(),
  }).superRefine((m, ctx) => {
    if (m.username !== undefined && m.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], input: undefined, message: NEEDS_PASSWORD });
  }).prefault({}),
  http: z.strictObject({
    /** host:port; beyond loopback a username and password are required */
    listen: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, { message: 'expected host:port, like 127.0.0.1:8080' }),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
  }).superRefine((h, ctx) => {
    if (h.username !== undefined && h.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], input: undefined, message: NEEDS_PASSWORD });
    if (h.password !== undefined && h.username === undefined) ctx.addIssue({ code: 'custom', path: ['username'], input: undefined, message: 'required: a password needs a username' });
    // the packaged credential files start out empty: an empty one must not open the page to any client knowing the username
    if (h.password === '') ctx.addIssue({ code: 'custom', path: ['password'], input: undefined, message: 'empty: HTTP basic auth needs a password (is the credential file still empty?)' });
    const colon = h.listen.lastIndexOf(':');
    const port = Number(h.listen.slice(colon + 1));
    // 0 (any free port) stays allowed: the demo and tests bind that way
    if (port > 65535) ctx.addIssue({ code: 'custom', path: ['listen'], input: h.listen, message: `port ${port} is out of range: expected at most 65535` });
    const host = h.listen.slice(0, colon).replace(/^\[|\]$/g, '');
    // IP literals only: a name like 127.example.com may resolve anywhere
    const loopback = host === 'localhost' || host === '::1' || LOOPBACK_V4.test(host);
    if (!loopback && (h.username === undefined || h.password === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['listen'], input: h.listen, message: `listening on ${host || 'every interface'} (beyond loopback) needs username and password_file (HTTP basic auth)` });
    }
  }).optional(),
  devices: z.array(device).default([]),
}).superRefine((cfg, ctx) => {
  // runs even when other parts are invalid, so duplicates are reported with the rest
  const devices: unknown = (cfg as { devices?: unknown }).devices;
  if (!Array.isArray(devices)) return;
  const seen = new Map<string, number>();
  devices.forEach((d: unknown, i) => {
    const id = (d as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') return;
    const first = seen.get(id);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['devices', i, 'id'], input: id, message: `duplicate device id (also devices[${first}].id)` });
    else seen.set(id, i);
  });
  // a serial port is opened by one device; only Modbus RTU devices share one (the bus takes turns)
  const holders = new Map<string, [number, string]>();
  devices.forEach((d: unknown, i) => {
    const m = d as Partial<Record<'driver' | 'port' | 'enabled', unknown>> | null;
    if ((m?.driver !== 'serial' && m?.driver !== 'modbus-rtu') || typeof m.port !== 'string' || m.enabled === false) return;
    const first = holders.get(m.port);
    if (first === undefined) holders.set(m.port, [i, m.driver]);
    else if (first[1] !== 'modbus-rtu' || m.driver !== 'modbus-rtu') {
      ctx.addIssue({ code: 'custom', path: ['devices', i, 'port'], input: m.port, message: `${m.port} is already the port of devices[${first[0]}] (${first[1]}): only modbus-rtu devices share a port, as one bus` });
    }
  });
  // Modbus RTU devices on one port share the bus, and so its line settings
  const lines = new Map<string, [number, string]>();
  devices.forEach((d: unknown, i) => {
    const m = d as Partial<Record<'driver' | 'port' | 'baud_rate' | 'data_bits' | 'parity' | 'stop_bits', unknown>> | null;
    if (m?.driver !== 'modbus-rtu' || typeof m.port !== 'string') return;
    const line = `${String(m.baud_rate)} baud, ${String(m.data_bits)} data bits, parity ${String(m.parity)}, ${String(m.stop_bits)} stop bits`;
    const first = lines.get(m.port);
    if (first === undefined) lines.set(m.port, [i, line]);
    else if (first[1] !== line) ctx.addIssue({ code: 'custom', path: ['devices', i, 'port'], input: m.port, message: `devices on one port share its line settings: devices[${first[0]}] uses ${first[1]}, this one ${line}` });
  });
}, { when: () => true });

/** what OPC UA's string form of a NodeId allows (Part 6, 5.3.1.10); the namespace index may be left out for 0 */
const NODE_ID = /^(ns=\d{1,5};)?(i=\d{1,10}|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/]+={0,2})$/s;

/** an empty password is one (the broker decides); a missing one is almost always a forgotten password_file */
const NEEDS_PASSWORD = 'required: a username needs a password (password_file, or password)';

type AnyDevice = z.output<typeof serialDevice> | z.output<typeof modbusRtuDevice> | z.output<typeof modbusTcpDevice> | z.output<typeof opcuaDevice>;

function checkDevice(d: AnyDevice, ctx: z.RefinementCtx): void {
  const at = (...p: (string | number)[]) => p;
  const names = new Map<string, string>();
  for (const [key, tag] of Object.entries(d.tags)) {
    if (tag.min !== undefined && tag.max !== undefined && tag.min > tag.max) {
      ctx.addIssue({ code: 'custom', path: at('tags', key, 'min'), input: tag.min, message: `min must not exceed max (${tag.max})` });
    }
    const name = tag.name ?? key;
    if (tag.name === undefined && /[/#+\s]/.test(key)) {
      ctx.addIssue({ code: 'custom', path: at('tags', key), input: key, message: 'a tag key used as the MQTT name must not contain "/", "#", "+" or spaces (or give the tag a name)' });
    }
    const other = names.get(name);
    if (other !== undefined) ctx.addIssue({ code: 'custom', path: at('tags', key, 'name'), input: name, message: `tag name "${name}" is also used by tags.${other}` });
    else names.set(name, key);
    if (d.driver === 'serial' && tag.writable && d.write_template === undefined) {
      ctx.addIssue({ code: 'custom', path: at('tags', key, 'writable'), input: true, message: 'a writable serial tag needs the device\'s write_template' });
    }
  }
  if (d.driver === 'serial') {
    if (d.write_ack !== undefined) {
      if (d.write_template === undefined) ctx.addIssue({ code: 'custom', path: at('write_ack'), input: undefined, message: 'write_ack needs write_template (what a write sends)' });
      try {
        new RegExp(d.write_ack.pattern.replace(/\{(tag|value)\}/g, 'x'));
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: at('write_ack', 'pattern'), input: d.write_ack.pattern, message: `invalid regular expression: ${(e as Error).message}` });
      }
    }
    if (d.format === 'csv' && d.columns === undefined) ctx.addIssue({ code: 'custom', path: at('columns'), input: undefined, message: 'format csv needs columns' });
    if (d.format === 'regex') {
      if (d.pattern === undefined) ctx.addIssue({ code: 'custom', path: at('pattern'), input: undefined, message: 'format regex needs a pattern' });
      else {
        try {
          const re = new RegExp(d.pattern);
          if (!/\(\?<[A-Za-z_$][\w$]*>/.test(re.source)) ctx.addIssue({ code: 'custom', path: at('pattern'), input: d.pattern, message: 'expected a pattern with named groups, like (?<T>[0-9.]+)' });
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: at('pattern'), input: d.pattern, message: `invalid regular expression: ${(e as Error).message}` });
        }
      }
    }
  }
  if (d.driver === 'opcua') {
    for (const [key, tag] of Object.entries(d.tags)) {
      if (!NODE_ID.test(tag.node)) ctx.addIssue({ code: 'custom', path: at('tags', key, 'node'), input: tag.node, message: 'expected a node id like "ns=2;s=Line1.Speed" (ns=<n>; then i=<number>, s=<string>, g=<guid> or b=<base64>)' });
    }
    if (d.username !== undefined && d.password === undefined) ctx.addIssue({ code: 'custom', path: at('password'), input: undefined, message: NEEDS_PASSWORD });
    if ((d.security_mode === 'None') !== (d.security_policy === 'None')) {
      const message = d.security_mode === 'None' ? `security_policy ${d.security_policy} needs security_mode Sign or SignAndEncrypt` : `security_mode ${d.security_mode} needs a security_policy other than None`;
      ctx.addIssue({ code: 'custom', path: at('security_policy'), input: d.security_policy, message });
    }
  }
  if (d.driver === 'modbus-rtu' || d.driver === 'modbus-tcp') {
    for (const [key, tag] of Object.entries(d.tags)) {
      const bitArea = tag.area === 'coil' || tag.area === 'discrete';
      if (bitArea && tag.type !== undefined && tag.type !== 'bool') ctx.addIssue({ code: 'custom', path: at('tags', key, 'type'), input: tag.type, message: `area ${tag.area} holds bits: type must be bool` });
      if (!bitArea && tag.type === 'bool') ctx.addIssue({ code: 'custom', path: at('tags', key, 'type'), input: tag.type, message: `area ${tag.area} holds registers: type bool is for coil or discrete` });
      if (tag.type === 'string' && tag.length === undefined) ctx.addIssue({ code: 'custom', path: at('tags', key, 'length'), input: undefined, message: 'a string tag needs length (registers)' });
      if (tag.writable && (tag.area === 'discrete' || tag.area === 'input')) ctx.addIssue({ code: 'custom', path: at('tags', key, 'writable'), input: true, message: `area ${tag.area} is read-only` });
    }
  }
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type DeviceConfig = z.output<typeof device>;
export type SerialDeviceConfig = z.output<typeof serialDevice>;
export type ModbusRtuDeviceConfig = z.output<typeof modbusRtuDevice>;
export type ModbusTcpDeviceConfig = z.output<typeof modbusTcpDevice>;
export type OpcuaDeviceConfig = z.output<typeof opcuaDevice>;
export type TagConfig = z.output<typeof serialTag> | z.output<typeof modbusTag> | z.output<typeof opcuaTag>;
export type BatchSettings = z.output<typeof batchSettings>;
export type MqttConfig = Config['mqtt'];
export type ValueType = z.output<typeof valueType>;

/** The config after defaults that depend on the host (gateway id, prefix, dirs). */
export interface ResolvedConfig extends Config {
  gateway: Config['gateway'] & { id: string };
  mqtt: Config['mqtt'] & { client_id: string; topic_prefix: string };
  buffer: Config['buffer'] & { dir: string };
  sparkplug: Config['sparkplug'] & { edge_node_id: string };
}
