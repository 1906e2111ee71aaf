// Parsers from one line of a serial instrument to named fields. Bad input is
// normal on a serial line, so a parser reports it as a reason string instead
// of throwing, and writes into a Fields object reused from line to line.
// Values stay text: the tag's type decides (numeric text becomes a number
// for an untyped or numeric tag; a `type: string` tag keeps "007" as it came).
import type { SerialDeviceConfig } from '../../config/schema.js';
import { PermanentError, type RawValue } from '../../gateway/types.js';
import { parseNmea } from './nmea.js';

/** The fields of one line; reused, so a line allocates only its values. */
export class Fields {
  readonly keys: string[] = [];
  readonly values: RawValue[] = [];
  count = 0;

  add(key: string, value: RawValue): void {
    this.keys[this.count] = key;
    this.values[this.count] = value;
    this.count++;
  }
}

/** fills `out` (cleared first) and returns undefined, or returns why the line is bad */
export type LineParser = (line: string, out: Fields) => string | undefined;

export type FormatOptions = Pick<SerialDeviceConfig, 'format' | 'columns' | 'separator' | 'pattern' | 'encoding'>;

// C0/C1 controls other than tab, CR and LF, DEL, and U+FFFD (what invalid
// UTF-8 decodes to): signs of binary noise or a wrong baud rate
const NOISE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]/;
const NOISE_ASCII = /[^\x09\x0a\x0d\x20-\x7e]/;
// one pair of the default kv syntax: key, "=" or ":", value, then any of ";", "," or whitespace
const KV_PAIR = /[;,\s]*([^\s;,=:]+)\s*[=:]\s*([^\s;,]*)[;,\s]*/y;

/** the parser for a device's format; throws PermanentError when the options cannot work */
export function createParser(options: FormatOptions): LineParser {
  const inner = innerParser(options);
  const noise = options.encoding === 'ascii' ? NOISE_ASCII : NOISE;
  // a checksummed NMEA sentence whose fields are all empty is valid: nothing to report yet
  const emptyOk = options.format === 'nmea';
  return (line, out) => {
    out.count = 0;
    if (noise.test(line)) return 'binary data or control characters';
    const reason = inner(line, out);
    if (reason !== undefined) return reason;
    return out.count === 0 && !emptyOk ? 'no fields in line' : undefined;
  };
}

function innerParser(options: FormatOptions): LineParser {
  switch (options.format) {
    case 'kv':
      return options.separator === undefined ? parseKvDefault : kvParser(options.separator);
    case 'json':
      return parseJson;
    case 'nmea':
      return parseNmea;
    case 'csv': {
      if (!options.columns?.length) throw new PermanentError('format csv needs columns');
      return csvParser(options.columns, options.separator ?? ',');
    }
    case 'regex': {
      if (options.pattern === undefined) throw new PermanentError('format regex needs a pattern');
      let re: RegExp;
      try {
        re = new RegExp(options.pattern);
      } catch (e) {
        throw new PermanentError(`invalid pattern: ${(e as Error).message}`);
      }
      return regexParser(re);
    }
  }
}

function parseKvDefault(line: string, out: Fields): string | undefined {
  let pos = 0;
  while (pos < line.length) {
    KV_PAIR.lastIndex = pos;
    const m = KV_PAIR.exec(line);
    if (m === null) {
      // only separators left after the last pair
      if (/^[;,\s]*$/.test(line.slice(pos))) break;
      return `expected key=value at column ${pos + 1}`;
    }
    const value = m[2] as string;
    if (value !== '') out.add(m[1] as string, value);
    pos = KV_PAIR.lastIndex;
  }
  return undefined;
}

function kvParser(separator: string): LineParser {
  return (line, out) => {
    for (const part of line.split(separator)) {
      const eq = part.indexOf('=');
      const colon = part.indexOf(':');
      const at = eq === -1 ? colon : colon === -1 ? eq : Math.min(eq, colon);
      if (at === -1) {
        if (part.trim() === '') continue;
        return `expected key=value, got "${shorten(part.trim())}"`;
      }
      const key = part.slice(0, at).trim();
      if (key === '') return 'empty key';
      const value = part.slice(at + 1).trim();
      // an instrument leaves a value empty when a sensor is missing: skip that one
      if (value !== '') out.add(key, value);
    }
    return undefined;
  };
}

function parseJson(line: string, out: Fields): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch (e) {
    return `invalid JSON: ${(e as Error).message}`;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return 'expected a JSON object';
  flatten(doc as Record<string, unknown>, '', out);
  return undefined;
}

function flatten(obj: Record<string, unknown>, prefix: string, out: Fields): void {
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    const name = prefix === '' ? key : `${prefix}.${key}`;
    if (typeof v === 'string') out.add(name, v);
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out.add(name, v);
    else if (Array.isArray(v)) {
      // arrays of scalars are values of their own; anything deeper has no tag shape
      if (v.every(isScalar)) out.add(name, v as RawValue);
    } else if (typeof v === 'object') flatten(v as Record<string, unknown>, name, out);
  }
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean';
}

function csvParser(columns: readonly string[], separator: string): LineParser {
  return (line, out) => {
    const parts = line.split(separator);
    if (parts.length !== columns.length) return `expected ${columns.length} fields, got ${parts.length}`;
    for (let i = 0; i < parts.length; i++) {
      const value = (parts[i] as string).trim();
      if (value !== '') out.add(columns[i] as string, value);
    }
    return undefined;
  };
}

function regexParser(re: RegExp): LineParser {
  return (line, out) => {
    const m = re.exec(line);
    if (m === null) return 'line does not match the pattern';
    const groups = m.groups;
    if (groups !== undefined) {
      for (const name of Object.keys(groups)) {
        const value = groups[name];
        if (value !== undefined) out.add(name, value);
      }
    }
    return undefined;
  };
}

function shorten(text: string): string {
  return text.length > 24 ? `${text.slice(0, 24)}...` : text;
}
