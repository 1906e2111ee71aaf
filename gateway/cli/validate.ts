// `edgegate validate --config FILE`: every problem of a config, one per line
// on stderr, exit 78 (EX_CONFIG); or `FILE: ok (N devices)` and exit 0.
import { loadConfig } from '../../config/load.js';
import { EXIT, parseArgs, UsageError } from './args.js';

const USAGE = 'usage: edgegate validate --config FILE\n';

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
    const config = options.get('config');
    if (typeof config !== 'string') throw new UsageError('--config FILE is required');
    file = config;
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
