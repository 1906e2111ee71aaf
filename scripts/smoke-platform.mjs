#!/usr/bin/env node
// The host side of a platform smoke test (scripts/smoke-platform.sh prepares
// the rest): `edgegate run` from a separate copy of the project, on a foreign
// Node build under qemu-user, against peers on this host — a socat pty as the
// serial device, a real Mosquitto, a unix datagram socket as systemd's
// NOTIFY_SOCKET. Passes when READY=1 arrives (sd_notify goes through koffi),
// data batches with every reading fed arrive over MQTT (the serial port is
// opened through serialport's binding), also those fed during a broker outage
// (disk buffer, CRC-32 framed, replayed), the process has mapped only native
// modules built for the target CPU, and SIGTERM ends it with STOPPING=1 and
// exit 0. Emulation is ~10x slower than native: the time limits are generous.
//
//   node scripts/smoke-platform.mjs --arch arm64|arm|x64 --node PATH --app DIR [--qemu BIN --sysroot DIR]
//
// The peers and the gateway process come from the test helpers in dist/test,
// so `npx tsc -p .` must have run.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { counterValues, CounterFeed, dataOf, gatewayConfig, serialDevice, waitForState } from '../dist/test/helpers/e2e.js';
import { batchesOnDisk, bufferStats } from '../dist/test/helpers/e2e-buffer.js';
import { runCli, writeConfig } from '../dist/test/helpers/gateway.js';
import { collect, startMosquitto } from '../dist/test/helpers/mosquitto.js';
import { notifyListener } from '../dist/test/helpers/notify-listener.js';
import { sleep, tempDir, waitFor } from '../dist/test/helpers/peers.js';
import { ptyPair } from '../dist/test/helpers/socat.js';

const { values: opt } = parseArgs({
  options: {
    arch: { type: 'string' },
    node: { type: 'string' },
    app: { type: 'string' },
    qemu: { type: 'string' },
    sysroot: { type: 'string' },
  },
});
// ELF e_machine of native code built for each Node process.arch
const MACHINE = { x64: 62, arm64: 183, arm: 40 };
const MACHINE_NAME = { 62: 'x86-64', 183: 'AArch64', 40: 'ARM' };
if (!opt.arch || !(opt.arch in MACHINE) || !opt.node || !opt.app) {
  console.error('usage: smoke-platform.mjs --arch arm64|arm|x64 --node PATH --app DIR [--qemu BIN --sysroot DIR]');
  process.exit(2);
}
const launcher = [...(opt.qemu ? [opt.qemu, ...(opt.sysroot ? ['-L', opt.sysroot] : [])] : []), opt.node];
const started = Date.now();
const secs = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (msg) => console.log(`smoke[${opt.arch}] ${secs()}: ${msg}`);

function elfMachine(file) {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(20);
    readSync(fd, head, 0, 20, 0);
    return head.readUInt32BE(0) === 0x7f454c46 ? head.readUInt16LE(18) : undefined;
  } finally {
    closeSync(fd);
  }
}

/** the native modules (*.node) a process has mapped; under qemu-user the guest's files show up in the emulator's maps */
function nativeModules(pid) {
  const files = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').map((l) => l.split(/\s+/).slice(5).join(' '));
  return [...new Set(files.filter((f) => f.endsWith('.node')))];
}

const probe = spawnSync(launcher[0], [...launcher.slice(1), '-p', 'process.version + " " + process.arch'], { encoding: 'utf8', timeout: 60_000 });
if (probe.status !== 0) throw new Error(`${launcher.join(' ')} does not run: ${probe.stderr || probe.error}`);
say(`node ${probe.stdout.trim()} via ${launcher.join(' ')}`);
if (probe.stdout.trim().split(' ')[1] !== opt.arch) throw new Error(`expected a Node for ${opt.arch}`);

const tmp = tempDir('edgegate-smoke-');
const broker = await startMosquitto({ persistence: true });
const pty = await ptyPair(tmp.dir);
const listener = await notifyListener(tmp.dir);
// a persistent session: what the gateway replays right after the broker's restart is kept for it
const sub = await collect(broker.url, 'edgegate/#', { clientId: 'edgegate-smoke-subscriber', clean: false });
const feed = new CounterFeed(pty.instrument);
let gw;
let failed = false;
try {
  const buffer = join(tmp.dir, 'buffer');
  const config = writeConfig(tmp.dir, gatewayConfig(broker.url, tmp.dir, [serialDevice('a', pty.device)]));
  gw = runCli(['run', '--config', config], {
    launcher,
    cli: join(opt.app, 'dist', 'gateway', 'cli', 'main.js'),
    cwd: opt.app,
    env: { NOTIFY_SOCKET: listener.path, LOG_LEVEL: 'info', EDGEGATE_CONFIG: undefined },
  });
  const alive = () => {
    if (gw.proc.exitCode !== null || gw.proc.signalCode !== null) {
      throw new Error(`the gateway exited (${gw.proc.exitCode ?? gw.proc.signalCode})`);
    }
    return true;
  };
  await waitFor(() => alive() && listener.with('READY').length > 0, 180_000, 'READY=1', 50);
  say(`READY=1 (STATUS=${listener.with('READY')[0].fields.STATUS})`);

  // lines written before the driver opens the port are lost with the pty's buffer
  await waitForState(sub, 'a', 'connected', 120_000);
  say('serial device connected');
  const arrived = (n) => alive() && new Set(counterValues(dataOf(sub, 'a'))).size >= n;
  feed.start(1, 200, 20);
  await feed.done();
  await waitFor(() => arrived(200), 120_000, 'readings 1..200 on MQTT', 50);
  say(`${dataOf(sub, 'a').length} data batches, readings n=1..200 arrived`);

  // a broker outage: batches go to disk (CRC-32 framed) and are replayed from there
  await broker.stop();
  feed.start(201, 400, 20);
  await feed.done();
  const onDisk = () => new Set(counterValues(existsSync(buffer) ? batchesOnDisk(buffer) : []));
  await waitFor(() => alive() && onDisk().has(400), 120_000, 'readings 201..400 in the disk buffer', 100);
  say(`broker down: ${batchesOnDisk(buffer).length} batches in the disk buffer (frames checked here by the host's CRC-32)`);
  await broker.restart();
  await waitFor(() => arrived(400), 120_000, 'readings 1..400 on MQTT after the outage', 50);
  await waitFor(() => bufferStats(sub)?.batches === 0, 60_000, 'the disk buffer replayed', 100);
  const batches = dataOf(sub, 'a');
  const values = counterValues(batches);
  const damaged = bufferStats(sub).damaged_records;
  if (damaged !== 0) throw new Error(`${damaged} damaged records reported by the disk buffer`);
  say(`broker back: ${batches.length} data batches in all, readings n=1..400 all arrived (${values.length} published, seq ${batches[0].seq}..${batches.at(-1).seq}), disk buffer empty, 0 damaged records`);

  const modules = nativeModules(gw.proc.pid);
  for (const m of modules) say(`native module loaded: ${m} (${MACHINE_NAME[elfMachine(m)] ?? `e_machine ${elfMachine(m)}`})`);
  const koffi = modules.filter((m) => m.includes('koffi'));
  const serial = modules.filter((m) => m.includes('bindings-cpp'));
  if (koffi.length !== 1 || !koffi[0].includes(`/@koromix/koffi-linux-${opt.arch}/`)) throw new Error(`koffi: expected the linux-${opt.arch} build, got ${koffi.join(', ') || 'none'}`);
  if (serial.length !== 1 || !serial[0].includes(`/prebuilds/linux-${opt.arch}/`)) throw new Error(`serialport: expected the linux-${opt.arch} prebuild, got ${serial.join(', ') || 'none'}`);
  const foreign = modules.filter((m) => elfMachine(m) !== MACHINE[opt.arch]);
  if (foreign.length > 0) throw new Error(`native modules not built for ${opt.arch}: ${foreign.join(', ')}`);

  const r = await gw.stop(60_000);
  await waitFor(() => listener.with('STOPPING').length > 0, 10_000, 'STOPPING=1', 50);
  if (r.code !== 0) throw new Error(`SIGTERM: exit ${r.code ?? r.signal}, expected 0`);
  say('SIGTERM: STOPPING=1, exit 0');
  say(`PASS (sd_notify messages: ${listener.messages.map((m) => Object.keys(m.fields)[0]).join(' ')})`);
} catch (err) {
  failed = true;
  console.error(`smoke[${opt.arch}] ${secs()}: FAIL: ${err instanceof Error ? err.message : String(err)}`);
  const topics = {};
  for (const m of sub.messages) topics[m.topic] = (topics[m.topic] ?? 0) + 1;
  console.error(`--- MQTT messages by topic: ${JSON.stringify(topics)}; readings: ${counterValues(dataOf(sub, 'a')).length}`);
  if (gw) console.error(`--- gateway stderr ---\n${gw.stderr().slice(-4000)}\n--- gateway log (last lines) ---\n${gw.stdout().split('\n').slice(-20).join('\n')}`);
} finally {
  await feed.stop().catch(() => undefined);
  if (gw) await gw.stop(5000);
  await sub.close();
  await listener.close();
  await pty.stop();
  await broker.stop();
  await sleep(10);
  tmp.remove();
}
process.exit(failed ? 1 : 0);
