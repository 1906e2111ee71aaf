// The naive baseline: what a simple serial-to-MQTT flow does. serialport with
// the readline parser (@serialport/parser-readline, re-exported by
// serialport), the kv line split by hand, and EACH reading published as its
// own QoS 1 message, one topic per tag, payload {"value":…,"ts":…}, with
// MQTT.js defaults: no window, no batching, nothing bounded.
//
// The benchmark reads two things from it besides what reaches the broker:
// "ready" on stdout once the port is open and MQTT is connected, and on
// SIGTERM a JSON line with its counts and its own event-loop delay p99.
//
//   node dist/bench/naive.js PORT_PATH MQTT_URL TOPIC_PREFIX
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect } from 'mqtt';
import { ReadlineParser, SerialPort } from 'serialport';

const [path, url, prefix] = process.argv.slice(2);
if (path === undefined || url === undefined || prefix === undefined) {
  console.error('usage: naive.js PORT_PATH MQTT_URL TOPIC_PREFIX');
  process.exit(2);
}

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let lines = 0;
let published = 0;
let acked = 0;

const client = connect(url);
client.on('error', (err) => console.error(`mqtt: ${err.message}`));

const port = new SerialPort({ path, baudRate: 115200 });
const parser = port.pipe(new ReadlineParser({ delimiter: '\n' }));
port.on('error', (err) => console.error(`serial: ${err.message}`));

parser.on('data', (line: string) => {
  lines++;
  const ts = Date.now();
  for (const pair of line.split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const tag = pair.slice(0, eq).trim();
    const text = pair.slice(eq + 1).trim();
    const num = Number(text);
    const value = text !== '' && Number.isFinite(num) ? num : text;
    published++;
    client.publish(`${prefix}/${tag}`, JSON.stringify({ value, ts }), { qos: 1 }, (err) => {
      if (!err) acked++;
    });
  }
});

let ready = 0;
const isReady = (): void => {
  if (++ready < 2) return;
  loop.reset(); // the delay of the run, not of the start-up
  process.stdout.write('ready\n');
};
port.on('open', isReady);
client.once('connect', isReady);

process.on('SIGTERM', () => {
  const p99 = loop.count > 0 ? Math.max(0, loop.percentile(99) / 1e6 - 10) : 0; // as the gateway reports it
  process.stdout.write(JSON.stringify({ lines, published, acked, loop_p99_ms: Math.round(p99 * 100) / 100 }) + '\n');
  process.exit(0);
});
