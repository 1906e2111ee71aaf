// A real Mosquitto as a child process on a free port, and a recording
// subscriber. Without mosquitto (outside CI only) the embedded aedes broker
// stands in, loudly; `kind` tells tests which one they got.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type IClientOptions } from 'mqtt';
import { freePort, requirePeer, tempDir, which } from './peers.js';

export interface MosquittoOptions {
  port?: number;
  /** keep sessions and retained messages across stop()/restart() */
  persistence?: boolean;
  /** where the config (and the database) go; default: a fresh temp dir */
  dir?: string;
  /** a TLS listener instead of plain TCP (file paths) */
  tls?: { ca: string; cert: string; key: string };
}

export interface TestBroker {
  kind: 'mosquitto' | 'aedes';
  port: number;
  url: string;
  /** SIGTERM, then SIGKILL after 2 s */
  stop(): Promise<void>;
  /** SIGKILL: no goodbye to clients, nothing saved */
  kill(): Promise<void>;
  /** starts again on the same port and dir */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
const ownDirs = new Set<() => void>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const remove of ownDirs) remove();
});

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<TestBroker> {
  if (!requirePeer('mosquitto', 'the MQTT tests run against a real broker; using the embedded aedes broker instead')) {
    return embeddedStandIn(opts.port ?? await freePort());
  }
  let dir = opts.dir;
  if (dir === undefined) {
    const t = tempDir('edgegate-mosquitto-');
    ownDirs.add(t.remove);
    dir = t.dir;
  }
  const conf = join(dir, 'mosquitto.conf');
  let child: ChildProcess | undefined;
  let port = opts.port ?? 0;
  // a port found free can be taken by a parallel test before mosquitto binds it: pick another
  for (let attempt = 1; child === undefined; attempt++) {
    if (opts.port === undefined) port = await freePort();
    writeFileSync(conf, config(port, dir, opts));
    try {
      child = await spawnMosquitto(conf, port);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 3 || !/in use/i.test(String(err))) throw err;
    }
  }
  const signal = async (sig: NodeJS.Signals, graceMs: number): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(sig);
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return {
    kind: 'mosquitto',
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    stop: () => signal('SIGTERM', 2000),
    kill: () => signal('SIGKILL', 0),
    restart: async () => {
      await signal('SIGTERM', 2000);
      child = await spawnMosquitto(conf, port);
    },
  };
}

function config(port: number, dir: string, opts: MosquittoOptions): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // the default 1000 silently drops QoS 1 messages to a slow subscriber
    'max_queued_messages 0',
    // max_inflight_messages keeps its default 20, as in production: MQTT 5
    // clients get it as the receive maximum, and 1 would serialise delivery
    'log_dest stderr',
    'log_type error', 'log_type warning', 'log_type notice', 'log_type information',
  ];
  if (opts.tls) lines.push(`cafile ${opts.tls.ca}`, `certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`);
  if (opts.persistence) lines.push('persistence true', `persistence_location ${dir}/`);
  // as root it would drop to the mosquitto user, who cannot write the temp dir
  if (process.getuid?.() === 0) lines.push('user root');
  return lines.join('\n') + '\n';
}

/**
 * Runs mosquitto behind a watcher that SIGKILLs it when this process dies in
 * any way (even SIGKILL): the watcher waits for EOF on a pipe from us. `exec`
 * keeps mosquitto's pid equal to the child's, so signals reach it directly.
 */
async function spawnMosquitto(conf: string, port: number): Promise<ChildProcess> {
  const bin = which('mosquitto') ?? 'mosquitto';
  const script = 'exec 3<&0; (cat <&3 >/dev/null; kill -9 $$ 2>/dev/null) & exec "$0" -c "$1" 3<&- </dev/null';
  const child = spawn('sh', ['-c', script, bin, conf], { stdio: ['pipe', 'ignore', 'pipe'] });
  running.add(child);
  child.once('exit', () => {
    running.delete(child);
    child.stdin?.end();
  });
  let log = '';
  let listening = false;
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => { clearTimeout(timer); child.kill('SIGKILL'); reject(err); };
    const timer = setTimeout(() => fail(new Error(`mosquitto did not listen on ${port} within 5 s:\n${log}`)), 5000);
    child.once('exit', (code, sig) => { if (!listening) fail(new Error(`mosquitto exited (${code ?? sig}) before listening:\n${log}`)); });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      // keep only the tail, for the error message; the pipe must be drained anyway
      log = (log + chunk).slice(-4000);
      // "Opening ... port N" comes before the bind, which can still fail: "running" comes after
      if (!listening && log.includes(`listen socket on port ${port}`) && /mosquitto version \S+ running/.test(log)) {
        listening = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

async function embeddedStandIn(port: number): Promise<TestBroker> {
  // loaded only here: scripts/smoke.mjs uses this helper on Node.js releases that cannot load aedes
  const { startEmbeddedBroker } = await import('../../gateway/broker.js');
  let broker = await startEmbeddedBroker({ port });
  const down = async () => { await broker.close(); };
  return {
    kind: 'aedes',
    port,
    url: broker.url,
    stop: down,
    kill: down,
    restart: async () => { await broker.close(); broker = await startEmbeddedBroker({ port }); },
  };
}

export interface Collected {
  messages: Array<{ topic: string; payload: string; retain: boolean; properties?: { responseTopic?: string; correlationData?: Buffer } }>;
  close(): Promise<void>;
}

/** a subscriber that records what arrives; subscribed (QoS 1) when this resolves */
export async function collect(url: string, topic: string, opts: { protocolVersion?: 4 | 5; clientId?: string; clean?: boolean; ca?: Buffer } = {}): Promise<Collected> {
  const options: IClientOptions = {
    protocolVersion: opts.protocolVersion ?? 4,
    clean: opts.clean ?? true,
    reconnectPeriod: 100,
    connectTimeout: 5000,
  };
  if (opts.clientId) options.clientId = opts.clientId;
  if (opts.ca) options.ca = opts.ca;
  const client = connect(url, options);
  const messages: Collected['messages'] = [];
  client.on('message', (t, payload, packet) => {
    const m: Collected['messages'][number] = { topic: t, payload: payload.toString('utf8'), retain: packet.retain };
    if (packet.properties) m.properties = { responseTopic: packet.properties.responseTopic, correlationData: packet.properties.correlationData };
    messages.push(m);
  });
  client.on('error', () => { /* reconnects on its own; tests judge by what arrives */ });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`collect: no connection to ${url} within 5 s`)), 5000);
      client.once('connect', () => {
        client.subscribe(topic, { qos: 1 }, (err) => { clearTimeout(timer); if (err) reject(err); else resolve(); });
      });
    });
  } catch (err) {
    client.end(true);
    throw err;
  }
  return {
    messages,
    close: () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, {}, () => resolve()), 1000);
      client.end(false, {}, () => { clearTimeout(timer); resolve(); });
    }),
  };
}
