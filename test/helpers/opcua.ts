// OPC UA peers for tests: the simulated node-opcua server over TCP on a free
// port, and the driver running against it with a context that records every
// reading (with its quality), status and log line. Everything started here is
// stopped by stopAll(), on success and on failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opcuaDevice } from '../../config/schema.js';
import { OpcuaDriver } from '../../drivers/opcua/driver.js';
import { startSimServer, type SimServer, type SimServerOptions } from '../../drivers/opcua/sim-server.js';
import { routeOpcuaLogs } from '../../drivers/opcua/ua.js';
import type { DeviceState, DriverContext, Logger, Quality, RawValue } from '../../gateway/types.js';
import { systemClock } from '../../gateway/clock.js';
import { runInBackground, waitFor } from './peers.js';

// node-opcua writes default PKI folders under $XDG_CONFIG_HOME: never the user's own
const home = mkdtempSync(join(tmpdir(), 'edgegate-opcua-home-'));
process.env.XDG_CONFIG_HOME = home;
process.on('exit', () => rmSync(home, { recursive: true, force: true }));

export interface LogLine { level: string; obj: Record<string, unknown>; msg: string }

export function capturingLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (obj: object | string, msg?: string) => {
    if (level === 'trace' || level === 'debug') return;
    lines.push(typeof obj === 'string' ? { level, obj: {}, msg: obj } : { level, obj: obj as Record<string, unknown>, msg: msg ?? '' });
  };
  const log: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), child: () => log };
  return log;
}
routeOpcuaLogs(capturingLogger([]));

const sims = new Set<SimServer>();
const rigs = new Set<Rig>();
const dirs = new Set<string>();

export async function sim(opts: SimServerOptions = {}): Promise<SimServer> {
  const s = await startSimServer(opts);
  sims.add(s);
  return s;
}

export async function stopSim(s: SimServer): Promise<void> {
  sims.delete(s);
  await s.stop();
}

export function tempPki(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgegate-opcua-pki-'));
  dirs.add(dir);
  return dir;
}

export interface Rig {
  driver: OpcuaDriver;
  readings: Array<{ key: string; value: RawValue; ts: number; quality: Quality; at: number }>;
  statuses: Array<{ state: DeviceState; error?: string }>;
  parseErrors: string[];
  logs: LogLine[];
  reconnects: number;
  run: Promise<void>;
  /** 'running', 'resolved', or the rejection */
  outcome(): unknown;
  values(key: string): RawValue[];
  lastStatus(): { state: DeviceState; error?: string } | undefined;
  stop(): Promise<void>;
}

/** the gateway id the test drivers name in their client certificate */
export const TEST_GATEWAY_ID = 'test-gw';

let shared: string | undefined;
/** one client PKI folder for a whole test file: the client certificate is made once */
export function sharedPki(): string {
  shared ??= tempPki();
  return shared;
}

/** the driver on a device map (endpoint, pki_dir and id filled in), running */
export function startDriver(endpoint: string, device: Record<string, unknown>, pkiDir = sharedPki()): Rig {
  const controller = new AbortController();
  const logs: LogLine[] = [];
  const config = opcuaDevice.parse({ id: 'plc', driver: 'opcua', endpoint, pki_dir: pkiDir, sampling_interval: 0, publishing_interval: 100, ...device });
  const driver = new OpcuaDriver(config, TEST_GATEWAY_ID);
  let background: ReturnType<typeof runInBackground> | undefined;
  const rig: Rig = {
    driver, readings: [], statuses: [], parseErrors: [], logs, reconnects: 0,
    run: Promise.resolve(),
    outcome: () => background?.outcome() ?? 'running',
    values: (key) => rig.readings.filter((r) => r.key === key).map((r) => r.value),
    lastStatus: () => rig.statuses[rig.statuses.length - 1],
    async stop() {
      controller.abort();
      await rig.run;
      rigs.delete(rig);
    },
  };
  const ctx: DriverContext = {
    deviceId: 'plc', log: capturingLogger(logs), clock: systemClock, signal: controller.signal,
    emit: (key, value, ts, quality = 'good') => void rig.readings.push({ key, value, ts, quality, at: Date.now() }),
    setStatus: (state, error) => void rig.statuses.push(error === undefined ? { state } : { state, error }),
    parseError: (reason) => void rig.parseErrors.push(reason),
    timeout: () => undefined,
    reconnecting: () => void rig.reconnects++,
  };
  background = runInBackground(driver, ctx);
  rig.run = background.done;
  rigs.add(rig);
  return rig;
}

export async function connected(rig: Rig, ms = 20_000): Promise<void> {
  await waitFor(() => rig.lastStatus()?.state === 'connected' || rig.lastStatus()?.state === 'error' || rig.outcome() !== 'running', ms, 'the driver to connect');
  if (rig.outcome() !== 'running') throw new Error(`run() ended: ${String(rig.outcome())}`);
}

/** stops every driver, then every server, then removes the folders */
export async function stopAll(): Promise<void> {
  for (const r of [...rigs]) await r.stop();
  for (const s of [...sims]) await stopSim(s);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
  shared = undefined;
}

/** a device map on the simulated server's Sim variables, for end-to-end tests */
export function opcuaDeviceMap(id: string, endpoint: string, extra: Record<string, unknown> = {}) {
  return {
    id, driver: 'opcua', endpoint, sampling_interval: 0, publishing_interval: '100ms',
    tags: {
      counter: { node: 'ns=1;s=Sim.Counter', type: 'integer' },
      temperature: { node: 'ns=1;s=Sim.Temperature' },
      stamp: { node: 'ns=1;s=Sim.Timestamp', type: 'integer' },
      setpoint: { node: 'ns=1;s=Sim.Setpoint', writable: true, min: 0, max: 100 },
      level: { node: 'ns=1;s=Sim.Level', writable: true, type: 'integer' },
      readonly: { node: 'ns=1;s=Sim.ReadOnly' },
      // a string: the server refuses the deadband filter, and the tag is monitored without it
      state: { node: 'ns=1;s=Sim.State', deadband: 1 },
    },
    ...extra,
  };
}
