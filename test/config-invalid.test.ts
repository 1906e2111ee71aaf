// Invalid configurations and how they are reported: the fixture corpus (each
// file says which line it expects), secrets kept out of every message, and
// `edgegate validate`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatPath } from '../config/errors.js';
import { loadConfig, parseConfigText, type LoadResult } from '../config/load.js';
import { validateCommand } from '../gateway/cli/validate.js';
import { tempDir } from './helpers/peers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const FIXTURES = join(ROOT, 'test', 'fixtures', 'invalid');
const MAIN = join(ROOT, 'dist', 'gateway', 'cli', 'main.js');
const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).sort();

function errors(r: LoadResult): string[] {
  if (r.ok) assert.unreachable('expected errors, the config is valid');
  return (r as Extract<LoadResult, { ok: false }>).errors;
}

test('the corpus holds at least 25 invalid configs', () => {
  assert.ok(fixtures.length >= 25, `${fixtures.length} fixtures`);
});

for (const name of fixtures) {
  test(`invalid: ${name}`, () => {
    const file = join(FIXTURES, name);
    const text = readFileSync(file, 'utf8');
    const expect = /^# expect: (.+)$/m.exec(text)?.[1];
    assert.ok(expect, `${name} has no "# expect:" first line`);
    assert.ok(text.startsWith('# expect: '), `${name}: the expectation must be the first line`);
    const lines = errors(loadConfig(file, {}));
    assert.ok(lines.some((l) => l.includes(expect!)), `no line contains ${JSON.stringify(expect)}:\n${lines.join('\n')}`);
    for (const l of lines) {
      assert.ok(l.startsWith(`${file}: `), `not prefixed with the file: ${l}`);
      assert.not.match(l, /[\r\n]/);
    }
    const count = /^# errors: (\d+)$/m.exec(text)?.[1];
    if (count !== undefined) assert.is(lines.length, Number(count), lines.join('\n'));
  });
}

test('several errors: all of them, in the order of the file', () => {
  const file = join(FIXTURES, 'several-errors.yaml');
  const lines = errors(loadConfig(file, {})).map((l) => l.slice(file.length + 2));
  assert.equal(lines, [
    'mqtt.qos: expected one of 0, 1, got 2',
    'mqtt.url: expected an mqtt://, mqtts://, ws:// or wss:// URL, or "embedded", got "tcp://broker"',
    'stats_interval: expected a duration (milliseconds, or a string like "250ms", "5s", "2m", "1h", at most 24 days), got "often"',
    'devices[0].port: required',
    'devices[1].tags.T.deadband: expected a number >= 0, got -0.5',
    'devices[1].tags.T.max_intervall: unknown key (did you mean "max_interval"?)',
  ]);
});

test('paths: keys that are not identifiers are quoted, indices in brackets', () => {
  assert.is(formatPath(['devices', 1, 'tags', 'temp', 'deadband']), 'devices[1].tags.temp.deadband');
  assert.is(formatPath(['devices', 0, 'tags', 'x.y', 'min']), 'devices[0].tags["x.y"].min');
  assert.is(formatPath(['devices', 0, 'tags', '40001']), 'devices[0].tags["40001"]');
  assert.is(formatPath(['devices', 0, 'tags', 'room temp']), 'devices[0].tags["room temp"]');
  assert.is(formatPath(['devices', 0, 'tags', 'in-1']), 'devices[0].tags.in-1');
  const lines = errors(parseConfigText('devices: [{ id: d, driver: serial, port: p, tags: { "x.y": { deadband: -1 } } }]\n', 'f.yaml', {}));
  assert.equal(lines, ['f.yaml: devices[0].tags["x.y"].deadband: expected a number >= 0, got -1']);
});

test('messages: integer bounds, string and list lengths, long values shortened', () => {
  const lines = errors(parseConfigText([
    'mqtt: { max_inflight: 0, client_id: "' + 'c'.repeat(200) + '", username: 5 }',
    'devices: [{ id: "' + 'x '.repeat(40) + '", driver: opcua, endpoint: "opc.tcp://h", tags: { s: { node: "" } }, queue_size: 1.5 }]',
  ].join('\n'), 'f.yaml', {}));
  assert.equal(lines, [
    'f.yaml: mqtt.max_inflight: expected an integer >= 1, got 0',
    'f.yaml: mqtt.client_id: expected at most 128 characters, got 200',
    'f.yaml: mqtt.username: expected a string, got 5',
    `f.yaml: devices[0].id: expected an id of letters, digits, "_" or "-", got "${'x '.repeat(20)}…"`,
    'f.yaml: devices[0].tags.s.node: expected a non-empty string',
    'f.yaml: devices[0].queue_size: expected an integer > 0, got 1.5',
  ]);
});

test('a mistyped X_file key is reported as written, with the suggestion', () => {
  const lines = errors(parseConfigText('mqtt: { pasword_file: /s/pw }\n', 'f.yaml', {}, () => 'hunter2-secret'));
  assert.equal(lines, ['f.yaml: mqtt.pasword_file: unknown key (did you mean "password_file"?)']);
});

test('secrets written inline: a password of the wrong type and a URL with userinfo are not echoed', () => {
  const lines = errors(parseConfigText('mqtt: { url: "http://gw:S3cretPW@broker:1883", password: 424242 }\n', 'f.yaml', {}));
  assert.equal(lines.length, 2);
  for (const l of lines) assert.not.ok(l.includes('S3cretPW') || l.includes('424242'), l);
  assert.ok(lines.some((l) => l.includes('mqtt.password: expected a string, got (a hidden value)')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('"http://***@broker:1883"')), lines.join('\n'));
});

test('http.listen without credentials: loopback IP literals and localhost only, ports up to 65535', () => {
  const result = (listen: string) => parseConfigText(`http: { listen: "${listen}" }\n`, 'f.yaml', {});
  for (const listen of ['127.0.0.1:8080', '127.1.2.254:80', '[::1]:8080', 'localhost:8080', '127.0.0.1:0']) {
    const r = result(listen);
    assert.ok(r.ok, `${listen}: ${r.ok ? '' : r.errors.join('\n')}`);
  }
  for (const listen of ['127.example.com:8080', '127.0.0.1.nip.io:8080', '127.0.0.256:8080', '0.0.0.0:8080', ':8080']) {
    assert.ok(errors(result(listen)).some((l) => l.includes('http.listen: listening on') && l.includes('needs username and password_file')), listen);
  }
  assert.equal(errors(result('127.0.0.1:65536')), ['f.yaml: http.listen: port 65536 is out of range: expected at most 65535, got "127.0.0.1:65536"']);
});

test('secret values never appear in an error or a warning', () => {
  const secret = 'S3cr3t-V@lue#1';
  // /s/re holds a pattern the regex engine rejects, quoting it in its message
  const read = (p: string) => (p === '/s/re' ? 'S3cr3t-(unclosed\n' : `${secret}\n`);
  const cases = [
    'mqtt: { qos_file: /s/a }',
    'mqtt: { url_file: /s/a, client_id_file: /s/b }',
    'gateway: { id_file: /s/a }',
    'mqtt: { tls: { ca: 1 }, password_file: /s/a }',
    'devices: [{ id: d, driver: serial, port: p, format: regex, pattern_file: /s/a }]',
    'devices: [{ id: d, driver: serial, port: p, format: regex, pattern_file: /s/re }]',
    'devices: [{ id: d, driver: serial, port: p, format: regex, pattern_file: /s/a, tags: { T: { name_file: /s/b } } }]',
    'devices: [{ id_file: /s/a, driver: serial, port: p }, { id_file: /s/b, driver: serial, port: q }]',
    'devices: [{ id: d, driver_file: /s/a }]',
    'mqtt: { password_file: /s/a, password: x }',
    'mqtt: { secret_file: /s/a }',
  ];
  for (const text of cases) {
    const lines = errors(parseConfigText(`${text}\n`, 'f.yaml', {}, read));
    for (const l of lines) assert.not.ok(l.includes('S3cr3t'), `${text}\n  leaks: ${l}`);
  }
  const warned = parseConfigText('mqtt: { password_file: /s/a, username_file: /s/b, tls: { ca: /ca.pem } }\n', 'f.yaml', {}, read);
  assert.ok(warned.ok && warned.warnings.length === 1 && warned.config.mqtt.password === secret);
  assert.not.ok(warned.ok && warned.warnings.some((l) => l.includes('S3cr3t')));
  const shown = errors(parseConfigText('mqtt: { qos_file: /s/a }\n', 'f.yaml', {}, read));
  assert.equal(shown, ['f.yaml: mqtt.qos_file: expected one of 0, 1, got the content of "/s/a"']);
  // a value from the environment may be a secret too: the template is shown instead
  const env = errors(parseConfigText('mqtt: { qos: "${MQTT_QOS}" }\n', 'f.yaml', { MQTT_QOS: secret }));
  assert.equal(env, ['f.yaml: mqtt.qos: expected one of 0, 1, got "${MQTT_QOS}" (from the environment)']);
  const denied = errors(parseConfigText('mqtt: { password_file: /s/a }\n', 'f.yaml', {}, () => { throw Object.assign(new Error(secret), { code: 'EIO' }); }));
  assert.equal(denied, ['f.yaml: mqtt.password_file: cannot read "/s/a" (EIO)']);
});

// ------------------------------------------------------------ the CLI

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function validate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await validateCommand(args, out, err);
  return { code, out: out.text, err: err.text };
}

test('validate: a valid config prints ok with the device count, exit 0', async () => {
  const tmp = tempDir();
  try {
    const file = join(tmp.dir, 'ok.yaml');
    writeFileSync(file, 'devices:\n  - { id: a, driver: serial, port: /dev/ttyS0, tags: { S: { type: string, deadband: 1 } } }\n  - { id: b, driver: modbus-tcp, host: h }\n');
    const r = await validate(['--config', file]);
    assert.is(r.code, 0);
    assert.is(r.out, `${file}: ok (2 devices)\n`);
    assert.match(r.err, `warning: ${file}: devices[0].tags.S.deadband: `);
    const eq = await validate([`--config=${file}`]);
    assert.is(eq.code, 0);
    assert.is(eq.out, r.out);
  } finally {
    tmp.remove();
  }
});

test('validate: an invalid config prints every error on stderr, exit 78', async () => {
  const file = join(FIXTURES, 'several-errors.yaml');
  const r = await validate(['--config', file]);
  assert.is(r.code, 78);
  assert.is(r.out, '');
  const lines = r.err.trimEnd().split('\n');
  assert.is(lines.length, 6, r.err);
  assert.ok(lines.every((l) => l.startsWith(`${file}: `)), r.err);
});

test('validate: usage errors exit 2', async () => {
  for (const args of [['--config'], ['--conf', 'x.yaml'], ['x.yaml']]) {
    const r = await validate(args);
    assert.is(r.code, 2, args.join(' '));
    assert.match(r.err, 'usage: edgegate validate [--config FILE]');
  }
});

test('validate: the installed command exits 78 and prints the errors', () => {
  if (!existsSync(MAIN)) {
    console.warn(`\n!!! SKIPPING the command-line check: ${MAIN} is not built\n`);
    return;
  }
  const file = join(FIXTURES, 'several-errors.yaml');
  const r = spawnSync(process.execPath, [MAIN, 'validate', '--config', file], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 78, r.stderr);
  assert.match(r.stderr, `${file}: devices[1].tags.T.deadband: expected a number >= 0, got -0.5`);
  assert.is(r.stderr.trimEnd().split('\n').length, 6, r.stderr);
});

test.run();
