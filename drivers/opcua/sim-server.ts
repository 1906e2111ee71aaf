// A simulated OPC UA server (node-opcua's server, over TCP) for the tests, the
// demo and the benchmark. Under Objects/Sim a handful of variables of every
// kind the driver meets (ns=1;s=Sim.<Name>); under Objects/Bench `variables`
// UInt32 counters (ns=1;s=v<i>) that all take the next tick number every
// intervalMs (in ten slices spread over it), so a subscriber can tell exactly
// which changes it missed.
//
// As its own process (the benchmark runs it so, a node-opcua server saturates
// about one core at 50,000 changes/s):
//   node dist/drivers/opcua/sim-server.js [--port N] [--variables N] [--interval-ms N] [--user NAME:PASSWORD]
// prints {"ready":true,"endpoint":…} once listening, {"tick":N,"changes":N,"t":ms} every
// 100 ms, and {"changes":N,…} on SIGTERM.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import {
  DataType, MessageSecurityMode, OPCUACertificateManager, OPCUAServer, SecurityPolicy, setErrorLogger, setWarningLogger,
  StatusCode, StatusCodes, Variant, type UAVariable,
} from 'node-opcua';

export type SimMode = 'None' | 'Sign' | 'SignAndEncrypt';
export type SimPolicy = 'None' | 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep' | 'Aes256_Sha256_RsaPss';

export interface SimServerOptions {
  /** 0 (default): a free port */
  port?: number;
  /** bench counters under Objects/Bench */
  variables?: number;
  /** how often the variables change (default 100 ms) */
  intervalMs?: number;
  /** endpoints offered (default: all modes and policies) */
  security?: { modes: SimMode[]; policies: SimPolicy[] };
  /** user name → password; when given, anonymous sessions are refused */
  users?: Record<string, string>;
  /** false: client certificates are rejected unless in the server's trusted folder (default: every client is trusted) */
  trustClients?: boolean;
  /** the server's PKI folder (reuse it to keep the certificate across restarts); default: a temp folder removed by stop() */
  pkiDir?: string;
}

export interface SimServer {
  /** opc.tcp://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly port: number;
  readonly pkiDir: string;
  /** changes made to the bench counters so far */
  readonly changes: number;
  /** ticks done so far: counter v<i> holds the latest one */
  readonly ticks: number;
  sessionCount(): number;
  /** the maxNotificationsPerPublish each open subscription got (0 asked: the server's own limit) */
  notificationLimits(): number[];
  /** rereads the server's trust list (<pkiDir>/server/trusted/certs), as an administrator's "trust" does */
  reloadTrust(): Promise<void>;
  /** a Sim variable by name, e.g. "Quality" */
  variable(name: string): UAVariable;
  /** sets a Sim variable, with a status code (default Good) */
  set(name: string, value: unknown, status?: StatusCode): void;
  stop(): Promise<void>;
}

interface SimVar { name: string; dataType: DataType; value: unknown; access?: string; valueRank?: number; tick?: (n: number, v: SimVar, now: Date) => unknown }

const SIM_VARS: SimVar[] = [
  { name: 'Temperature', dataType: DataType.Double, value: 21.5, tick: (_, v) => Math.round(((v.value as number) + (Math.random() - 0.5) * 0.2) * 100) / 100 },
  { name: 'Counter', dataType: DataType.UInt32, value: 0, tick: (n) => n },
  { name: 'Ramp', dataType: DataType.Double, value: 0, tick: (n) => Math.round(n) / 10 },
  { name: 'Running', dataType: DataType.Boolean, value: true, tick: (n) => Math.floor(n / 20) % 2 === 0 },
  { name: 'State', dataType: DataType.String, value: 'running', tick: (n) => (Math.floor(n / 20) % 2 === 0 ? 'running' : 'idle') },
  { name: 'Timestamp', dataType: DataType.DateTime, value: new Date(), tick: (_n, _v, now) => now },
  { name: 'Spectrum', dataType: DataType.Double, valueRank: 1, value: [1, 2, 3, 4], tick: (n) => [n, n + 1, n + 2, n + 3] },
  { name: 'BigCount', dataType: DataType.Int64, value: 0, tick: (n) => n },
  { name: 'Quality', dataType: DataType.Double, value: 1 },
  { name: 'Setpoint', dataType: DataType.Double, value: 50, access: 'CurrentRead | CurrentWrite' },
  { name: 'Level', dataType: DataType.Int16, value: 0, access: 'CurrentRead | CurrentWrite' },
  { name: 'Small', dataType: DataType.Byte, value: 0, access: 'CurrentRead | CurrentWrite' },
  { name: 'Enable', dataType: DataType.Boolean, value: false, access: 'CurrentRead | CurrentWrite' },
  { name: 'Mode', dataType: DataType.String, value: 'auto', access: 'CurrentRead | CurrentWrite' },
  { name: 'ReadOnly', dataType: DataType.Double, value: 7 },
  { name: 'Secret', dataType: DataType.Double, value: 42, access: 'CurrentWrite' },
  { name: 'Label', dataType: DataType.LocalizedText, value: { text: 'not a plain value' } },
];

export async function startSimServer(opts: SimServerOptions = {}): Promise<SimServer> {
  const ownPki = opts.pkiDir === undefined;
  const pkiDir = opts.pkiDir ?? mkdtempSync(join(tmpdir(), 'edgegate-opcua-sim-'));
  const modes = opts.security?.modes ?? ['None', 'Sign', 'SignAndEncrypt'];
  const policies = opts.security?.policies ?? ['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'];
  const users = opts.users;
  // by default the sim trusts every client: the gateway's trust of the server is what most tests check
  const serverCertificateManager = new OPCUACertificateManager({ rootFolder: join(pkiDir, 'server'), automaticallyAcceptUnknownCertificate: opts.trustClients ?? true, disableFileWatchers: true });
  const server = new OPCUAServer({
    port: opts.port ?? 0,
    resourcePath: '/',
    buildInfo: { productName: 'edgegate simulated OPC UA server', manufacturerName: 'edgegate' },
    serverCertificateManager,
    userCertificateManager: new OPCUACertificateManager({ rootFolder: join(pkiDir, 'user'), disableFileWatchers: true }),
    securityModes: modes.map((m) => MessageSecurityMode[m]),
    securityPolicies: policies.map((p) => SecurityPolicy[p]),
    allowAnonymous: users === undefined,
    ...(users ? { userManager: { isValidUser: (name: string, password: string) => users[name] === password } } : {}),
    // 0: every change of an exception-based variable is reported, none folded into a sampling window
    serverCapabilities: { maxSessions: 100, minSupportedSampleRate: 0 },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error('the simulated server has no address space');
  const ns = addressSpace.getOwnNamespace();
  const objects = addressSpace.rootFolder.objects;

  const sim = ns.addObject({ organizedBy: objects, browseName: 'Sim', nodeId: 's=Sim' });
  const simNodes = new Map<string, UAVariable>();
  const state = SIM_VARS.map((v) => ({ ...v, value: v.name === 'Timestamp' ? new Date() : v.value }));
  for (const v of state) {
    const access = v.access ?? 'CurrentRead';
    simNodes.set(v.name, ns.addVariable({
      componentOf: sim, browseName: v.name, nodeId: `s=Sim.${v.name}`, dataType: DataType[v.dataType],
      accessLevel: access, userAccessLevel: access, minimumSamplingInterval: 0,
      ...(v.valueRank !== undefined ? { valueRank: v.valueRank, arrayDimensions: [0] } : {}),
      value: { dataType: v.dataType, value: v.value, ...(v.valueRank ? { arrayType: 1 } : {}) },
    }));
  }
  const bench = ns.addObject({ organizedBy: objects, browseName: 'Bench', nodeId: 's=Bench' });
  const counters: UAVariable[] = [];
  for (let i = 0; i < (opts.variables ?? 0); i++) {
    counters.push(ns.addVariable({
      componentOf: bench, browseName: `v${i}`, nodeId: `s=v${i}`, dataType: 'UInt32', minimumSamplingInterval: 0, accessLevel: 'CurrentRead', userAccessLevel: 'CurrentRead',
      value: { dataType: DataType.UInt32, value: 0 },
    }));
  }
  await server.start();
  const port = server.endpoints[0]?.port ?? opts.port ?? 0;

  let ticks = 0;
  let changes = 0;
  const interval = opts.intervalMs ?? 100;
  // the counters change in slices spread over the interval, each stamped when it is set, as
  // values sampled by a device would be: one burst of 10,000 sets would delay the last of them
  const slices = counters.length >= 1000 ? 10 : 1;
  const perSlice = Math.ceil(counters.length / slices);
  let slice = 0;
  let variant = new Variant({ dataType: DataType.UInt32, value: 0 });
  const runSlice = (now: Date) => {
    if (slice === 0) {
      ticks++;
      for (const v of state) {
        if (!v.tick) continue;
        v.value = v.tick(ticks, v, now);
        simNodes.get(v.name)?.setValueFromSource(new Variant({ dataType: v.dataType, value: v.value, arrayType: v.valueRank ? 1 : 0 }), StatusCodes.Good, now);
      }
      variant = new Variant({ dataType: DataType.UInt32, value: ticks });
    }
    const end = Math.min(counters.length, (slice + 1) * perSlice);
    for (let i = slice * perSlice; i < end; i++) (counters[i] as UAVariable).setValueFromSource(variant, StatusCodes.Good, now);
    changes += Math.max(0, end - slice * perSlice);
    slice = (slice + 1) % slices;
  };
  // on a fixed schedule: slices that fell due while the loop was busy run at once; a server
  // more than one interval behind (saturated) starts the schedule again from now, and its
  // ticks/s show it
  const step = interval / slices;
  let due = Date.now();
  let timer: NodeJS.Timeout;
  const onTimer = () => {
    const now = Date.now();
    for (let n = 0; due <= now && n < slices; n++) {
      runSlice(new Date());
      due += step;
    }
    if (due < Date.now() - interval) due = Date.now();
    timer = setTimeout(onTimer, Math.max(0, due - Date.now()));
  };
  timer = setTimeout(onTimer, 0);

  const variable = (name: string): UAVariable => {
    const v = simNodes.get(name);
    if (!v) throw new Error(`no Sim variable "${name}"`);
    return v;
  };
  return {
    endpoint: `opc.tcp://127.0.0.1:${port}`,
    port,
    pkiDir,
    get changes() { return changes; },
    get ticks() { return ticks; },
    sessionCount: () => server.engine.currentSessionCount,
    notificationLimits: () => {
      const sessions = (server.engine as unknown as { _sessions: Record<string, { publishEngine?: { subscriptions: Array<{ maxNotificationsPerPublish: number }> } }> })._sessions;
      return Object.values(sessions).flatMap((s) => s.publishEngine?.subscriptions.map((x) => x.maxNotificationsPerPublish) ?? []);
    },
    reloadTrust: () => serverCertificateManager.reloadCertificates(),
    variable,
    set(name, value, status = StatusCodes.Good) {
      const def = SIM_VARS.find((v) => v.name === name);
      variable(name).setValueFromSource(new Variant({ dataType: def?.dataType ?? DataType.Double, value }), status, new Date());
    },
    async stop() {
      clearTimeout(timer);
      await server.shutdown(0);
      if (ownPki) rmSync(pkiDir, { recursive: true, force: true });
    },
  };
}

async function main(argv: string[]): Promise<void> {
  // stdout carries the ready and report lines only
  const toStderr = (_ctx: unknown, ...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
  setWarningLogger(toStderr);
  setErrorLogger(toStderr);
  const opts: SimServerOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    i++;
    if (name === '--port') opts.port = Number(value);
    else if (name === '--variables') opts.variables = Number(value);
    else if (name === '--interval-ms') opts.intervalMs = Number(value);
    else if (name === '--user') {
      const [u = '', p = ''] = value.split(':');
      opts.users = { ...opts.users, [u]: p };
    } else throw new Error(`unknown option ${name}`);
  }
  const sim = await startSimServer(opts);
  const started = Date.now();
  process.stdout.write(`${JSON.stringify({ ready: true, endpoint: sim.endpoint, port: sim.port, variables: opts.variables ?? 0 })}\n`);
  // where the server is, for a benchmark that must not judge that by what reached its subscriber
  setInterval(() => process.stdout.write(`${JSON.stringify({ tick: sim.ticks, changes: sim.changes, t: Date.now() })}\n`), 100).unref();
  const stop = () => {
    const report = { changes: sim.changes, ticks: sim.ticks, seconds: (Date.now() - started) / 1000, sessions: sim.sessionCount() };
    void sim.stop().finally(() => {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`sim-server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
