// A Sparkplug host for tests: records every message under spBv1.0/# decoded
// with the protobuf decoder (64-bit numbers as plain numbers; a data
// metric's datatype, absent on the wire, from the birth that defined its
// alias, as a host application does), and publishes STATE, NCMD and DCMD the
// way a host application does.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import proto from 'sparkplug-payload/lib/sparkplugPayloadProto.js';
import { parseConfigText } from '../../config/load.js';
import type { ResolvedConfig } from '../../config/schema.js';
import { createOutputs } from '../../gateway/cli/outputs.js';
import { Gateway } from '../../gateway/gateway.js';
import type { SparkplugOutput } from '../../gateway/outputs/sparkplug/index.js';
import { decode, encode, toNumber, type DataType, type UMetric, type UPayload } from '../../gateway/outputs/sparkplug/payload.js';
import { gatewayConfig } from './e2e.js';
import { startMosquitto } from './mosquitto.js';
import { captureLog } from './mqtt-fixtures.js';
import { tempDir, waitFor } from './peers.js';
import { openInstrument, ptyPair, type InstrumentEnd, type PtyPair } from './socat.js';

export interface SpMetric { name?: string; alias?: number; type: string; value: unknown; timestamp?: number; isHistorical?: boolean; properties?: UMetric['properties'] }
export interface SpMessage {
  topic: string; verb: string; device?: string; seq?: number; timestamp?: number; metrics: SpMetric[]; retain: boolean; qos: number;
  /** how many metrics carry a datatype on the wire */
  datatypes: number;
}

const num = (v: unknown) => (v === undefined || v === null ? undefined : toNumber(v) ?? (v as number));

/** types: alias → datatype of the births, by device ('' for the node) */
export function decodeMessage(topic: string, payload: Buffer, retain = false, qos = 0, types?: Map<string, Map<number, DataType>>): SpMessage {
  const parts = topic.split('/');
  const known = types?.get(parts[4] ?? '');
  const p: UPayload = decode(payload, (m) => (m.alias !== undefined ? known?.get(m.alias) : undefined));
  const datatypes = proto.org.eclipse.tahu.protobuf.Payload.decode(payload).metrics.filter((m) => Object.hasOwn(m, 'datatype')).length;
  const msg: SpMessage = { topic, verb: parts[2]!, metrics: [], retain, qos, datatypes };
  if (parts[4] !== undefined) msg.device = parts[4];
  const seq = num(p.seq), ts = num(p.timestamp);
  if (seq !== undefined) msg.seq = seq;
  if (ts !== undefined) msg.timestamp = ts;
  for (const m of p.metrics ?? []) {
    const out: SpMetric = { type: m.type, value: typeof m.value === 'object' && m.value !== null ? num(m.value) : m.value };
    if (m.name !== undefined && m.name !== null) out.name = m.name;
    const alias = num(m.alias), t = num(m.timestamp);
    if (alias !== undefined) out.alias = alias;
    if (t !== undefined) out.timestamp = t;
    if (m.isHistorical) out.isHistorical = true;
    if (m.properties) out.properties = m.properties;
    msg.metrics.push(out);
  }
  return msg;
}

export interface Host {
  client: MqttClient;
  messages: SpMessage[];
  of(verb: string, device?: string): SpMessage[];
  /** messages of the edge node's session, in arrival order, births to now (NDEATH has no seq) */
  waitFor(cond: (m: SpMessage[]) => boolean, ms: number, what: string): Promise<void>;
  state(hostId: string, online: boolean, timestamp?: number): Promise<void>;
  command(topic: string, metrics: UMetric[]): Promise<void>;
  close(): Promise<void>;
}

/** protocolVersion 4 for a broker without MQTT 5 (the embedded one) */
export async function sparkplugHost(url: string, group = 'edgegate', protocolVersion: 4 | 5 = 5): Promise<Host> {
  const client = await mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 100 });
  const messages: SpMessage[] = [];
  const types = new Map<string, Map<number, DataType>>();
  client.on('message', (topic, payload, packet) => {
    // what the edge node publishes, not the commands this host sends
    if (/^spBv1\.0\/[^/]+\/(NCMD|DCMD)\//.test(topic)) return;
    const msg = decodeMessage(topic, payload, packet.retain, packet.qos, types);
    if (msg.verb === 'NBIRTH') types.clear();
    if (msg.verb === 'NBIRTH' || msg.verb === 'DBIRTH') {
      types.set(msg.device ?? '', new Map(msg.metrics.filter((m) => m.alias !== undefined).map((m) => [m.alias!, m.type as DataType])));
    }
    messages.push(msg);
  });
  await client.subscribeAsync(`spBv1.0/${group}/#`, { qos: 1 });
  return {
    client,
    messages,
    of: (verb, device) => messages.filter((m) => m.verb === verb && (device === undefined || m.device === device)),
    waitFor: (cond, ms, what) => waitFor(() => cond(messages), ms, what),
    async state(hostId, online, timestamp = Date.now()) {
      await client.publishAsync(`spBv1.0/STATE/${hostId}`, JSON.stringify({ online, timestamp }), { qos: 1, retain: true });
    },
    async command(topic, metrics) {
      await client.publishAsync(topic, encode({ timestamp: Date.now(), metrics }), { qos: 0 });
    },
    close: async () => { await client.endAsync(true); },
  };
}

/** seq of every message but NDEATH: each one more than the one before, modulo 256, NBIRTH 0 */
export function seqBreaks(messages: SpMessage[]): string[] {
  const out: string[] = [];
  let prev: number | undefined;
  for (const m of messages) {
    if (m.verb === 'NDEATH') { prev = undefined; continue; }
    if (m.verb === 'NBIRTH') {
      if (m.seq !== 0) out.push(`NBIRTH seq ${String(m.seq)}`);
    } else if (prev !== undefined && m.seq !== (prev + 1) % 256) {
      out.push(`${m.verb} seq ${String(m.seq)} after ${prev}`);
    }
    prev = m.seq;
  }
  return out;
}

export interface RigOptions {
  /** socat pty pairs to make; devices() gets their device ends */
  ports: number;
  devices(ports: string[]): object[];
  sparkplug?: Record<string, unknown>;
  /** other top-level config keys (batch, stats_interval, ...) */
  extra?: Record<string, unknown>;
}

/**
 * A Gateway in process with the Sparkplug output, a Mosquitto, pty pairs for
 * serial devices and a recording host, all stopped by the cleanups.
 * parse() makes another config on the same broker and dirs (for reload).
 */
export async function sparkplugRig(cleanups: Array<() => Promise<void> | void>, opts: RigOptions) {
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const ptys: PtyPair[] = [];
  for (let i = 0; i < opts.ports; i++) {
    const dir = join(tmp.dir, `port${i}`);
    mkdirSync(dir);
    const pty = await ptyPair(dir);
    cleanups.push(() => pty.stop());
    ptys.push(pty);
  }
  const host = await sparkplugHost(broker.url);
  cleanups.push(() => host.close());
  const parse = (devices: object[], extra = opts.extra): ResolvedConfig => {
    const cfg = gatewayConfig(broker.url, tmp.dir, devices, { sparkplug: { enabled: true, ...opts.sparkplug }, ...extra });
    const loaded = parseConfigText(JSON.stringify(cfg), 'config.json');
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    return loaded.config;
  };
  const config = parse(opts.devices(ptys.map((p) => p.device)));
  const { log, lines } = captureLog();
  const outputs = await createOutputs(config);
  const output = outputs[0] as SparkplugOutput;
  const gw = new Gateway(config, { log, outputs });
  let stopped = false;
  cleanups.push(async () => { if (!stopped) await gw.stop(); });
  return {
    broker, ptys, pty: ptys[0]!, host, output, gw, lines, parse,
    /** starts the gateway and opens each pty's instrument end */
    async start(): Promise<InstrumentEnd[]> {
      await gw.start();
      const out: InstrumentEnd[] = [];
      for (const p of ptys) {
        const instrument = await openInstrument(p.instrument);
        cleanups.push(() => instrument.close());
        out.push(instrument);
      }
      return out;
    },
    async stop() { stopped = true; await gw.stop(); },
  };
}
