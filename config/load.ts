// The configuration loader: YAML text → ${ENV} substitution → *_file secrets →
// schema validation → host defaults. Every problem is collected, not just the
// first, each as one line `FILE: path: message`. Pure apart from reading the
// config file and the secret files it names: no sockets, timers or logging.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { describeValue, formatIssues, formatPath, pathKey, type Path, type Problem, type Provenance } from './errors.js';
import { configSchema, type Config, type ResolvedConfig } from './schema.js';

export type LoadResult =
  | { ok: true; config: ResolvedConfig; warnings: string[] }
  | { ok: false; errors: string[] };

type Tree = Record<string, unknown> | unknown[];

const ENV_REF = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** what substitution learnt on its way: problems, where they were, and the secrets to keep out of every line */
interface Pass extends Provenance {
  problems: Problem[];
  failed: string[];
  secrets: string[];
}

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null;

function entries(node: Tree): [string | number, unknown][] {
  return Array.isArray(node) ? node.map((v, i) => [i, v]) : Object.entries(node);
}

function fail(pass: Pass, path: Path, text: string): void {
  pass.problems.push({ path, text: `${formatPath(path, pass)}: ${text}` });
  pass.failed.push(pathKey(path).slice(0, -1));
}

/** ${NAME} in every string value; a value that cannot be completed is removed so that only its own error is reported */
function substituteEnv(node: Tree, path: Path, env: NodeJS.ProcessEnv, pass: Pass): void {
  for (const [key, value] of entries(node)) {
    const here = [...path, key];
    if (isTree(value)) { substituteEnv(value, here, env, pass); continue; }
    if (typeof value !== 'string' || !value.includes('${')) continue;
    const missing: string[] = [];
    let used = false;
    const out = value.replace(ENV_REF, (whole, escape: string, name: string) => {
      if (escape) return whole.slice(1);
      const v = env[name];
      if (v === undefined) { if (!missing.includes(name)) missing.push(name); return whole; }
      used = true;
      return v;
    });
    if (missing.length) {
      for (const name of missing) fail(pass, here, `environment variable ${name} is not set`);
      if (typeof key === 'string' && key.endsWith('_file')) pass.failed.push(pathKey([...path, key.slice(0, -'_file'.length)]).slice(0, -1));
      if (!Array.isArray(node)) delete node[key as string];
      continue;
    }
    (node as Record<string | number, unknown>)[key] = out;
    // an environment value may be a secret: messages show the template instead
    if (used) pass.shown.set(pathKey(here), `${describeValue(value)} (from the environment)`);
  }
}

/** `X_file: PATH` becomes `X: <content of PATH>`, one trailing newline removed */
function readSecretFiles(node: Tree, path: Path, readFile: (p: string) => string, pass: Pass): void {
  for (const [key, value] of entries(node)) {
    if (isTree(value)) { readSecretFiles(value, [...path, key], readFile, pass); continue; }
    if (Array.isArray(node) || typeof key !== 'string' || typeof value !== 'string') continue;
    if (!key.endsWith('_file') || key.length <= '_file'.length) continue;
    const here = [...path, key];
    const base = key.slice(0, -'_file'.length);
    const obj = node as Record<string, unknown>;
    delete obj[key];
    if (base in obj) { fail(pass, here, `both ${base} and ${key} are given; use one of them`); continue; }
    let content: string;
    try {
      content = readFile(value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
      fail(pass, here, `cannot read ${JSON.stringify(value)} (${code})`);
      // the value it stood for is missing because of this error: "password required" would say it twice
      pass.failed.push(pathKey([...path, base]).slice(0, -1));
      continue;
    }
    content = content.replace(/\r?\n$|\r$/, '');
    obj[base] = content;
    const at = pathKey([...path, base]);
    pass.written.set(at, key);
    pass.shown.set(at, `the content of ${JSON.stringify(value)}`);
    if (content) pass.secrets.push(content);
  }
}

/** where a path starts in the text, for ordering lines as the file reads; a key that is not there (required) sorts at the end of its parent */
function offsetOf(doc: Document, path: Path, pass: Provenance): number {
  let node: unknown = doc.contents;
  let offset = 0;
  for (let i = 0; i < path.length; i++) {
    const seg = String(path[i]);
    let next: unknown;
    if (isMap(node)) {
      const want = pass.written.get(pathKey(path.slice(0, i + 1))) ?? seg;
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === want);
      next = pair?.value;
      if (pair) offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
    } else if (isSeq(node)) {
      next = node.items[Number(seg)];
      offset = (next as { range?: [number] } | undefined)?.range?.[0] ?? offset;
    }
    if (!next) return (node as { range?: [number, number] } | null)?.range?.[1] ?? offset;
    node = next;
  }
  return offset;
}

/** every secret out of a line, in the forms a message could carry it */
function scrub(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const s of secrets) {
    if (s.length < 3) continue;
    for (const form of [s, JSON.stringify(s).slice(1, -1)]) out = out.split(form).join('***');
  }
  return out;
}

/** the document with every node's position, for messages: built only when there is something to report */
function positioned(text: string): { doc: Document; lineCounter: LineCounter } {
  const lineCounter = new LineCounter();
  return { doc: parseDocument(text, { lineCounter, prettyErrors: false, merge: true }), lineCounter };
}

/** the keys of every mapping in a tree */
function keyCount(node: unknown): number {
  if (!isTree(node)) return 0;
  let n = Array.isArray(node) ? 0 : Object.keys(node).length;
  for (const v of Array.isArray(node) ? node : Object.values(node)) n += keyCount(v);
  return n;
}

/** every JSON string, and whether it is a key (a colon follows): matches start at string starts only, so none starts inside one */
const JSON_STRING = /"(?:[^"\\]|\\.)*"(\s*:)?/g;

/**
 * A JSON file (a YAML document too) read by JSON.parse, 20 times faster and
 * without the YAML document's peak. YAML reads it instead when it uses `<<`
 * merge keys (only YAML gives them a meaning), when it is not valid JSON,
 * or when a key is given twice (JSON.parse keeps the last; YAML says where).
 */
function jsonTree(text: string): unknown {
  if (!/^\s*\{/.test(text) || text.includes('"<<"')) return undefined;
  let tree: unknown;
  try {
    tree = JSON.parse(text);
  } catch {
    return undefined;
  }
  let keys = 0;
  for (const m of text.matchAll(JSON_STRING)) if (m[1] !== undefined) keys++;
  return keys === keyCount(tree) ? tree : undefined;
}

/**
 * The file as plain values. The YAML document (tens of bytes per node: 40 MB
 * for 10,000 tags, and the pages it took stay with the process) lives only
 * while it is converted; messages that need positions parse the text again.
 */
function plainTree(text: string, file: string): { raw: unknown } | { errors: string[] } {
  const json = jsonTree(text);
  if (json !== undefined) return { raw: json };
  const { doc, lineCounter } = positioned(text);
  if (doc.errors.length) {
    return {
      errors: doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        const msg = e.code === 'MULTIPLE_DOCS' ? 'expected one YAML document, found several' : e.message.replace(/\s+/g, ' ');
        return `${file}: line ${line}, column ${col}: ${msg}`;
      }),
    };
  }
  if (doc.contents === null) return { errors: [`${file}: the file is empty; expected a mapping with gateway, mqtt, devices, ...`] };
  try {
    return { raw: doc.toJS({ maxAliasCount: 1000 }) as unknown };
  } catch (e) {
    return { errors: [`${file}: ${(e as Error).message.replace(/\s+/g, ' ')}`] };
  }
}

/** defaults that depend on the host and environment; relative dirs against the working directory */
function resolveHost(cfg: Config, env: NodeJS.ProcessEnv): ResolvedConfig {
  const id = cfg.gateway.id ?? (hostname().replace(/[^A-Za-z0-9_-]/g, '-') || 'edgegate');
  const stateDir = env.STATE_DIRECTORY?.split(':')[0];
  const bufferDir = resolve(cfg.buffer.dir ?? (stateDir || './data'));
  // OPC UA devices keep the client certificate and the trust lists under buffer.dir/pki unless told otherwise
  const devices = cfg.devices.map((d) => (d.driver === 'opcua' ? { ...d, pki_dir: resolve(d.pki_dir ?? `${bufferDir}/pki`) } : d));
  return {
    ...cfg,
    gateway: { ...cfg.gateway, id },
    mqtt: { ...cfg.mqtt, client_id: cfg.mqtt.client_id ?? `edgegate-${id}`, topic_prefix: cfg.mqtt.topic_prefix ?? `edgegate/${id}` },
    buffer: { ...cfg.buffer, dir: bufferDir },
    sparkplug: { ...cfg.sparkplug, edge_node_id: cfg.sparkplug.edge_node_id ?? id },
    devices,
  };
}

/** TLS files are read at start: a missing one is a configuration error (exit 78), not a runtime failure */
function tlsProblems(cfg: Config, readFile: (p: string) => string): Problem[] {
  const out = tlsFileProblems('mqtt', cfg.mqtt.tls, cfg.mqtt.url, readFile);
  // the Sparkplug connection reads its own files (or mqtt's, checked above) when it starts
  if (cfg.sparkplug.enabled) out.push(...tlsFileProblems('sparkplug', cfg.sparkplug.tls, cfg.sparkplug.url ?? cfg.mqtt.url, readFile));
  return out;
}

function tlsFileProblems(section: 'mqtt' | 'sparkplug', tls: Config['mqtt']['tls'], url: string, readFile: (p: string) => string): Problem[] {
  if (!tls || !/^(mqtts|wss):/.test(url)) return [];
  const out: Problem[] = [];
  for (const key of ['ca', 'cert', 'key'] as const) {
    const path = tls[key];
    if (path === undefined) continue;
    try {
      readFile(path);
    } catch (e) {
      out.push({ path: [section, 'tls', key], text: `${section}.tls.${key}: cannot read ${JSON.stringify(path)} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})` });
    }
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const missing = tls.cert === undefined ? 'cert' : 'key';
    out.push({ path: [section, 'tls', missing], text: `${section}.tls.${missing}: required when ${section}.tls.${missing === 'cert' ? 'key' : 'cert'} is given (a client certificate needs both)` });
  }
  return out;
}

/** combinations of valid values that cannot work */
function crossProblems(cfg: Config): Problem[] {
  const out: Problem[] = [];
  // the embedded broker is started for mqtt only
  if (cfg.sparkplug.url === 'embedded' && cfg.mqtt.url !== 'embedded') {
    out.push({ path: ['sparkplug', 'url'], text: 'sparkplug.url: "embedded" needs mqtt.url "embedded" too (the embedded broker is started for mqtt); leave sparkplug.url out to use mqtt\'s broker' });
  }
  return out;
}

/** things that are allowed but almost certainly not what was meant */
function warningsOf(cfg: Config): Problem[] {
  const out: Problem[] = [];
  const warn = (path: Path, text: string) => out.push({ path, text: `${formatPath(path)}: ${text}` });
  if (cfg.mqtt.tls && !/^(mqtts|wss):/.test(cfg.mqtt.url)) {
    warn(['mqtt', 'tls'], `ignored: the url ${cfg.mqtt.url.startsWith('embedded') ? 'is the embedded broker' : 'is not mqtts:// or wss://'}`);
  }
  if (cfg.gateway.log_level !== undefined && cfg.log.level !== undefined && cfg.gateway.log_level !== cfg.log.level) {
    warn(['gateway', 'log_level'], `ignored: log.level (${cfg.log.level}) is set`);
  }
  cfg.devices.forEach((d, i) => {
    for (const [key, tag] of Object.entries(d.tags)) {
      const at = ['devices', i, 'tags', key];
      if (tag.type === 'string' && tag.deadband !== undefined && tag.deadband > 0) {
        warn([...at, 'deadband'], 'a string tag passes on any change; a deadband above 0 applies to numbers only');
      }
      if (tag.min_interval !== undefined && tag.max_interval !== undefined && tag.max_interval < tag.min_interval) {
        warn([...at, 'max_interval'], `shorter than min_interval (${tag.min_interval} ms): the heartbeat is held back to min_interval`);
      }
    }
  });
  return out;
}

/**
 * Parses and validates a configuration text. `file` only names it in
 * messages; `readFile` reads `*_file` secrets (relative to the working directory).
 */
export function parseConfigText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): LoadResult {
  const tree = plainTree(text, file);
  if ('errors' in tree) return { ok: false, errors: tree.errors };
  const raw = tree.raw;
  if (!isTree(raw) || Array.isArray(raw)) {
    return { ok: false, errors: [`${file}: expected a mapping at the top level (gateway, mqtt, devices, ...), got ${describeValue(raw)}`] };
  }

  const pass: Pass = { problems: [], failed: [], secrets: [], written: new Map(), shown: new Map() };
  substituteEnv(raw, [], env, pass);
  readSecretFiles(raw, [], readFile, pass);

  const parsed = configSchema.safeParse(raw, { reportInput: true });
  const problems = [...pass.problems];
  if (!parsed.success) {
    // a value that already failed substitution is reported once, by that failure
    const already = (p: Path) => pass.failed.some((f) => pathKey(p).startsWith(f) && /^[\],]/.test(pathKey(p).slice(f.length)));
    problems.push(...formatIssues(parsed.error.issues, raw, pass).filter((p) => !already(p.path)));
  }
  const lines = (list: Problem[]) => {
    if (list.length === 0) return [];
    const { doc } = positioned(text);
    return list
      .map((p, i) => ({ p, i, at: offsetOf(doc, p.path, pass) }))
      .sort((a, b) => a.at - b.at || a.i - b.i)
      .map(({ p }) => scrub(`${file}: ${p.text}`, pass.secrets));
  };

  if (parsed.success) problems.push(...tlsProblems(parsed.data, readFile), ...crossProblems(parsed.data));
  if (problems.length || !parsed.success) return { ok: false, errors: lines(problems) };
  return { ok: true, config: resolveHost(parsed.data, env), warnings: lines(warningsOf(parsed.data)) };
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return { ok: false, errors: [`${file}: cannot read the configuration file (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`] };
  }
  return parseConfigText(text, file, env);
}
