// Finds the retained discovery configs this gateway published earlier, as
// zigbee2mqtt does: subscribe to the prefix for a bounded time, keep what
// arrives with our origin and ids. Used at start (to clear what is no longer
// configured) and by `edgegate homeassistant --clear`.
import type { MqttClient } from 'mqtt';
import { isOwnConfig } from './discovery.js';

/** the discovery topics with a retained config of this gateway, read for `ms` after the subscription is granted */
export async function scanOwnConfigs(client: MqttClient, discoveryPrefix: string, gatewayId: string, ms: number): Promise<Set<string>> {
  const filter = `${discoveryPrefix}/device/+/config`;
  const head = `${discoveryPrefix}/device/`;
  const found = new Set<string>();
  const onMessage = (topic: string, payload: Buffer): void => {
    if (!topic.startsWith(head) || !topic.endsWith('/config') || topic.slice(head.length, -'/config'.length).includes('/')) return;
    // an empty payload is a config being cleared (by us or anyone): no longer there
    if (isOwnConfig(payload, gatewayId)) found.add(topic);
    else found.delete(topic);
  };
  client.on('message', onMessage);
  try {
    await client.subscribeAsync(filter, { qos: 1 });
    await new Promise((r) => setTimeout(r, ms));
    // the connection may be gone by now: the scan's result stands either way
    await client.unsubscribeAsync(filter).catch(() => undefined);
  } finally {
    client.off('message', onMessage);
  }
  return found;
}
