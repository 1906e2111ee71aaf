// `edgegate browse` against the simulated server over TCP: the variable list,
// and a --yaml device map that `edgegate validate` accepts. The CLI runs as a
// child process once; the other cases call the command in process, which
// saves loading node-opcua again for each of them.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { UsageError } from '../gateway/cli/args.js';
import { browseCommand } from '../gateway/cli/browse.js';
import { validateCommand } from '../gateway/cli/validate.js';
import { runCliToEnd } from './helpers/gateway.js';
import { connected, sim, startDriver, stopAll, tempPki } from './helpers/opcua.js';
import { freePort, tempDir, waitFor } from './helpers/peers.js';

function sink(): Writable & { text: string } {
  const w = new Writable({ write(chunk, _enc, done) { w.text += String(chunk); done(); } }) as Writable & { text: string };
  w.text = '';
  return w;
}

/** the browse command in this process: exit code, stdout, stderr */
async function browse(args: string[], progressEveryMs?: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = sink(), err = sink();
  const code = await browseCommand(args, out, err, progressEveryMs === undefined ? {} : { progressEveryMs });
  return { code, stdout: out.text, stderr: err.text };
}

let server: SimServer;
let pki: string;

test.before(async () => {
  server = await sim({ variables: 3 });
  pki = tempPki();
});
test.after(async () => {
  await stopAll();
});

test('lists the variables: node id, browse path, data type, access', async () => {
  const r = await browse([server.endpoint, '--pki-dir', pki]);
  assert.is(r.code, 0, r.stderr);
  const line = (id: string) => r.stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
  assert.match(line('ns=1;s=Sim.Temperature'), /Sim\/Temperature\s+Double\s+r-/);
  assert.match(line('ns=1;s=Sim.Setpoint'), /Sim\/Setpoint\s+Double\s+rw/);
  assert.match(line('ns=1;s=Sim.Spectrum'), /Double\[\]/);
  assert.match(line('ns=1;s=Sim.Secret'), /-w$/);
  assert.match(line('ns=1;s=v2'), /Bench\/v2\s+UInt32/);
  assert.not.match(r.stdout, 'ServerStatus', 'the Server object is left out');
  assert.match(r.stdout, /20 variables under Objects, depth 10/);
});

test('edgegate browse --yaml prints a device map that `edgegate validate` accepts unchanged', async () => {
  const r = await runCliToEnd(['browse', server.endpoint, '--pki-dir', pki, '--yaml', '--id', 'line1']);
  assert.is(r.code, 0, r.stderr);
  for (const l of r.stdout.split('\n').filter(Boolean)) assert.not.match(l, /^\d\d:\d\d:\d\d\.\d+Z :/, `node-opcua output on stdout: ${l}`);
  const file = join(pki, 'browsed.yaml');
  writeFileSync(file, r.stdout);
  const out = sink(), err = sink();
  assert.is(await validateCommand(['--config', file], out, err), 0, `${err.text}\n${r.stdout}`);
  const loaded = parseConfigText(r.stdout, 'browsed.yaml');
  assert.ok(loaded.ok);
  const device = loaded.config.devices[0]!;
  assert.is(device.driver, 'opcua');
  assert.is(device.id, 'line1');
  const tags = device.tags as Record<string, { node: string; type?: string; writable?: boolean }>;
  assert.equal(tags['Sim.Setpoint'], { node: 'ns=1;s=Sim.Setpoint', type: 'number', writable: true });
  assert.equal(tags['Sim.State'], { node: 'ns=1;s=Sim.State', type: 'string' });
  assert.equal(tags['Sim.Running'], { node: 'ns=1;s=Sim.Running', type: 'boolean' });
  assert.is(tags['Sim.Label'], undefined, 'LocalizedText is left out');
  assert.is(tags['Sim.Secret'], undefined, 'an unreadable node is left out');
  assert.match(r.stdout, '# Sim/Label: ns=1;s=Sim.Label (LocalizedText) is a type the gateway does not read');
  assert.is(Object.keys(tags).length, 18);
  assert.match(r.stdout, `    pki_dir: ${JSON.stringify(pki)}`, 'the --pki-dir browse used');
});

test('security None without --pki-dir writes nothing to disk (no ./data/pki)', async () => {
  const cwd = tempDir();
  try {
    const r = await runCliToEnd(['browse', server.endpoint, '--depth', '1'], { cwd: cwd.dir, env: { STATE_DIRECTORY: '' } });
    assert.is(r.code, 0, r.stderr);
    assert.equal(readdirSync(cwd.dir), [], 'the current directory stays empty');
  } finally {
    cwd.remove();
  }
});

test('--yaml with --pki-dir and --accept-server-certificate: the map names that pki_dir, not auto-accept, and connects as it is', async () => {
  const own = tempPki();
  const args = [server.endpoint, '--pki-dir', own, '--security-mode', 'SignAndEncrypt', '--security-policy', 'Basic256Sha256', '--yaml', '--id', 'secure1'];
  const refused = await browse(args);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /server certificate not trusted .*, or run browse with --accept-server-certificate/);
  assert.not.match(refused.stderr, 'auto_accept_server_certificate');
  const r = await browse([...args, '--accept-server-certificate']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `    pki_dir: ${JSON.stringify(own)}`);
  assert.not.match(r.stdout, 'auto_accept_server_certificate');
  const loaded = parseConfigText(r.stdout, 'secure.yaml');
  assert.ok(loaded.ok, r.stdout);
  const { id: _id, driver: _driver, ...device } = loaded.config.devices[0] as unknown as Record<string, unknown>;
  // the driver on the map as browse wrote it: the server certificate trusted by browse is trusted here
  const rig = startDriver(server.endpoint, { ...device, tags: { sp: { node: 'ns=1;s=Sim.Setpoint' } } });
  try {
    await connected(rig);
    await waitFor(() => rig.values('sp').length >= 1, 10_000, 'a value over the secure channel');
  } finally {
    await rig.stop();
  }
  assert.ok(existsSync(join(own, 'own', 'certs', 'client_certificate.pem')));
});

test('progress goes to stderr while it walks, the result to stdout', async () => {
  const r = await browse([server.endpoint, '--pki-dir', pki], 0);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /edgegate browse: walking \d+ nodes to depth 1, \d+ variables…/);
  assert.match(r.stderr, /edgegate browse: walked 26 nodes to depth 3, 20 variables\n/);
  assert.match(r.stderr, /read data types and access of 20 of 20 variables/);
  assert.not.match(r.stdout, 'walk');
});

test('--root and --depth narrow the walk', async () => {
  const r = await browse([server.endpoint, '--pki-dir', pki, '--root', 'ns=1;s=Bench', '--depth', '1']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 variables under ns=1;s=Bench, depth 1/);
  assert.not.match(r.stdout, 'Sim.');
});

test('no server there: exit 1 with the reason; bad arguments are usage errors (exit 2)', async () => {
  const port = await freePort();
  const r = await browse([`opc.tcp://127.0.0.1:${port}`, '--pki-dir', pki]);
  assert.is(r.code, 1);
  assert.match(r.stderr, `edgegate browse: cannot connect to opc.tcp://127.0.0.1:${port}`);
  for (const args of [[], ['http://x'], [server.endpoint, '--depth', '0'], [server.endpoint, '--security-policy', 'Basic256Sha256']]) {
    await browse(args).then(() => assert.unreachable(`accepted ${args.join(' ')}`), (e: unknown) => assert.instance(e, UsageError));
  }
});

test.run();
