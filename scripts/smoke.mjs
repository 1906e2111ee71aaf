#!/usr/bin/env node
// Smoke test of a built edgegate on whatever Node.js runs this script:
//
//   node scripts/smoke.mjs [--seconds N]      (from the repository root, after `npx tsc -p .`)
//
// It starts Mosquitto on a free port and a socat pty pair, runs
// `dist/gateway/cli/main.js run` as systemd would (NOTIFY_SOCKET on a unix
// datagram socket it listens on, WATCHDOG_USEC), plays a kv instrument on the
// far end of the pty, and checks: READY=1 arrives (sd_notify through koffi),
// the serial device reports "connected", batches of its readings arrive on
// MQTT in order, the disk buffer (durability: always, so every batch passes
// the CRC-32 of its frames) is used, and SIGTERM gives STOPPING=1 and exit 0.
// N (default 30) bounds the whole wait, for slow (emulated) machines; the run
// ends as soon as every check passed. It prints a short report, exits 1 on any
// failure, and stops every process it started. Needs mosquitto, socat and
// python3 (the listening side of sd_notify), and the compiled test helpers.
import { closeSync, openSync, writeSync } from 'node:fs';
import { arch, platform } from 'node:process';

const args = process.argv.slice(2);
const at = args.indexOf('--seconds');
const seconds = at >= 0 ? Number(args[at + 1]) : 30;
if (!(seconds > 0) || args.some((a, i) => a !== '--seconds' && i !== at + 1)) {
  process.stderr.write('usage: node scripts/smoke.mjs [--seconds N]\n');
  process.exit(2);
}
// a missing peer must fail the smoke test, not fall back to a stand-in
process.env.CI = 'true';

const say = (line) => process.stdout.write(`smoke: ${line}\n`);
const root = new URL('..', import.meta.url);
const dist = (p) => new URL(`dist/${p}`, root).href;
const { startMosquitto, collect } = await import(dist('test/helpers/mosquitto.js'));
const { ptyPair } = await import(dist('test/helpers/socat.js'));
const { notifyListener } = await import(dist('test/helpers/notify-listener.js'));
const { runCli, writeConfig } = await import(dist('test/helpers/gateway.js'));
const { tempDir, waitFor } = await import(dist('test/helpers/peers.js'));
const { NATIVE_CRC32 } = await import(dist('gateway/buffer/crc32.js'));

const deadline = Date.now() + seconds * 1000;
const left = () => Math.max(1, deadline - Date.now());
const started = Date.now();
const since = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const cleanups = [];
let failure;
let feeder;
let gw;

say(`Node.js ${process.version} ${platform}-${arch}, CRC-32 ${NATIVE_CRC32 ? 'zlib (native)' : 'JavaScript (no zlib.crc32)'}`);
try {
  const t = tempDir('edgegate-smoke-');
  cleanups.push(async () => t.remove());
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const pty = await ptyPair(t.dir);
  cleanups.push(() => pty.stop());
  const listener = await notifyListener(t.dir);
  cleanups.push(() => listener.close());
  const sub = await collect(broker.url, 'edgegate/smoke/#');
  cleanups.push(() => sub.close());
  say(`${broker.kind} at ${broker.url}, serial device ${pty.device}, NOTIFY_SOCKET ${listener.path}`);

  writeConfig(t.dir, {
    gateway: { id: 'smoke' },
    mqtt: { url: broker.url, qos: 1 },
    buffer: { dir: `${t.dir}/buffer`, durability: 'always' },
    batch: { max_readings: 20, max_wait: '200ms' },
    stats_interval: '1s',
    devices: [{ id: 'meter', driver: 'serial', port: pty.device, baud_rate: 115200, format: 'kv' }],
  });
  gw = runCli(['run', '--config', `${t.dir}/config.yaml`], {
    env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '2000000', LOG_LEVEL: 'info' },
  });
  cleanups.unshift(() => gw.stop());

  // the instrument: one kv line every 50 ms, n counting up, so every reading is new
  const fd = openSync(pty.instrument, 'r+');
  let n = 0;
  feeder = setInterval(() => { n++; writeSync(fd, `n=${n};T=${(20 + (n % 10) / 10).toFixed(1)}\n`); }, 50);
  cleanups.unshift(async () => { clearInterval(feeder); closeSync(fd); });

  await waitFor(() => listener.with('READY').length > 0, left(), 'READY=1 on NOTIFY_SOCKET');
  say(`READY=1 after ${since()} (STATUS=${listener.with('READY')[0].fields.STATUS ?? ''})`);
  const status = () => sub.messages.filter((m) => m.topic === 'edgegate/smoke/devices/meter/status').map((m) => JSON.parse(m.payload).state);
  await waitFor(() => status().includes('connected'), left(), 'the serial device "connected"');
  const batches = () => sub.messages.filter((m) => m.topic === 'edgegate/smoke/devices/meter/data').map((m) => JSON.parse(m.payload));
  await waitFor(() => batches().length >= 5, left(), '5 data batches from the serial device');
  await waitFor(() => listener.with('WATCHDOG').length > 0, left(), 'WATCHDOG=1');
  const got = batches();
  const seqs = got.map((b) => b.seq);
  const counts = got.flatMap((b) => b.readings.filter((r) => r.tag === 'n').map((r) => r.value));
  if (seqs.some((s, i) => s !== i + 1)) throw new Error(`batch seq not 1, 2, 3…: ${seqs.join(' ')}`);
  if (counts.some((v, i) => i > 0 && v !== counts[i - 1] + 1)) throw new Error(`readings of n not consecutive: ${counts.join(' ')}`);
  say(`${got.length} batches, ${got.reduce((s, b) => s + b.readings.length, 0)} readings (n ${counts[0]}…${counts.at(-1)}) from the serial device on MQTT after ${since()}`);

  clearInterval(feeder);
  const r = await gw.stop();
  await waitFor(() => listener.with('STOPPING').length > 0, left(), 'STOPPING=1');
  if (r.code !== 0) throw new Error(`edgegate exited with ${r.code ?? r.signal} on SIGTERM`);
  const errors = gw.logs().filter((l) => Number(l.level) >= 50);
  if (errors.length) throw new Error(`edgegate logged errors: ${errors.map((l) => l.msg).join('; ')}`);
  say(`SIGTERM: STOPPING=1, exit 0 after ${since()}`);
} catch (err) {
  failure = err;
} finally {
  clearInterval(feeder);
  for (const c of cleanups) await c().catch(() => {});
}
if (failure) {
  say(`FAIL: ${failure instanceof Error ? failure.message : String(failure)}`);
  if (gw) process.stdout.write(`--- edgegate stdout (tail) ---\n${gw.stdout().slice(-3000)}\n--- stderr ---\n${gw.stderr().slice(-3000)}\n`);
  process.exit(1);
}
say(`PASS on Node.js ${process.version} in ${since()}`);
process.exit(0);
