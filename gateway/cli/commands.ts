// edgegate command line (SPEC §2), loaded by main.ts once the Node.js version
// is known to be supported. Exit codes: 0 done, 1 runtime failure, 2 usage
// error, 78 configuration error (69, Node.js too old, comes from main.ts).
import { allowOpcuaOnOlderNode } from '../../drivers/opcua/esm-require.js';
import { VERSION } from '../gateway.js';
import { EXIT, UsageError } from './args.js';

const HELP = `edgegate ${VERSION} — read field devices, publish their readings to MQTT

Usage:
  edgegate run [--config FILE]        run the gateway (default config: $EDGEGATE_CONFIG,
                                      else /etc/edgegate/config.yaml)
  edgegate validate [--config FILE]   check a config (default as for run); print every
                                      error; exit 0 or 78
  edgegate demo [--duration SECONDS]  zero-setup demo: embedded broker, simulated instrument
  edgegate browse opc.tcp://HOST:PORT [--depth N] [--root NODE] [--yaml]
                                      list the variables of an OPC UA server
                                      (edgegate browse --help: security and user options)
  edgegate ports [--json]             list serial ports
  edgegate homeassistant --clear [--config FILE]
                                      remove this gateway's Home Assistant discovery
                                      configs from the broker
  edgegate --version | --help

Exit codes: 0 done, 1 runtime failure, 2 usage error, 69 Node.js too old,
  78 configuration error.
Logs on stdout: log.format json, pretty or journal (auto: journal under systemd,
  pretty on a terminal, else json); LOG_LEVEL or log.level sets the level.
`;

/** commands with a usage text of their own; the others answer --help with this one */
const OWN_HELP = new Set(['validate', 'browse', 'homeassistant']);

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  // only OPC UA needs it: should it fail, the other commands still work, and OPC UA says why when it loads
  await allowOpcuaOnOlderNode().catch(() => undefined);
  if (command !== undefined && !OWN_HELP.has(command) && (args.includes('--help') || args.includes('-h'))) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  switch (command) {
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return command === undefined ? EXIT.usage : EXIT.ok;
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return EXIT.ok;
    case 'run':
      return (await import('./run.js')).runCommand(args);
    case 'validate':
      return (await import('./validate.js')).validateCommand(args);
    case 'demo':
      return (await import('./demo.js')).demoCommand(args);
    case 'ports':
      return (await import('./ports.js')).portsCommand(args);
    case 'browse':
      return (await import('./browse.js')).browseCommand(args);
    case 'homeassistant':
      return (await import('./homeassistant.js')).homeassistantCommand(args);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

const LONG_RUNNING = new Set(['run', 'demo']);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // a stopped gateway exits now, even if a library left a handle open
    if (LONG_RUNNING.has(process.argv[2] ?? '')) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`edgegate: ${err.message}\nRun "edgegate --help" for usage.\n`);
      process.exitCode = EXIT.usage;
    } else {
      process.stderr.write(`edgegate: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.runtime;
    }
    if (LONG_RUNNING.has(process.argv[2] ?? '')) process.exit(process.exitCode);
  },
);
