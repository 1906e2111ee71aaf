// How log lines look on stdout. pino writes JSON; for a person at a terminal
// (`pretty`) and for journald (`journal`) each JSON line is rewritten into one
// text line. The rewrite reads pino's finished line, so redaction and the
// serializers have already run: a secret cannot slip past them here. pino
// calls the stream only for enabled levels, so disabled ones cost nothing.
import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';

export const LOG_FORMATS = ['auto', 'json', 'pretty', 'journal'] as const;
export type LogFormatSetting = (typeof LOG_FORMATS)[number];
export type LogFormat = Exclude<LogFormatSetting, 'auto'>;

/** what pino calls on its destination */
export interface LineSink {
  write(line: string): unknown;
  flush?(cb?: (err?: Error | null) => void): void;
  flushSync?(): void;
}

/**
 * `auto`: journald when systemd connected stdout to the journal
 * (JOURNAL_STREAM), a person when stdout is a terminal, else JSON. A shell
 * that merely inherited JOURNAL_STREAM writes to a terminal, and gets
 * pretty lines rather than priority prefixes.
 */
export function resolveLogFormat(
  format: LogFormatSetting,
  env: NodeJS.ProcessEnv = process.env,
  fd = 1,
  isTty: (fd: number) => boolean = isatty,
): LogFormat {
  if (format !== 'auto') return format;
  const tty = isTty(fd);
  if (env.JOURNAL_STREAM && (!tty || matchesStream(env.JOURNAL_STREAM, fd))) return 'journal';
  return tty ? 'pretty' : 'json';
}

/** systemd.exec(5): JOURNAL_STREAM is "device:inode" of the journal stream */
function matchesStream(value: string, fd: number): boolean {
  const m = /^(\d+):(\d+)$/.exec(value);
  if (m === null) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

/** pino's destination for a format: the sink itself for JSON, else a rewriting wrapper */
export function formatSink(format: LogFormat, sink: LineSink, opts: { color?: boolean } = {}): LineSink {
  if (format === 'json') return sink;
  const render = format === 'journal' ? journalLine : (o: LogObject) => prettyLine(o, opts.color === true);
  return {
    write(line: string) {
      return sink.write(rewrite(line, render));
    },
    // pino flushes its stream on exit and on logger.flush(); pass that through
    ...(sink.flush ? { flush: (cb?: (err?: Error | null) => void) => sink.flush!(cb) } : {}),
    ...(sink.flushSync ? { flushSync: () => sink.flushSync!() } : {}),
  };
}

type LogObject = Record<string, unknown>;

function rewrite(line: string, render: (o: LogObject) => string): string {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return line;
  }
  if (obj === null || typeof obj !== 'object') return line;
  return `${render(obj as LogObject)}\n`;
}

// sd-daemon(3): <2> SD_CRIT, <3> SD_ERR, <4> SD_WARNING, <6> SD_INFO, <7> SD_DEBUG
function priority(level: unknown): number {
  const n = typeof level === 'number' ? level : 30;
  if (n >= 60) return 2;
  if (n >= 50) return 3;
  if (n >= 40) return 4;
  if (n >= 30) return 6;
  return 7;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '34', 30: '32', 40: '33', 50: '31', 60: '35' };
/** known to the reader already: the level and time are written up front, journald adds pid and unit */
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** one line for journald: the priority prefix (systemd reads and strips it), message, key=value pairs */
export function journalLine(o: LogObject): string {
  return `<${priority(o.level)}>${oneLine(o.msg)}${pairs(o, false)}`;
}

/** one entry for a terminal: time, level, message, key=value pairs; an error's stack below */
export function prettyLine(o: LogObject, color: boolean): string {
  const n = typeof o.level === 'number' ? o.level : 30;
  const name = (LEVEL_NAMES[n] ?? String(o.level)).padEnd(5);
  const level = color ? `\x1b[${LEVEL_COLORS[n] ?? '0'}m${name}\x1b[0m` : name;
  const time = typeof o.time === 'string' ? o.time : typeof o.time === 'number' ? new Date(o.time).toISOString() : '';
  const stack = errorStack(o.err);
  return `${time} ${level} ${oneLine(o.msg)}${pairs(o, true)}${stack ? `\n${stack.replace(/^/gm, '    ')}` : ''}`;
}

function pairs(o: LogObject, pretty: boolean): string {
  let out = '';
  for (const key of Object.keys(o)) {
    if (SKIP.has(key)) continue;
    const v = o[key];
    if (v === undefined) continue;
    if (key === 'err' && isErrorObject(v)) {
      out += ` err=${value(v.message)}`;
      // the journal keeps one line per entry: the stack goes along, escaped
      if (!pretty && typeof v.stack === 'string') out += ` stack=${JSON.stringify(v.stack)}`;
      continue;
    }
    out += ` ${key}=${value(v)}`;
  }
  return out;
}

// bare when it cannot be misread: no spaces, quotes, "=", backslashes or control characters
const BARE = /^[^\s"=\\\x00-\x1f\x7f-\x9f]+$/;

function value(v: unknown): string {
  if (typeof v === 'string') return BARE.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v) ?? String(v);
}

function oneLine(msg: unknown): string {
  const s = typeof msg === 'string' ? msg : msg === undefined ? '' : String(msg);
  return /[\x00-\x1f\x7f]/.test(s) ? JSON.stringify(s).slice(1, -1) : s;
}

function isErrorObject(v: unknown): v is { message?: unknown; stack?: unknown } {
  return typeof v === 'object' && v !== null && 'message' in v;
}

function errorStack(err: unknown): string | undefined {
  if (!isErrorObject(err) || typeof err.stack !== 'string') return undefined;
  // the first line repeats the message already shown as err=
  return err.stack.split('\n').slice(1).join('\n') || undefined;
}
