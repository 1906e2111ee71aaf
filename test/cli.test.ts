// The command line as a user meets it: exit codes, help, and the demo.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCli, runCliToEnd, writeConfig } from './helpers/gateway.js';
import { tempDir, waitFor } from './helpers/peers.js';

test('--version prints the version in package.json', async () => {
  const r = await runCliToEnd(['--version']);
  assert.is(r.code, 0);
  assert.is(r.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test('--help lists the commands; no command is a usage error', async () => {
  const r = await runCliToEnd(['--help']);
  assert.is(r.code, 0);
  for (const c of ['run', 'validate', 'demo', 'browse', 'ports']) assert.match(r.stdout, `edgegate ${c}`);
  const none = await runCliToEnd([]);
  assert.is(none.code, 2);
});

test('--help after any command prints its usage, exit 0', async () => {
  for (const argv of [['run', '--help'], ['demo', '-h'], ['ports', '--help'], ['validate', '--help'], ['browse', '--help']]) {
    const r = await runCliToEnd(argv);
    assert.is(r.code, 0, argv.join(' '));
    assert.match(r.stdout, `edgegate ${argv[0]}`, argv.join(' '));
  }
});

test('unknown command, option or a stray argument: exit 2', async () => {
  assert.is((await runCliToEnd(['frobnicate'])).code, 2);
  assert.is((await runCliToEnd(['run', '--confg', 'x.yaml'])).code, 2);
  for (const argv of [['run', 'x.yaml'], ['ports', 'extra'], ['validate', '--config', 'a.yaml', 'b.yaml'], ['browse', 'opc.tcp://a:1', 'extra']]) {
    const r = await runCliToEnd(argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.match(r.stderr, /unexpected argument/, argv.join(' '));
  }
});

test('run with a bad config: nothing starts, every error with its path, exit 78', async () => {
  const t = tempDir();
  try {
    const file = writeConfig(t.dir, { mqtt: { qos: 2 }, devices: [{ id: 'a b', driver: 'serial', port: '/dev/x', tags: { T: { deadband: -1 } } }] });
    const r = await runCliToEnd(['run', '--config', file]);
    assert.is(r.code, 78);
    assert.match(r.stderr, `${file}: mqtt.qos`);
    assert.match(r.stderr, `${file}: devices[0].id`);
    assert.match(r.stderr, `${file}: devices[0].tags.T.deadband`);
    assert.is(r.stdout, '', 'nothing started, nothing logged');
    const missing = await runCliToEnd(['run', '--config', `${t.dir}/does-not-exist.yaml`]);
    assert.is(missing.code, 78);
    assert.match(missing.stderr, 'does-not-exist.yaml');
    const envDefault = await runCliToEnd(['run'], { env: { EDGEGATE_CONFIG: file } });
    assert.is(envDefault.code, 78, 'EDGEGATE_CONFIG is the default config');
  } finally {
    t.remove();
  }
});

test('validate without --config reads the config run reads: $EDGEGATE_CONFIG, else /etc/edgegate/config.yaml', async () => {
  const t = tempDir();
  try {
    const file = writeConfig(t.dir, { gateway: { id: 'gw' }, devices: [] });
    const fromEnv = await runCliToEnd(['validate'], { env: { EDGEGATE_CONFIG: file } });
    assert.is(fromEnv.code, 0, fromEnv.stderr);
    assert.is(fromEnv.stdout, `${file}: ok (0 devices)\n`);
    const fallback = await runCliToEnd(['validate'], { env: { EDGEGATE_CONFIG: undefined } });
    // this machine may or may not have one: either way that is the file looked at
    assert.ok(fallback.code === 0 || fallback.code === 78, fallback.stderr);
    assert.match(`${fallback.stdout}${fallback.stderr}`, /^\/etc\/edgegate\/config\.yaml: /m);
  } finally {
    t.remove();
  }
});

test('ports lists serial ports without failing', async () => {
  const r = await runCliToEnd(['ports', '--json']);
  assert.is(r.code, 0);
  assert.ok(Array.isArray(JSON.parse(r.stdout)));
});

test('demo: embedded broker, simulated instrument, data on the printed topic, clean exit on SIGTERM', async () => {
  const demo = runCli(['demo', '--duration', '120']);
  try {
    await waitFor(() => /mosquitto_sub -h (\S+) -p (\d+)/.test(demo.stdout()), 30_000, 'the demo banner');
    const [, host, port] = /mosquitto_sub -h (\S+) -p (\d+)/.exec(demo.stdout())!;
    assert.match(demo.stdout(), `npx mqtt sub -h ${host} -p ${port}`);
    const client = await mqtt.connectAsync(`mqtt://${host}:${port}`);
    const data: Array<{ device: string; readings: Array<{ tag: string }> }> = [];
    client.on('message', (topic, payload) => { if (topic.endsWith('/data')) data.push(JSON.parse(payload.toString())); });
    await client.subscribeAsync('edgegate/demo/#');
    const tags = () => new Set(data.flatMap((b) => b.readings.map((r) => r.tag)));
    await waitFor(() => data.length >= 2 && tags().has('counter') && tags().has('temperature'), 30_000, 'demo data batches with counter and temperature');
    await client.endAsync();
    const r = await demo.stop(15_000);
    assert.equal(r, { code: 0, signal: null });
  } finally {
    await demo.stop(3000);
  }
});

test('demo --duration: stops by itself, exit 0', async () => {
  const r = await runCliToEnd(['demo', '--duration', '1'], { timeoutMs: 90_000 });
  assert.is(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout.split('\n').filter((l) => /"level":(40|50|60)/.test(l)).join('\n')}`);
  assert.match(r.stdout, 'mosquitto_sub -h');
});

test.run();
