// `edgegate validate [--config FILE]`: every problem of a config, one per line
// on stderr, exit 78 (EX_CONFIG); or `FILE: ok (N devices)` and exit 0. The
// default file is the one `run` reads.
import { loadConfig } from '../../config/load.js';
import { configFile, EXIT, parseArgs, UsageError } from './args.js';

const USAGE = 'usage: edgegate validate [--config FILE]   (default: $EDGEGATE_CONFIG, else /etc/edgegate/config.yaml)\n';

export async function validateCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let file: string;
  try {
    const { options } = parseArgs(argv, ['config'], ['help']);
    if (options.has('help')) {
      out.write(USAGE);
      return EXIT.ok;
    }
    file = configFile(options);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`edgegate validate: ${e.message}\n${USAGE}`);
    return EXIT.usage;
  }

  const result = loadConfig(file);
  if (!result.ok) {
    for (const line of result.errors) err.write(`${line}\n`);
    return EXIT.config;
  }
  const n = result.config.devices.length;
  out.write(`${file}: ok (${n} device${n === 1 ? '' : 's'})\n`);
  for (const line of result.warnings) err.write(`warning: ${line}\n`);
  return EXIT.ok;
}
