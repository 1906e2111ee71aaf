// Finds the retained discovery configs this gateway published earlier, as
// zigbee2mqtt does: subscribe to the prefix for a bounded time, keep what
// arrives with our origin and ids. Used at start (to clear what is no longer
// configured) and by `edgegate homeassistant --clear`.
import type { MqttClient } from 'mqtt';
import { systemClock } from '../../clock.js';
import type { Clock, TimerHandle } from '../../types.js';
import { isOwnConfig } from './discovery.js';

export interface ScanOptions {
  /** aborted: the scan ends at once and rejects (the gateway stops) */
  signal?: AbortSignal;
  clock?: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
}

/**
 * The discovery topics with a retained config of this gateway, read for `ms`
 * after the subscription is granted. Rejects when the client is not connected
 * or the connection goes before the time is up: a scan that missed the
 * retained messages would take configs for gone when they are not.
 */
export async function scanOwnConfigs(client: MqttClient, discoveryPrefix: string, gatewayId: string, ms: number, opts: ScanOptions = {}): Promise<Set<string>> {
  const { signal, clock = systemClock } = opts;
  signal?.throwIfAborted();
  // offline, MQTT.js would queue the subscription for the next connection and the scan would wait for it
  if (!client.connected) throw new Error('not connected');
  const filter = `${discoveryPrefix}/device/+/config`;
  const head = `${discoveryPrefix}/device/`;
  const found = new Set<string>();
  const onMessage = (topic: string, payload: Buffer): void => {
    if (!topic.startsWith(head) || !topic.endsWith('/config') || topic.slice(head.length, -'/config'.length).includes('/')) return;
    // an empty payload is a config being cleared (by us or anyone): no longer there
    if (isOwnConfig(payload, gatewayId)) found.add(topic);
    else found.delete(topic);
  };
  let fail!: (err: unknown) => void;
  const cut = new Promise<never>((_, reject) => { fail = reject; });
  cut.catch(() => undefined);
  const onClose = (): void => fail(new Error('the connection was lost during the scan'));
  const onAbort = (): void => fail(signal?.reason);
  let timer: TimerHandle | undefined;
  client.on('message', onMessage);
  client.on('close', onClose);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([client.subscribeAsync(filter, { qos: 1 }), cut]);
    await Promise.race([new Promise<void>((r) => { timer = clock.setTimeout(r, ms); }), cut]);
  } catch (err) {
    // offline it would be queued for the next connection, where it could undo that connection's scan
    if (client.connected) client.unsubscribe(filter, () => undefined);
    throw err;
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    client.off('message', onMessage);
    client.off('close', onClose);
    signal?.removeEventListener('abort', onAbort);
  }
  if (client.connected) await client.unsubscribeAsync(filter).catch(() => undefined);
  return found;
}
