// Which Node.js edgegate starts on. The check itself, for any version string;
// and, when EDGEGATE_TEST_NODES names real Node.js binaries (colon-separated;
// .ci/run fetches 18, 20.0 and 20.11 from npm), the entry point under each:
// a Node older than 20 gets the message and exit 69, never a SyntaxError;
// Node 20.0 and newer start, validate a config, load the OPC UA client, and
// encode disk-buffer frames byte for byte as this Node does.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame } from '../gateway/buffer/frames.js';
import { embeddedBrokerProblem, EXIT_NODE_TOO_OLD, MIN_NODE_MAJOR, nodeVersionProblem } from '../gateway/cli/node-version.js';
import { VERSION } from '../gateway/gateway.js';
import { CLI, ROOT } from './helpers/gateway.js';

test('Node.js 20 and newer pass the check; older ones get one clear message', () => {
  for (const v of ['20.0.0', '20.11.0', '20.20.2', '22.23.5', '24.22.3', '25.0.0', '100.1.2']) {
    assert.is(nodeVersionProblem(v, '/usr/bin/node'), undefined, v);
  }
  assert.is(MIN_NODE_MAJOR, 20);
  const msg = nodeVersionProblem('18.19.0', '/usr/bin/node');
  assert.ok(msg?.startsWith('edgegate needs Node.js 20 or newer; this is Node.js 18.19.0 (/usr/bin/node).\n'), msg);
  assert.match(msg!, 'Install Node.js 20, 22 or 24');
  for (const v of ['19.9.0', '16.20.2', '12.22.12', '0.10.48', '', 'garbage']) {
    assert.match(nodeVersionProblem(v, 'node') ?? '', `this is Node.js ${v} (node)`, JSON.stringify(v));
  }
  assert.is.not(EXIT_NODE_TOO_OLD, 0);
  assert.not.ok([1, 2, 78].includes(EXIT_NODE_TOO_OLD), 'distinct from the other exit codes');
});

test('the embedded broker (aedes, import attributes) from Node.js 20.10 on', () => {
  for (const v of ['20.10.0', '20.11.0', '20.20.2', '21.0.0', '22.0.0', '24.22.3']) assert.is(embeddedBrokerProblem(v), undefined, v);
  for (const v of ['20.0.0', '20.9.0', '18.20.4']) {
    assert.is(embeddedBrokerProblem(v), `the embedded MQTT broker needs Node.js 20.10 or newer; this is Node.js ${v}: name a broker in mqtt.url, or update Node.js`);
  }
});

const nodes = (process.env.EDGEGATE_TEST_NODES ?? '').split(':').filter(Boolean);
const url = (p: string) => pathToFileURL(join(ROOT, 'dist', p)).href;
const batch = { device: 'meter', seq: 42, topic: 'edgegate/gw/devices/meter/data', payload: '{"readings":[{"tag":"T","value":21.5}],"µ":"ü€"}', readings: 1, firstTs: 1764250000123 };

function run(node: string, args: string[]) {
  const r = spawnSync(node, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, JOURNAL_STREAM: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

if (nodes.length === 0) {
  test('real Node.js binaries: none given', () => {
    console.warn('\n!!! SKIPPING the runs under other Node.js releases: set EDGEGATE_TEST_NODES (.ci/run does)\n');
  });
}

for (const node of nodes) {
  const version = run(node, ['-p', 'process.versions.node']).stdout.trim();
  const major = Number(version.split('.')[0]);
  if (major < MIN_NODE_MAJOR) {
    test(`Node.js ${version}: the entry says it is too old and exits ${EXIT_NODE_TOO_OLD}`, () => {
      for (const args of [['--version'], ['run', '--config', 'config/examples/serial-kv.yaml']]) {
        const r = run(node, [CLI, ...args]);
        assert.is(r.code, EXIT_NODE_TOO_OLD, r.stderr);
        assert.is(r.stdout, '');
        assert.ok(r.stderr.startsWith(`edgegate needs Node.js 20 or newer; this is Node.js ${version} (`), r.stderr);
        assert.not.match(r.stderr, 'Error');
      }
    });
  } else {
    test(`Node.js ${version}: starts, validates a config, loads the OPC UA client, writes the same frames`, () => {
      const v = run(node, [CLI, '--version']);
      assert.is(v.code, 0, v.stderr);
      assert.is(v.stdout.trim(), VERSION);
      const val = run(node, [CLI, 'validate', '--config', 'config/examples/serial-kv.yaml']);
      assert.is(val.code, 0, val.stdout + val.stderr);
      const ua = run(node, ['--input-type=module', '-e',
        `await (await import('${url('drivers/opcua/esm-require.js')}')).allowOpcuaOnOlderNode();
         const ua = await import('${url('drivers/opcua/ua.js')}');
         process.stdout.write(typeof ua.OPCUAClient.create);`]);
      assert.is(ua.stdout, 'function', ua.stderr);
      const frame = run(node, ['--input-type=module', '-e',
        `const { encodeFrame } = await import('${url('gateway/buffer/frames.js')}');
         process.stdout.write(encodeFrame(7, ${JSON.stringify(batch)}).toString('hex'));`]);
      assert.is(frame.stdout, encodeFrame(7, batch).toString('hex'), frame.stderr);
      if (embeddedBrokerProblem(version)) {
        const demo = run(node, [CLI, 'demo', '--duration', '1']);
        assert.is(demo.code, EXIT_NODE_TOO_OLD, demo.stderr);
        assert.match(demo.stdout, 'the embedded MQTT broker needs Node.js 20.10 or newer');
      }
    });
  }
}

test.run();
