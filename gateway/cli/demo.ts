// `edgegate demo`: no broker and no device needed. An embedded broker, a
// simulated kv instrument on a serial port (a socat pty pair, or serialport's
// mock binding where socat is absent), a simulated OPC UA server in process,
// and the real drivers and pipeline.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../config/load.js';
import { createLogger } from '../logger.js';
import type { Gateway } from '../gateway.js';
import type { HttpOutput } from '../outputs/http/index.js';
import type { Output } from '../outputs/output.js';
import { parseArgs, UsageError } from './args.js';
import { runGateway } from './run.js';

const DEVICE = 'sensor1';
const OPCUA_DEVICE = 'plc1';
const LINE_INTERVAL_MS = 100;

interface Instrument {
  port: string;
  kind: string;
  stop(): void;
}

/** a random walk that looks like a room sensor, one kv line per call */
function sensorLines(): () => string {
  let t = 21.5, h = 40, n = 0;
  return () => {
    t += (Math.random() - 0.5) * 0.1;
    h += (Math.random() - 0.5) * 0.4;
    n++;
    return `T=${t.toFixed(2)};H=${h.toFixed(1)};count=${n}\n`;
  };
}

async function ptyInstrument(dir: string): Promise<Instrument | undefined> {
  if (spawnSync('sh', ['-c', 'command -v socat']).status !== 0) return undefined;
  const device = join(dir, 'ttyGW'), instr = join(dir, 'ttyINSTR');
  // its own process group: a Ctrl-C in the terminal reaches the gateway, which stops its
  // devices first; the demo then ends socat (a socat gone first reads as an unplugged port)
  const socat: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${device}`, `pty,raw,echo=0,link=${instr}`], { stdio: 'ignore', detached: true });
  for (let i = 0; i < 100 && !(existsSync(device) && existsSync(instr)); i++) await new Promise((r) => setTimeout(r, 20));
  if (!existsSync(instr)) {
    socat.kill();
    return undefined;
  }
  // an exit that skips the stop (a fatal error, the stop deadline) must not leave socat behind
  const killOnExit = (): void => void socat.kill();
  process.once('exit', killOnExit);
  const fd = openSync(instr, 'r+');
  const next = sensorLines();
  // the gateway closing its end at a stop makes socat exit, and the pty then refuses writes (EIO):
  // the instrument falls silent instead of ending the demo with an uncaught error
  const timer = setInterval(() => {
    try {
      writeSync(fd, next());
    } catch {
      clearInterval(timer);
    }
  }, LINE_INTERVAL_MS);
  return {
    port: device,
    kind: `socat pty pair (instrument end: ${instr})`,
    stop() {
      clearInterval(timer);
      closeSync(fd);
      process.off('exit', killOnExit);
      socat.kill();
    },
  };
}

async function mockInstrument(): Promise<Instrument & { binding: unknown }> {
  const { SerialPortMock } = await import('serialport');
  const MockBinding = SerialPortMock.binding;
  const path = '/dev/edgegate-demo-sensor';
  MockBinding.createPort(path, { echo: false, record: false });
  const next = sensorLines();
  let timer: NodeJS.Timeout | undefined;
  const binding = {
    ...MockBinding,
    async open(options: Parameters<typeof MockBinding.open>[0]) {
      const port = await MockBinding.open(options);
      clearInterval(timer);
      timer = setInterval(() => port.isOpen && port.emitData(next()), LINE_INTERVAL_MS);
      return port;
    },
  };
  return { port: path, kind: 'serialport mock binding (socat not found)', binding, stop: () => clearInterval(timer) };
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { options } = parseArgs(argv, ['duration']);
  const duration = options.has('duration') ? Number(options.get('duration')) : undefined;
  if (duration !== undefined && !(duration > 0)) throw new UsageError('--duration needs a number of seconds > 0');

  const dir = mkdtempSync(join(tmpdir(), 'edgegate-demo-'));
  const pty = await ptyInstrument(dir);
  const instrument = pty ?? (await mockInstrument());
  const log = createLogger({ level: 'warn' });
  // node-opcua logs through process-wide hooks: routed before the server loads it
  (await import('../../drivers/opcua/ua.js')).routeOpcuaLogs(log);
  const { startSimServer } = await import('../../drivers/opcua/sim-server.js');
  const plc = await startSimServer({ pkiDir: join(dir, 'opcua-sim') }).catch((err: unknown) => {
    instrument.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const raw = {
    gateway: { id: 'demo' },
    // port 0: the system picks a free one as the server binds; the URL printed is the one it got
    http: { listen: '127.0.0.1:0' },
    mqtt: { url: 'embedded', qos: 1, retain_last_values: true },
    buffer: { dir: join(dir, 'buffer') },
    batch: { max_wait: '1s', max_readings: 100 },
    stats_interval: '10s',
    homeassistant: { enabled: true },
    devices: [{
      id: DEVICE, driver: 'serial', port: instrument.port, baud_rate: 9600, format: 'kv',
      tags: {
        T: { name: 'temperature', unit: '°C', device_class: 'temperature', deadband: 0.05, max_interval: '10s' },
        H: { name: 'humidity', unit: '%', device_class: 'humidity', deadband: 0.5, min_interval: '2s' },
        count: { name: 'counter' },
      },
    }, {
      id: OPCUA_DEVICE, driver: 'opcua', endpoint: plc.endpoint, sampling_interval: '250ms', publishing_interval: '500ms',
      tags: {
        temperature: { node: 'ns=1;s=Sim.Temperature', unit: '°C', device_class: 'temperature', deadband: 0.1 },
        counter: { node: 'ns=1;s=Sim.Counter', min_interval: '1s' },
        running: { node: 'ns=1;s=Sim.Running', type: 'boolean' },
        state: { node: 'ns=1;s=Sim.State', type: 'string' },
        setpoint: { node: 'ns=1;s=Sim.Setpoint', writable: true, min: 0, max: 100 },
      },
    }],
  };
  const loaded = parseConfigText(JSON.stringify(raw), 'demo');
  if (!loaded.ok) throw new Error(`demo config invalid: ${loaded.errors.join('; ')}`);
  const driverDeps = 'binding' in instrument ? { [DEVICE]: { binding: instrument.binding } } : undefined;

  let summary: NodeJS.Timeout | undefined;
  const onStarted = (gateway: Gateway, outputs: readonly Output[]) => {
    const url = new URL(gateway.brokerUrl ?? 'mqtt://127.0.0.1:1883');
    const page = (outputs.find((o) => o.name === 'http') as HttpOutput | undefined)?.url;
    const topic = `${gateway.prefix}/#`;
    process.stdout.write([
      'edgegate demo',
      `  MQTT broker (embedded): mqtt://${url.hostname}:${url.port}`,
      `  simulated instrument:   ${instrument.kind}`,
      `  device "${DEVICE}" (serial driver, kv format) reads ${instrument.port}`,
      `  device "${OPCUA_DEVICE}" (OPC UA driver) reads the simulated server ${plc.endpoint}`,
      '',
      page ? `Status page: ${page}/  (metrics: ${page}/metrics)` : 'Status page: not started (the log says why)',
      '',
      'Watch the data:',
      `  mosquitto_sub -h ${url.hostname} -p ${url.port} -t '${topic}' -v`,
      `  npx mqtt sub -h ${url.hostname} -p ${url.port} -t '${topic}' -v`,
      'Write a setpoint:',
      `  mosquitto_pub -h ${url.hostname} -p ${url.port} -t '${gateway.prefix}/devices/${OPCUA_DEVICE}/set/setpoint' -m 42`,
      'Home Assistant: MQTT discovery is on; point its MQTT integration at this broker',
      `  (reachable from Home Assistant's host) and the devices "${DEVICE}" and "${OPCUA_DEVICE}" appear.`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'));
    summary = setInterval(() => {
      for (const d of gateway.devices) {
        process.stdout.write(`[demo] ${d.id}: ${d.status.state}, ${d.counters.readings_in} readings in, ${d.counters.readings_out} published, ${d.counters.filtered} filtered\n`);
      }
    }, 5000);
    summary.unref();
    if (duration !== undefined) setTimeout(() => process.kill(process.pid, 'SIGTERM'), duration * 1000).unref();
  };
  try {
    return await runGateway(loaded.config, log, { onStarted, ...(driverDeps ? { driverDeps } : {}) });
  } finally {
    clearInterval(summary);
    instrument.stop();
    await plc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}


