// A tiny option parser: `--name value`, `--name=value` and boolean `--flag`.

export const EXIT = { ok: 0, runtime: 1, usage: 2, config: 78 } as const;

export class UsageError extends Error {}

/** the config a command reads: --config, else $EDGEGATE_CONFIG, else where the installer puts it */
export function configFile(options: Map<string, string | true>, env: NodeJS.ProcessEnv = process.env): string {
  const given = options.get('config');
  return typeof given === 'string' ? given : env.EDGEGATE_CONFIG || '/etc/edgegate/config.yaml';
}

export interface ParsedArgs {
  options: Map<string, string | true>;
  positional: string[];
}

/**
 * `valued` lists the options that take a value, `flags` those that do not;
 * more than `maxPositional` plain arguments is a usage error
 */
export function parseArgs(argv: string[], valued: string[], flags: string[] = [], maxPositional = 0): ParsedArgs {
  const options = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      if (positional.length >= maxPositional) throw new UsageError(`unexpected argument "${arg}"`);
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (valued.includes(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
      options.set(name, value);
    } else if (flags.includes(name) && eq === -1) {
      options.set(name, true);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { options, positional };
}
