// MQTT topic checks. MQTT.js validates topics on subscribe but not on publish,
// and a broker answers a PUBLISH to "a/+/b" by dropping the connection: one
// such topic, retried after every reconnect, would keep the gateway off the
// broker for good. So every name that ends up in a topic is checked first.

const MAX_LEVEL_BYTES = 256;

/** one level of a topic: no "/", "+", "#", NUL or whitespace, not empty */
export function isTopicLevel(s: string): boolean {
  return s.length > 0 && s.length <= MAX_LEVEL_BYTES && !/[/+#\u0000\s]/.test(s);
}

/** a topic one may publish to: no wildcards, no NUL, not empty, within MQTT's length limit */
export function isPublishTopic(s: string): boolean {
  return s.length > 0 && Buffer.byteLength(s) <= 65_535 && !/[+#\u0000]/.test(s);
}
