// The configuration loader on valid input: units, ${ENV}, *_file secrets, host
// defaults, the example device maps, YAML and JSON.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig, parseConfigText, type LoadResult } from '../config/load.js';
import type { ResolvedConfig } from '../config/schema.js';
import { tempDir } from './helpers/peers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const EXAMPLES = join(ROOT, 'config', 'examples');
const SERIAL = 'devices:\n  - { id: d1, driver: serial, port: /dev/ttyUSB0, tags: { T: {} } }\n';
const noFiles = (p: string): string => { throw Object.assign(new Error(`unexpected read of ${p}`), { code: 'EUNEXPECTED' }); };

function ok(r: LoadResult): ResolvedConfig {
  if (!r.ok) assert.unreachable(`expected a valid config, got:\n${r.errors.join('\n')}`);
  return (r as Extract<LoadResult, { ok: true }>).config;
}
function errors(r: LoadResult): string[] {
  if (r.ok) assert.unreachable('expected errors, the config is valid');
  return (r as Extract<LoadResult, { ok: false }>).errors;
}
const load = (text: string, env: NodeJS.ProcessEnv = {}, readFile: (p: string) => string = noFiles) =>
  parseConfigText(text, 'test.yaml', env, readFile);
function hasLine(lines: string[], want: string): void {
  assert.ok(lines.some((l) => l.includes(want)), `no line contains ${JSON.stringify(want)}:\n${lines.join('\n')}`);
}

test('durations: numbers of ms and strings with units', () => {
  const c = ok(load(`stats_interval: 250ms\nbatch: { max_wait: 1500 }\n${SERIAL.replace('tags: { T: {} }', 'poll_interval: 2m, timeout: 5s, tags: { T: { max_interval: 1h, min_interval: 0.5s } }')}`));
  assert.is(c.stats_interval, 250);
  assert.is(c.batch.max_wait, 1500);
  const d = c.devices[0]!;
  assert.is(d.driver === 'serial' && d.poll_interval, 120_000);
  assert.is(d.driver === 'serial' && d.timeout, 5000);
  assert.is(d.tags.T?.max_interval, 3_600_000);
  assert.is(d.tags.T?.min_interval, 500);
});

test('durations: bad ones name the path and the value', () => {
  for (const bad of ['5 sec', '-1', '1d', 'true', '"s"', '[1]']) {
    const lines = errors(load(`stats_interval: ${bad}\n`));
    assert.is(lines.length, 1, lines.join('\n'));
    hasLine(lines, 'test.yaml: stats_interval: expected a duration');
  }
  hasLine(errors(load('stats_interval: 1d\n')), 'got "1d"');
});

test('sizes: numbers of bytes and strings with units', () => {
  const c = ok(load('buffer: { max_size: 64KiB }\nbatch: { max_bytes: 1024 }\n'));
  assert.is(c.buffer.max_size, 65536);
  assert.is(c.batch.max_bytes, 1024);
  assert.is(ok(load('buffer: { max_size: 256MiB }\n')).buffer.max_size, 256 * 1024 * 1024);
  for (const bad of ['12XB', '-1', '1.5', 'lots']) hasLine(errors(load(`buffer: { max_size: ${bad} }\n`)), 'buffer.max_size: expected a size');
});

test('max_write_bytes: 1 KiB by default, a size from 1 byte to 1 MiB, for every driver', () => {
  assert.is(ok(load(SERIAL)).devices[0]!.max_write_bytes, 1024);
  const with_ = (v: string) => load(`devices:\n  - { id: d1, driver: modbus-tcp, host: plc, max_write_bytes: ${v} }\n`);
  assert.is(ok(with_('64KiB')).devices[0]!.max_write_bytes, 65536);
  assert.is(ok(with_('1MiB')).devices[0]!.max_write_bytes, 1024 * 1024);
  for (const bad of ['0', '2MiB']) hasLine(errors(with_(bad)), 'devices[0].max_write_bytes: expected a size from 1 byte to 1MiB');
  hasLine(errors(with_('lots')), 'devices[0].max_write_bytes: expected a size from 1 byte to 1MiB (bytes, or a string like "1KiB"), got "lots"');
});

test('write_ack: a pattern with {tag} and {value}, and a timeout of 2 s unless given', () => {
  const d = ok(load(SERIAL.replace('tags: { T: {} }', 'write_template: "SET {tag} {value}\\n", write_ack: { pattern: "^OK {tag}$" }, tags: { T: {} }'))).devices[0]!;
  assert.equal(d.driver === 'serial' && d.write_ack, { pattern: '^OK {tag}$', timeout: 2000 });
});

test('defaults: everything but devices may be left out', () => {
  const c = ok(load('devices: []\n'));
  assert.is(c.mqtt.url, 'mqtt://127.0.0.1:1883');
  assert.is(c.mqtt.qos, 1);
  assert.is(c.batch.max_readings, 500);
  assert.is(c.stats_interval, 60_000);
  assert.equal(ok(load('{}')).devices, []);
});

test('defaults: gateway id from the host name, client id and topic prefix from the gateway id', () => {
  const c = ok(load('devices: []\n'));
  const id = hostname().replace(/[^A-Za-z0-9_-]/g, '-');
  assert.is(c.gateway.id, id);
  assert.match(c.gateway.id, /^[A-Za-z0-9_-]+$/);
  assert.is(c.mqtt.client_id, `edgegate-${id}`);
  assert.is(c.mqtt.topic_prefix, `edgegate/${id}`);
  const own = ok(load('gateway: { id: line1-pi }\n'));
  assert.is(own.mqtt.client_id, 'edgegate-line1-pi');
  assert.is(own.mqtt.topic_prefix, 'edgegate/line1-pi');
  const given = ok(load('gateway: { id: a }\nmqtt: { client_id: c, topic_prefix: plant/a }\n'));
  assert.is(given.mqtt.client_id, 'c');
  assert.is(given.mqtt.topic_prefix, 'plant/a');
});

test('defaults: buffer.dir from STATE_DIRECTORY (first entry), else ./data, always absolute', () => {
  assert.is(ok(load('{}', { STATE_DIRECTORY: '/var/lib/edgegate' })).buffer.dir, '/var/lib/edgegate');
  assert.is(ok(load('{}', { STATE_DIRECTORY: '/var/lib/edgegate:/var/lib/other' })).buffer.dir, '/var/lib/edgegate');
  assert.is(ok(load('{}')).buffer.dir, resolve(process.cwd(), 'data'));
  assert.is(ok(load('buffer: { dir: spool }\n', { STATE_DIRECTORY: '/x' })).buffer.dir, resolve(process.cwd(), 'spool'));
});

test('buffer.replay_rate and replay_jitter: unlimited and 3 s by default; bad values name the path', () => {
  const d = ok(load('{}')).buffer;
  assert.equal({ rate: d.replay_rate, jitter: d.replay_jitter }, { rate: 0, jitter: 3000 });
  const c = ok(load('buffer: { replay_rate: 20000, replay_jitter: 500ms }\n')).buffer;
  assert.equal({ rate: c.replay_rate, jitter: c.replay_jitter }, { rate: 20000, jitter: 500 });
  assert.is(ok(load('buffer: { replay_jitter: 0 }\n')).buffer.replay_jitter, 0);
  for (const bad of ['-5', '0.5', '"fast"', '.inf']) hasLine(errors(load(`buffer: { replay_rate: ${bad} }\n`)), 'buffer.replay_rate: expected');
  hasLine(errors(load('buffer: { replay_jitter: 2m }\n')), 'buffer.replay_jitter: expected a duration of at most 60s');
  hasLine(errors(load('buffer: { replay_jitter: soon }\n')), 'buffer.replay_jitter: expected a duration');
});

test('env: ${NAME} is replaced in any string, $${NAME} stays literal', () => {
  const c = ok(load('mqtt: { url: "mqtt://${HOST}:${PORT}", username: "$${USER}", password: "${EMPTY}" }\ndevices: [{ id: d1, driver: serial, port: "${DEV}", columns: ["${COL}"], format: csv }]\n',
    { HOST: 'broker', PORT: '1884', USER: 'nobody', EMPTY: '', DEV: '/dev/ttyS0', COL: 'weight' }));
  assert.is(c.mqtt.url, 'mqtt://broker:1884');
  assert.is(c.mqtt.username, '${USER}');
  assert.is(c.mqtt.password, '');
  const d = c.devices[0]!;
  assert.is(d.driver === 'serial' && d.port, '/dev/ttyS0');
  assert.equal(d.driver === 'serial' && d.columns, ['weight']);
});

test('env: an unset variable is an error at its path, and only that one', () => {
  const lines = errors(load('mqtt: { password_file: "${CREDENTIALS_DIRECTORY}/mqtt-password" }\ndevices: [{ id: d1, driver: serial, port: "${NOPE}" }]\n'));
  assert.equal(lines, [
    'test.yaml: mqtt.password_file: environment variable CREDENTIALS_DIRECTORY is not set',
    'test.yaml: devices[0].port: environment variable NOPE is not set',
  ]);
});

test('secrets: X_file is read into X, one trailing newline removed', () => {
  const files: Record<string, string> = { '/s/pw': 'hunter2\n', '/s/crlf': 'user\r\n', '/s/two': 'a\n\n', '/s/plc': 'p' };
  const read = (p: string) => { const v = files[p]; if (v === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' }); return v; };
  const c = ok(load('mqtt: { password_file: /s/pw, username_file: /s/crlf }\ndevices: [{ id: o, driver: opcua, endpoint: "opc.tcp://h:4840", password_file: /s/plc }]\n', {}, read));
  assert.is(c.mqtt.password, 'hunter2');
  assert.is(c.mqtt.username, 'user');
  assert.not.ok('password_file' in c.mqtt);
  const d = c.devices[0]!;
  assert.is(d.driver === 'opcua' && d.password, 'p');
  assert.is(ok(load('mqtt: { password_file: /s/two }\n', {}, read)).mqtt.password, 'a\n');
});

test('secrets: a real file, its path built from the environment', () => {
  const tmp = tempDir();
  try {
    writeFileSync(join(tmp.dir, 'mqtt-password'), 'from-a-file\n');
    const c = ok(parseConfigText('mqtt: { password_file: "${CREDENTIALS_DIRECTORY}/mqtt-password" }\n', 'x.yaml', { CREDENTIALS_DIRECTORY: tmp.dir }));
    assert.is(c.mqtt.password, 'from-a-file');
  } finally {
    tmp.remove();
  }
});

test('secrets: both X and X_file, or an unreadable file, are errors at the path', () => {
  const both = errors(load('mqtt: { password: a, password_file: /s/pw }\n', {}, () => 'x'));
  assert.equal(both, ['test.yaml: mqtt.password_file: both password and password_file are given; use one of them']);
  const denied = (p: string): string => { throw Object.assign(new Error(`EACCES: permission denied, open '${p}'`), { code: 'EACCES' }); };
  assert.equal(errors(load('mqtt: { password_file: /etc/edgegate/pw }\n', {}, denied)), ['test.yaml: mqtt.password_file: cannot read "/etc/edgegate/pw" (EACCES)']);
  hasLine(errors(parseConfigText('mqtt: { password_file: /nonexistent/edgegate/pw }\n', 'x.yaml', {})), 'x.yaml: mqtt.password_file: cannot read "/nonexistent/edgegate/pw" (ENOENT)');
});

test('tags: decimals is a whole number from 0 to 15; a tag without a type that uses a numeric key is a number tag', () => {
  const tags = '{ T: { deadband: 0.2 }, W: { scale: 10, decimals: 1 }, L: { min: 0 }, C: { deadband: 0 }, X: {}, s: { type: string, deadband: 1 } }';
  const d = ok(load(SERIAL.replace('tags: { T: {} }', `tags: ${tags}`))).devices[0]!;
  assert.equal(Object.fromEntries(Object.entries(d.tags).map(([k, t]) => [k, t.type])), { T: 'number', W: 'number', L: 'number', C: undefined, X: undefined, s: 'string' });
  assert.is(d.tags.W?.decimals, 1);
  for (const bad of ['16', '1.5', '-1', '"2"']) {
    hasLine(errors(load(SERIAL.replace('tags: { T: {} }', `tags: { T: { decimals: ${bad} } }`))), 'devices[0].tags.T.decimals');
  }
});

test('YAML syntax errors carry line and column, all of them', () => {
  const lines = errors(load('mqtt:\n  url: mqtt://a\n  qos: [1,\ndevices: []\n'));
  hasLine(lines, 'test.yaml: line ');
  assert.ok(lines.every((l) => /^test\.yaml: line \d+, column \d+: \S/.test(l)), lines.join('\n'));
  const dup = errors(load('gateway: { id: a }\ngateway: { id: b }\n'));
  assert.equal(dup, ['test.yaml: line 2, column 1: Map keys must be unique']);
  const several = errors(load('a: 1\n  b: 2\nc: [1,\n'));
  assert.ok(several.length >= 2, several.join('\n'));
});

test('JSON is accepted as YAML', () => {
  const c = ok(load(JSON.stringify({ gateway: { id: 'j' }, mqtt: { qos: 0 }, devices: [{ id: 'm', driver: 'modbus-tcp', host: '10.0.0.2', tags: { v: { area: 'input', address: 1 } } }] }, null, 2)));
  assert.is(c.gateway.id, 'j');
  assert.is(c.mqtt.qos, 0);
  assert.is(c.devices[0]?.driver === 'modbus-tcp' && c.devices[0].port, 502);
});

test('a JSON file is read by JSON.parse (no YAML document), with the result YAML gives', () => {
  const text = JSON.stringify({
    gateway: { id: 'j' }, batch: { max_wait: '1.5s' },
    devices: [{ id: 'p', driver: 'opcua', endpoint: 'opc.tcp://h:4840', tags: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`v${i}`, { node: `ns=1;s="q:${i}"\\`, type: 'integer' }])) }],
  }, null, 2);
  const parse = JSON.parse;
  const seen: string[] = [];
  JSON.parse = ((t: string, r?: (k: string, v: unknown) => unknown) => { seen.push(t); return parse(t, r); }) as typeof JSON.parse;
  let viaJson: LoadResult;
  try {
    viaJson = load(text);
  } finally {
    JSON.parse = parse;
  }
  assert.ok(seen.includes(text), 'JSON.parse read the file');
  // a leading comment makes it YAML only
  assert.equal(ok(viaJson), ok(load(`# yaml\n${text}`)));
});

test('JSON: a key given twice, bad syntax and schema errors are reported as YAML reports them', () => {
  assert.equal(errors(load('{\n  "gateway": { "id": "a" },\n  "gateway": { "id": "b" }\n}\n')), ['test.yaml: line 3, column 3: Map keys must be unique']);
  const bad = errors(load('{\n  "gateway": { "id": "a" },\n  "mqtt": { "qos": 1 \n}\n'));
  assert.ok(bad.every((l) => /^test\.yaml: line \d+, column \d+: \S/.test(l)), bad.join('\n'));
  const json = errors(load('{ "mqtt": { "qos": 7 }, "gateway": { "id": 5 } }'));
  assert.equal(json, errors(load('# yaml\n{ "mqtt": { "qos": 7 }, "gateway": { "id": 5 } }')));
  assert.is(json.length, 2);
  assert.match(json[0] ?? '', /mqtt\.qos/);
});

test('YAML anchors and merge keys work for repeated tag settings', () => {
  const c = ok(load('devices:\n  - id: d1\n    driver: serial\n    port: /dev/ttyS0\n    tags:\n      A: &t { deadband: 0.5, max_interval: 1m }\n      B: { <<: *t, unit: V }\n'));
  assert.is(c.devices[0]?.tags.B?.deadband, 0.5);
  assert.is(c.devices[0]?.tags.B?.max_interval, 60_000);
});

test('warnings: allowed but probably not meant', () => {
  const r = load('mqtt: { url: "mqtt://h:1883", tls: { ca: /ca.pem } }\ndevices: [{ id: d1, driver: serial, port: /dev/ttyS0, tags: { S: { type: string, deadband: 2 }, N: { min_interval: 10s, max_interval: 1s } } }]\n');
  assert.ok(r.ok);
  const w = r.ok ? r.warnings : [];
  assert.is(w.length, 3, w.join('\n'));
  hasLine(w, 'test.yaml: mqtt.tls: ignored');
  hasLine(w, 'test.yaml: devices[0].tags.S.deadband: ');
  hasLine(w, 'test.yaml: devices[0].tags.N.max_interval: ');
  const clean = load('mqtt: { url: "mqtts://h:8883", tls: { ca: /ca.pem } }\n', {}, (p) => (p === '/ca.pem' ? 'PEM' : noFiles(p)));
  assert.equal(clean.ok && clean.warnings, []);
  hasLine(errors(load('mqtt: { url: "mqtts://h:8883", tls: { ca: /ca.pem, cert: /c.pem } }\n')), 'test.yaml: mqtt.tls.ca: cannot read "/ca.pem"');
});

test('every example device map validates as shipped, without warnings, in an empty environment', () => {
  const names = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();
  assert.equal(names, ['full.yaml', 'gps-nmea.yaml', 'modbus.yaml', 'raspberry-pi.yaml', 'regex-json.yaml', 'serial-kv.yaml', 'serial-query.yaml']);
  const counts: Record<string, number> = { 'full.yaml': 5, 'gps-nmea.yaml': 2, 'modbus.yaml': 3, 'raspberry-pi.yaml': 1, 'regex-json.yaml': 2, 'serial-kv.yaml': 1, 'serial-query.yaml': 1 };
  for (const name of names) {
    // no CREDENTIALS_DIRECTORY, no files to read: as on a workstation, outside systemd
    const r = parseConfigText(readFileSync(join(EXAMPLES, name), 'utf8'), name, {}, noFiles);
    assert.is(ok(r).devices.length, counts[name], name);
    assert.equal(r.ok && r.warnings, [], name);
  }
  const full = ok(loadConfig(join(EXAMPLES, 'full.yaml'), {}));
  assert.equal(full.devices.map((d) => d.driver), ['serial', 'serial', 'modbus-rtu', 'modbus-tcp', 'opcua']);
  assert.is(full.buffer.max_size, 256 * 1024 * 1024);
});

test('the commented credential lines of the examples work under systemd, with the credential names of the unit', () => {
  const unit = readFileSync(join(ROOT, 'systemd', 'edgegate.service'), 'utf8');
  const loaded = [...unit.matchAll(/^LoadCredential=([^:\s]+):/gm)].map((m) => m[1]!);
  for (const name of readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'))) {
    for (const m of readFileSync(join(EXAMPLES, name), 'utf8').matchAll(/\$\{CREDENTIALS_DIRECTORY\}\/([\w.-]+)/g)) {
      assert.ok(loaded.includes(m[1]!), `${name} names the credential ${m[1]}, the unit loads only ${loaded.join(', ')}`);
    }
  }
  const tmp = tempDir();
  try {
    mkdirSync(join(tmp.dir, 'creds'));
    writeFileSync(join(tmp.dir, 'creds', 'mqtt-password'), 'mqtt-secret\n');
    writeFileSync(join(tmp.dir, 'creds', 'opcua-password'), 'plc-secret\n');
    writeFileSync(join(tmp.dir, 'creds', 'http-password'), 'page-secret\n');
    // systemd's ConfigurationDirectory= sets CONFIGURATION_DIRECTORY; the TLS files must be readable
    for (const f of ['ca.pem', 'gw.pem', 'gw.key']) writeFileSync(join(tmp.dir, f), 'PEM');
    const env = { CREDENTIALS_DIRECTORY: join(tmp.dir, 'creds'), CONFIGURATION_DIRECTORY: tmp.dir };
    const uncommented = readFileSync(join(EXAMPLES, 'full.yaml'), 'utf8').replace(/^(\s*)# ?(\s*(username|password_file|tls|ca|cert|key):)/gm, '$1$2');
    const full = ok(parseConfigText(uncommented, 'full.yaml', env));
    assert.is(full.mqtt.username, 'gw');
    assert.is(full.mqtt.password, 'mqtt-secret');
    assert.is(full.mqtt.tls?.ca, join(tmp.dir, 'ca.pem'));
    const plc = full.devices[4]!;
    assert.is(plc.driver === 'opcua' && plc.password, 'plc-secret');
    assert.equal([full.http?.username, full.http?.password], ['admin', 'page-secret']);
    hasLine(errors(parseConfigText(uncommented, 'full.yaml', {})), 'mqtt.password_file: environment variable CREDENTIALS_DIRECTORY is not set');
  } finally {
    tmp.remove();
  }
});

test('loadConfig: an unreadable config file is one error line', () => {
  assert.equal(errors(loadConfig('/nonexistent/edgegate.yaml', {})), ['/nonexistent/edgegate.yaml: cannot read the configuration file (ENOENT)']);
});

test.run();
