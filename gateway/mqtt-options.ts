// The MQTT.js options every connection of the gateway shares (the JSON
// publisher, Home Assistant discovery, the Sparkplug B edge node): identity,
// protocol, timing, credentials and TLS from one config section. Each caller
// adds its own will, session and subscriptions.
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import type { ResolvedConfig } from '../config/schema.js';

export type MqttSettings = ResolvedConfig['mqtt'] & { url: string };

type TlsOptions = Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;

/** `section` names the config keys in errors ("mqtt", "sparkplug") */
export function baseClientOptions(m: MqttSettings, reconnectMs: number, section = 'mqtt'): IClientOptions {
  const options: IClientOptions = {
    clientId: m.client_id, clean: true, protocolVersion: m.protocol_version, protocolId: m.protocol_version === 3 ? 'MQIsdp' : 'MQTT',
    keepalive: Math.ceil(m.keepalive / 1000), connectTimeout: m.connect_timeout, reconnectPeriod: reconnectMs,
    // a refused CONNECT (auth backend down, credentials being rotated) is retried like an unreachable broker
    reconnectOnConnackError: true,
    // subscriptions are renewed by the caller on every connect; the library's resubscribe would double them
    resubscribe: false,
    queueQoSZero: false,
    // the default pre-builds 65,536 two-byte Buffers for packet ids and lengths: 6 MB of heap for nothing
    writeCache: false,
    ...(/^(mqtts|wss):/.test(m.url) ? readTls(m.tls, section) : {}), // the loader warns that tls is ignored otherwise
  };
  if (m.username !== undefined) options.username = m.username;
  if (m.password !== undefined) options.password = m.password;
  return options;
}

/** the TLS material named in the config; an unreadable file is a config error */
function readTls(tls: ResolvedConfig['mqtt']['tls'], section: string): TlsOptions {
  if (!tls) return {};
  const out: TlsOptions = { rejectUnauthorized: tls.reject_unauthorized };
  for (const key of ['ca', 'cert', 'key'] as const) {
    const path = tls[key];
    try {
      if (path !== undefined) out[key] = readFileSync(path);
    } catch (err) {
      throw new Error(`${section}.tls.${key}: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}
