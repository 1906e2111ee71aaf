// The outputs beside the JSON topics, made from the config. Each module is
// imported only when its section is enabled, so a gateway without it pays
// none of its memory (protobufjs, prom-client, an HTTP server).
import type { ResolvedConfig } from '../../config/schema.js';
import type { Output } from '../outputs/output.js';

export async function createOutputs(config: ResolvedConfig): Promise<Output[]> {
  const outputs: Output[] = [];
  if (config.homeassistant.enabled) outputs.push(new (await import('../outputs/homeassistant/index.js')).HomeAssistantOutput());
  if (config.sparkplug.enabled) outputs.push(new (await import('../outputs/sparkplug/index.js')).SparkplugOutput());
  if (config.http) outputs.push(new (await import('../outputs/http/index.js')).HttpOutput(config.http));
  return outputs;
}
