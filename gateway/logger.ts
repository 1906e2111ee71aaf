// pino on stdout, as JSON, pretty text or journald lines (log-format.ts).
// Secrets are redacted by path, and URLs are stripped of their userinfo
// before they are logged.
import { isatty } from 'node:tty';
import { pino } from 'pino';
import { formatSink, resolveLogFormat, type LineSink, type LogFormatSetting } from './log-format.js';
import type { Logger } from './types.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** keys that hold secrets, wherever they appear (up to three levels deep) */
const SECRET_KEYS = ['password', 'passphrase', 'secret', 'token', 'key_pem', 'authorization'];
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export interface LoggerOptions {
  level?: string;
  /** `auto` (the default) decides from stdout; with a destination, auto means JSON */
  format?: LogFormatSetting;
  destination?: LineSink;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const envLevel = process.env.LOG_LEVEL;
  const level = (envLevel && (LOG_LEVELS as readonly string[]).includes(envLevel) ? envLevel : opts.level) ?? 'info';
  const options = {
    level,
    name: opts.name ?? 'edgegate',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const setting = opts.format ?? 'auto';
  const format = opts.destination ? (setting === 'auto' ? 'json' : setting) : resolveLogFormat(setting);
  const sink: LineSink = opts.destination ?? pino.destination(1);
  const color = format === 'pretty' && !opts.destination && isatty(1) && !process.env.NO_COLOR;
  const logger = pino(options, formatSink(format, sink, { color }) as never);
  return logger as unknown as Logger;
}

/** mqtt://user:pass@host:1883 → mqtt://host:1883 (for log lines) */
export function safeUrl(url: string): string {
  if (!URL.canParse(url)) return '(unparsable url)';
  const u = new URL(url);
  u.username = u.password = '';
  // a token may ride in the query (ws://host/mqtt?token=...) or the fragment
  u.search = u.hash = '';
  return u.toString();
}

/**
 * Logs at most one line per interval for a recurring problem, counting the
 * ones it held back, so garbage from a device cannot flood the journal.
 */
export class RateLimitedLog {
  private last = -Infinity;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * true when a line may be logged now (then call warn); false counts the
   * event as held back. Callers check first, so nothing is built for a line
   * that is not written.
   */
  take(): boolean {
    const t = this.now();
    if (t - this.last < this.intervalMs) {
      this.suppressed++;
      return false;
    }
    this.last = t;
    return true;
  }

  warn(obj: Record<string, unknown>, msg: string): void {
    this.line('warn', obj, msg);
  }

  info(obj: Record<string, unknown>, msg: string): void {
    this.line('info', obj, msg);
  }

  /**
   * The end of a burst: the count held back since the last line, logged once
   * the interval allows, so it is not lost when no further event comes.
   */
  flush(level: 'info' | 'warn', obj: Record<string, unknown>, msg: string): void {
    if (this.suppressed === 0) return;
    const t = this.now();
    if (t - this.last < this.intervalMs) return;
    this.last = t;
    this.line(level, obj, msg);
  }

  private line(level: 'info' | 'warn', obj: Record<string, unknown>, msg: string): void {
    const extra = this.suppressed > 0 ? { suppressed: this.suppressed } : {};
    this.suppressed = 0;
    this.log[level]({ ...obj, ...extra }, msg);
  }
}
