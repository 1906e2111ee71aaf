// `edgegate homeassistant --clear [--config FILE] [--wait DURATION]`: removes
// every Home Assistant discovery config this gateway published (found as the
// gateway finds stale ones at start), so its devices leave Home Assistant.
import { connect } from 'mqtt';
import { loadConfig } from '../../config/load.js';
import { parseDuration } from '../../config/units.js';
import { safeUrl } from '../logger.js';
import { baseClientOptions } from '../mqtt-options.js';
import { scanOwnConfigs } from '../outputs/homeassistant/scan.js';
import { bounded } from '../publisher.js';
import { configFile, EXIT, parseArgs, UsageError } from './args.js';

const USAGE = `usage: edgegate homeassistant --clear [--config FILE] [--wait DURATION]
  --clear    remove this gateway's Home Assistant discovery configs from the broker
             (its devices and entities leave Home Assistant); stop the gateway or set
             homeassistant.enabled: false first, or it publishes them again at its start
  --wait     how long retained configs are read from the broker (default 3s)
`;

export async function homeassistantCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let file: string;
  let waitMs = 3000;
  try {
    const { options } = parseArgs(argv, ['config', 'wait'], ['clear', 'help']);
    if (options.has('help')) {
      out.write(USAGE);
      return EXIT.ok;
    }
    if (!options.has('clear')) throw new UsageError('nothing to do: --clear is the only action');
    if (options.has('wait')) {
      const ms = parseDuration(options.get('wait'));
      if (ms === undefined || ms <= 0 || ms > 60_000) throw new UsageError('--wait needs a duration from 1ms to 60s, like 3s');
      waitMs = ms;
    }
    file = configFile(options);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`edgegate homeassistant: ${e.message}\n${USAGE}`);
    return EXIT.usage;
  }
  const loaded = loadConfig(file);
  if (!loaded.ok) {
    for (const line of loaded.errors) err.write(`${line}\n`);
    return EXIT.config;
  }
  const { mqtt, gateway, homeassistant } = loaded.config;
  if (mqtt.url === 'embedded') {
    out.write('mqtt.url is "embedded": its retained messages end with the gateway, nothing to clear\n');
    return EXIT.ok;
  }
  const client = connect(mqtt.url, { ...baseClientOptions({ ...mqtt, client_id: `${mqtt.client_id}-ha-clear` }, 0), reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('connection closed')));
    });
    const topics = [...await scanOwnConfigs(client, homeassistant.discovery_prefix, gateway.id, waitMs)].sort();
    await Promise.all(topics.map((t) => client.publishAsync(t, '', { qos: 1, retain: true })));
    for (const t of topics) out.write(`cleared ${t}\n`);
    out.write(`${topics.length} Home Assistant discovery config${topics.length === 1 ? '' : 's'} of gateway "${gateway.id}" cleared on ${safeUrl(mqtt.url)}\n`);
    return EXIT.ok;
  } catch (e) {
    err.write(`edgegate homeassistant: ${safeUrl(mqtt.url)}: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.runtime;
  } finally {
    if (!await bounded(2000, (done) => client.end(false, {}, done))) client.end(true);
  }
}
