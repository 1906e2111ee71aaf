// Zod issues as the one-line messages of the contract:
//   devices[1].tags.temp.deadband: expected a number >= 0, got "x"
// Pure: the raw (pre-validation) tree is only read, never changed.
import type { z } from 'zod';
import { configSchema } from './schema.js';

export type Path = readonly PropertyKey[];

/** What the loader knows about where values came from, so a message can name the key as written and never show a secret. */
export interface Provenance {
  /** pathKey → the key as written in the file, when it differs (`password_file` became `password`) */
  written: Map<string, string>;
  /** pathKey → how to show the value instead of showing it (file contents, values built from the environment) */
  shown: Map<string, string>;
}

/** one problem: where it is (for ordering) and the text after `FILE: ` */
export interface Problem {
  path: Path;
  text: string;
}

export const pathKey = (path: Path): string => JSON.stringify(path.map(String));

const BARE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `devices[1].tags["40001"].deadband`; keys as written when the loader renamed them */
export function formatPath(path: Path, prov?: Provenance): string {
  let out = '';
  path.forEach((seg, i) => {
    if (typeof seg === 'number') { out += `[${seg}]`; return; }
    const key = prov?.written.get(pathKey(path.slice(0, i + 1))) ?? String(seg);
    out += BARE_KEY.test(key) ? (out ? `.${key}` : key) : `[${JSON.stringify(key)}]`;
  });
  return out;
}

/** a value as a message shows it: strings JSON-encoded and shortened, containers by kind only */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

// ------------------------------------------------------- schema walking

interface SchemaLike { _zod: { def: Def } }
interface Def {
  type: string;
  shape?: Record<string, SchemaLike>;
  innerType?: SchemaLike;
  in?: SchemaLike;
  element?: SchemaLike;
  valueType?: SchemaLike;
  options?: SchemaLike[];
  discriminator?: string;
  values?: unknown[];
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'catch', 'readonly', 'nonoptional']);

function unwrap(s: SchemaLike): SchemaLike {
  let cur = s;
  for (;;) {
    const d = cur._zod.def;
    if (WRAPPERS.has(d.type) && d.innerType) cur = d.innerType;
    else if (d.type === 'pipe' && d.in) cur = d.in;
    else return cur;
  }
}

/** a union member picked by the raw value's discriminator */
function pickOption(def: Def, raw: unknown): SchemaLike | undefined {
  if (!def.options || !def.discriminator || typeof raw !== 'object' || raw === null) return undefined;
  const want = (raw as Record<string, unknown>)[def.discriminator];
  return def.options.find((o) => {
    const lit = unwrap(o)._zod.def.shape?.[def.discriminator!];
    return lit ? (lit._zod.def.values ?? []).includes(want) : false;
  });
}

/** the schema that validated the value at path (raw decides union members) */
function schemaAt(path: Path, raw: unknown): SchemaLike | undefined {
  let s: SchemaLike = unwrap(configSchema as unknown as SchemaLike);
  let value = raw;
  for (const seg of [...path, undefined]) {
    let d: Def = s._zod.def;
    if (d.type === 'union') {
      const o = pickOption(d, value);
      if (!o) return undefined;
      s = unwrap(o);
      d = s._zod.def;
    }
    if (seg === undefined) return s;
    const next: SchemaLike | undefined = d.type === 'object' ? d.shape?.[String(seg)]
      : d.type === 'array' ? d.element
        : d.type === 'record' ? d.valueType : undefined;
    if (!next) return undefined;
    s = unwrap(next);
    value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[seg] : undefined;
  }
  return s;
}

function knownKeys(path: Path, raw: unknown): string[] {
  const s = schemaAt(path, raw);
  return s && s._zod.def.type === 'object' ? Object.keys(s._zod.def.shape ?? {}) : [];
}

function isIntSchema(path: Path, raw: unknown): boolean {
  return (schemaAt(path, raw) as { isInt?: boolean } | undefined)?.isInt === true;
}

/** " >= 0", " > 0 and <= 65535": the bounds of the number schema at path, for a wrong-type message */
function numberBounds(path: Path, raw: unknown): string {
  const checks = (schemaAt(path, raw)?._zod.def as { checks?: Array<{ _zod: { def: { check: string; value: unknown; inclusive: boolean } } }> } | undefined)?.checks ?? [];
  const parts: string[] = [];
  for (const c of checks) {
    const d = c._zod.def;
    if (d.check === 'greater_than') parts.push(`${d.inclusive ? '>=' : '>'} ${String(d.value)}`);
    if (d.check === 'less_than') parts.push(`${d.inclusive ? '<=' : '<'} ${String(d.value)}`);
  }
  return parts.length ? ` ${parts.join(' and ')}` : '';
}

const SECRET_KEY = /password|passphrase|secret|token/i;

/** a value the message may show: secrets hidden, a URL's userinfo stripped */
function shown(path: Path, v: unknown): string {
  const last = path[path.length - 1];
  if (typeof last === 'string' && SECRET_KEY.test(last)) return '(a hidden value)';
  return describeValue(typeof v === 'string' ? v.replace(/\/\/[^/@\s]*@/, '//***@') : v);
}

/** Damerau-Levenshtein (optimal string alignment): catches swapped letters as one edit */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function suggest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestDist) { best = k; bestDist = dist; }
  }
  return best;
}

// ------------------------------------------------------------ messages

type Issue = z.core.$ZodIssue;

const TYPE_NAMES: Record<string, string> = {
  number: 'a number', int: 'an integer', string: 'a string', boolean: 'true or false',
  object: 'a mapping', record: 'a mapping', map: 'a mapping', array: 'a list', tuple: 'a list',
};

const oneOf = (values: readonly unknown[]): string =>
  values.length === 1 ? JSON.stringify(values[0]) : `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;

function bound(issue: Extract<Issue, { code: 'too_small' | 'too_big' }>, got: string, path: Path, raw: unknown): string {
  const small = issue.code === 'too_small';
  const limit = Number(small ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum);
  const input: unknown = issue.input;
  if (issue.origin === 'string' || issue.origin === 'array') {
    const unit = issue.origin === 'string' ? 'character' : 'item';
    if (small && limit === 1 && issue.inclusive) return issue.origin === 'string' ? 'expected a non-empty string' : 'expected at least 1 item, got none';
    const n = issue.inclusive ? limit : small ? limit + 1 : limit - 1;
    const len = typeof input === 'string' || Array.isArray(input) ? input.length : undefined;
    return `expected ${small ? 'at least' : 'at most'} ${n} ${unit}${n === 1 ? '' : 's'}${len === undefined ? '' : `, got ${len}`}`;
  }
  const op = small ? (issue.inclusive ? '>=' : '>') : (issue.inclusive ? '<=' : '<');
  const kind = isIntSchema(path, raw) ? 'an integer' : 'a number';
  return `expected ${kind} ${op} ${limit}, got ${got}`;
}

/** the text of one issue (no path), with `got` already decided by the caller */
function describeIssue(issue: Issue, path: Path, raw: unknown, got: string | undefined): string {
  const gotPart = got === undefined ? '' : `, got ${got}`;
  switch (issue.code) {
    case 'invalid_type':
      if (got === undefined) return 'required';
      if (issue.expected === 'number' || issue.expected === 'int') {
        return `expected ${isIntSchema(path, raw) ? 'an integer' : 'a number'}${numberBounds(path, raw)}${gotPart}`;
      }
      return `expected ${TYPE_NAMES[issue.expected] ?? `a ${issue.expected}`}${gotPart}`;
    case 'too_small':
    case 'too_big':
      return bound(issue, got ?? 'nothing', path, raw);
    case 'invalid_value':
      return got === undefined ? `required, ${oneOf(issue.values)}` : `expected ${oneOf(issue.values)}${gotPart}`;
    case 'invalid_format': {
      const own = issue.message && !issue.message.startsWith('Invalid') ? issue.message : `expected a valid ${issue.format}`;
      return `${own}${gotPart}`;
    }
    case 'not_multiple_of':
      return `expected a multiple of ${String(issue.divisor)}${gotPart}`;
    case 'invalid_key': {
      const inner = issue.issues[0];
      const why = inner ? describeIssue(inner, [], undefined, describeValue(inner.input)) : 'not allowed';
      return `invalid key: ${why.replace(/^expected a non-empty string/, 'expected a non-empty key')}`;
    }
    case 'custom':
      return got === undefined || /\bgot\b/.test(issue.message) ? issue.message : `${issue.message}${gotPart}`;
    default:
      return issue.message;
  }
}

function valueAt(raw: unknown, path: Path): unknown {
  let v = raw;
  for (const seg of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[seg] : undefined;
  return v;
}

/**
 * One problem per issue (one per key for unknown keys). `raw` is the tree that
 * was validated: it picks union members and the keys known at a path.
 */
export function formatIssues(issues: readonly Issue[], raw: unknown, prov?: Provenance): Problem[] {
  const out: Problem[] = [];
  const at = (path: Path, text: string) => {
    const where = formatPath(path, prov);
    out.push({ path, text: (where ? `${where}: ${text}` : text).replace(/\s*[\r\n]+\s*/g, ' ') });
  };
  const gotAt = (path: Path, input: unknown): string | undefined =>
    input === undefined ? undefined : prov?.shown.get(pathKey(path)) ?? shown(path, input);

  for (const issue of issues) {
    const path = issue.path as Path;
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(path, raw);
      for (const key of issue.keys) {
        const keyPath = [...path, key];
        const written = prov?.written.get(pathKey(keyPath));
        const near = suggest(key, known.filter((k) => !issue.keys.includes(k)));
        const hint = near === undefined ? '' : ` (did you mean ${JSON.stringify(written ? `${near}_file` : near)}?)`;
        at(keyPath, `unknown key${hint}`);
      }
    } else if (issue.code === 'invalid_union' && 'discriminator' in issue && typeof issue.discriminator === 'string') {
      const u = issue as { options?: unknown[] };
      const value = valueAt(raw, path);
      const options = u.options ?? [];
      at(path, value === undefined ? `required, ${oneOf(options)}` : `expected ${oneOf(options)}, got ${gotAt(path, value)}`);
    } else {
      at(path, describeIssue(issue, path, raw, gotAt(path, (issue as { input?: unknown }).input)));
    }
  }
  return out;
}
