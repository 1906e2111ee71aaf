// `edgegate run`: load the config (exit 78 on errors), start the gateway,
// stop cleanly on SIGTERM/SIGINT, reload on SIGHUP; tell systemd about each
// step (sd_notify) when it started us with a notify socket.
import { loadConfig } from '../../config/load.js';
import type { ResolvedConfig } from '../../config/schema.js';
import type { EmbeddedBroker } from '../broker.js';
import { Gateway, type GatewayOptions } from '../gateway.js';
import { createLogger } from '../logger.js';
import type { Output } from '../outputs/output.js';
import { SdNotify } from '../sdnotify.js';
import { ServiceNotifier } from '../service-notifier.js';
import type { Logger } from '../types.js';
import { configFile, EXIT, parseArgs } from './args.js';
import { createOutputs } from './outputs.js';
import { embeddedBrokerProblem, EXIT_NODE_TOO_OLD } from './node-version.js';

const STOP_DEADLINE_MS = 9_500;

export async function runCommand(argv: string[]): Promise<number> {
  const { options } = parseArgs(argv, ['config']);
  const file = configFile(options);
  const loaded = loadConfig(file);
  if (!loaded.ok) {
    for (const line of loaded.errors) process.stderr.write(`${line}\n`);
    return EXIT.config;
  }
  const { log: logConfig, gateway } = loaded.config;
  const level = logConfig.level ?? gateway.log_level;
  const log = createLogger({ format: logConfig.format, ...(level ? { level } : {}) });
  for (const w of loaded.warnings) log.warn({ config: file }, w);
  return runGateway(loaded.config, log, { file });
}

/** runs until a stop signal; shared by `run` and `demo` */
export async function runGateway(
  config: ResolvedConfig,
  log: Logger,
  opts: { file?: string; driverDeps?: GatewayOptions['driverDeps']; onStarted?: (g: Gateway, outputs: readonly Output[]) => void } = {},
): Promise<number> {
  let broker: EmbeddedBroker | undefined;
  if (config.mqtt.url === 'embedded') {
    const tooOld = embeddedBrokerProblem(process.versions.node);
    if (tooOld) {
      log.fatal(tooOld);
      // not the config's fault (78): this Node.js is too old for it, as main.ts says for older ones
      return EXIT_NODE_TOO_OLD;
    }
    // aedes is loaded only for the embedded broker: a gateway with a real broker does not pay its memory
    const { startEmbeddedBroker } = await import('../broker.js');
    broker = await startEmbeddedBroker({ port: 1883, tryNext: true, log: log.child({ component: 'broker' }) });
    log.info({ url: broker.url }, 'embedded MQTT broker listening');
  }
  const outputs = await createOutputs(config);
  const gateway = new Gateway(config, { log, outputs, ...(broker ? { mqttUrl: broker.url } : {}), ...(opts.driverDeps ? { driverDeps: opts.driverDeps } : {}) });
  const systemd = new ServiceNotifier({ notify: await SdNotify.fromEnv(log.child({ component: 'systemd' })), source: gateway, log });

  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    process.exit(EXIT.runtime);
  });
  process.on('unhandledRejection', (err) => {
    log.error({ err }, 'unhandled promise rejection');
  });

  try {
    await gateway.start();
  } catch (err) {
    // nothing must be left listening or running when the start fails
    log.fatal({ err: err instanceof Error ? err.message : String(err) }, 'the gateway could not start');
    await gateway.stop().catch(() => undefined);
    await broker?.close();
    return EXIT.runtime;
  }
  opts.onStarted?.(gateway, outputs);
  systemd.started();

  return new Promise<number>((resolve) => {
    let stopping = false;
    let reloading = Promise.resolve();
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      systemd.stopping();
      log.info({ signal }, 'stopping');
      const deadline = setTimeout(() => {
        log.error({ deadline_ms: STOP_DEADLINE_MS }, 'stop took too long; exiting anyway');
        process.exit(EXIT.runtime);
      }, STOP_DEADLINE_MS);
      deadline.unref();
      // a reload under way finishes first, so the devices it starts are stopped and flushed too
      reloading
        .then(() => gateway.stop())
        .then(() => broker?.close())
        .then(
          () => resolve(EXIT.ok),
          (err: unknown) => {
            log.error({ err }, 'error while stopping');
            resolve(EXIT.runtime);
          },
        )
        .finally(() => {
          process.removeListener('SIGHUP', reload);
          clearTimeout(deadline);
          systemd.close();
        });
    };
    const reload = () => {
      if (!opts.file || stopping) return;
      const file = opts.file;
      reloading = reloading.then(async () => {
        if (stopping) return;
        systemd.reloading();
        const next = loadConfig(file);
        if (!next.ok) {
          for (const line of next.errors) log.error({ config: file }, `reload refused: ${line}`);
          systemd.reloaded(`reload refused (${next.errors.length} errors), old configuration kept`);
          return;
        }
        try {
          await gateway.reload(next.config);
          systemd.reloaded('configuration reloaded');
        } catch (err) {
          log.error({ err }, 'reload failed');
          systemd.reloaded(`reload failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }).catch((err: unknown) => log.error({ err }, 'reload failed'));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', reload);
  });
}
