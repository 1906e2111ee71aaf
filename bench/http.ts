// HTTP rows: what the status page and a Prometheus scrape cost a gateway of
// 10,000 tags (10 serial devices × 1,000 kv tags, one line a second each,
// through socat ptys into a real Mosquitto). CPU is the gateway process's
// own (from /proc), per request: the CPU of a burst of sequential requests
// less the CPU the same span costs with no requests at all. RSS is the
// largest VmRSS with nobody looking, then with the page open (a live
// client reading the event stream, after fetching every device's history).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CLI, writeConfig } from '../test/helpers/gateway.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { freePort, sleep, tempDir } from '../test/helpers/peers.js';
import { ptyPair, type PtyPair } from '../test/helpers/socat.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { ProcSampler, readProc } from './procfs.js';
import type { Row } from './report.js';
import { stopChild } from './child.js';

export const HTTP_ROWS = {
  scrape: 'http scrape 10,000 tags (gateway)',
  rss: 'rss http page open 10,000 tags (gateway)',
};
const DEVICES = 10;
const TAGS = 1000;
const SCRAPE_EVERY_S = 5;
const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

function get(url: string): Promise<{ status: number; bytes: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d)).on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode ?? 0, bytes: body.length, body: body.toString('utf8') });
      });
    }).on('error', reject).end();
  });
}

/** the gateway's CPU seconds over fn(), and how long it took */
async function cpuOver(pid: number, fn: () => Promise<void>): Promise<{ cpu_s: number; seconds: number }> {
  const a = readProc(pid)!;
  const t0 = performance.now();
  await fn();
  const b = readProc(pid)!;
  return { cpu_s: b.cpu_s - a.cpu_s, seconds: (performance.now() - t0) / 1000 };
}

/** CPU ms per request of a path: n sequential requests, less the idle CPU of the same span */
async function perRequest(pid: number, url: string, n: number, idleCpuPerS: number): Promise<{ cpu_ms: number; bytes: number }> {
  let bytes = 0;
  const w = await cpuOver(pid, async () => {
    for (let i = 0; i < n; i++) {
      const r = await get(url);
      if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
      bytes = r.bytes;
    }
  });
  return { cpu_ms: round2((Math.max(0, w.cpu_s - idleCpuPerS * w.seconds) * 1000) / n), bytes };
}

export async function benchHttp(opts: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  if (opts.only && !opts.only(HTTP_ROWS.scrape) && !opts.only(HTTP_ROWS.rss)) return [];
  process.stderr.write(`bench: ${HTTP_ROWS.scrape} and ${HTTP_ROWS.rss} …\n`);
  const tmp = tempDir('edgegate-bench-http-');
  let broker: TestBroker | undefined;
  const ptys: PtyPair[] = [];
  const fds: number[] = [];
  let feed: NodeJS.Timeout | undefined;
  let gw: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  let events: ReturnType<typeof request> | undefined;
  try {
    broker = await startMosquitto();
    for (let i = 0; i < DEVICES; i++) {
      const dir = join(tmp.dir, `pty${i}`);
      mkdirSync(dir);
      ptys.push(await ptyPair(dir));
    }
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const file = writeConfig(tmp.dir, {
      gateway: { id: 'bench' }, mqtt: { url: broker.url, qos: 1 }, buffer: { dir: join(tmp.dir, 'buffer') },
      batch: { max_readings: 1000, max_wait: '1s' }, stats_interval: '5s', http: { listen: `127.0.0.1:${port}` },
      devices: ptys.map((p, i) => ({ id: `dev${i}`, driver: 'serial', port: p.device, baud_rate: 115200, format: 'kv', max_line_length: 65536 })),
    });
    const g = spawn(process.execPath, [...DEPLOYED_FLAGS, CLI, 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    gw = g;
    let err = '';
    g.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-2000); });
    // each device: one line of 1,000 tags a second, every value changed
    // blocking writes: a line is written whole (a non-blocking one can stop mid-line and garble the next)
    for (const p of ptys) fds.push(openSync(p.instrument, constants.O_WRONLY | constants.O_NOCTTY));
    let n = 0;
    feed = setInterval(() => {
      n++;
      for (const fd of fds) {
        let line = '';
        for (let t = 0; t < TAGS; t++) line += `${t ? ';' : ''}t${t}=${(n + t / 1000).toFixed(3)}`;
        const buf = Buffer.from(`${line}\n`);
        for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
      }
    }, 1000);
    // ready once every device's line came in twice; asked of /metrics, which costs little (a large
    // /api/status in a loop would grow the heap before the RSS with nobody looking is taken)
    const end = Date.now() + 120_000;
    for (;;) {
      if (g.exitCode !== null || g.signalCode !== null) throw new Error(`the gateway exited (${g.exitCode ?? g.signalCode}): ${err}`);
      if (Date.now() > end) throw new Error('the gateway did not read 10,000 tags twice within 120 s');
      const r = await get(`${base}/metrics`).catch(() => undefined);
      const counts = [...(r?.body ?? '').matchAll(/^edgegate_readings_in_total\{device="dev\d+"\} (\d+)$/gm)].map((m) => Number(m[1]));
      if (counts.length === DEVICES && counts.every((c) => c >= 2 * TAGS)) break;
      await sleep(500);
    }
    const pid = g.pid as number;
    sampler = new ProcSampler(pid);
    sampler.start();
    // charts partly filled, as a page opened on a running gateway would find them
    await sleep((opts.quick ? 5 : 20) * 1000);
    const t0 = Date.now();
    const idle = await cpuOver(pid, () => sleep((opts.quick ? 5 : 15) * 1000));
    const idleRss = sampler.window(t0, Date.now()).max_rss;
    const idleCpuPerS = idle.cpu_s / idle.seconds;

    // the page open on a phone: its devices start closed at 1,000 tags each, so only the live stream flows
    let streamed = 0;
    events = request(`${base}/api/events`, (res) => res.on('data', (d: Buffer) => { streamed += d.length; }));
    events.on('error', () => undefined).end();
    const t1 = Date.now();
    const open = await cpuOver(pid, () => sleep((opts.quick ? 5 : 20) * 1000));
    const openRss = sampler.window(t1, Date.now()).max_rss;
    // then every device opened: each one's history once, the stream going on
    let history = 0;
    const t2 = Date.now();
    const h = await cpuOver(pid, async () => {
      for (let i = 0; i < DEVICES; i++) history += (await get(`${base}/api/history?device=dev${i}`)).bytes;
    });
    await sleep((opts.quick ? 3 : 10) * 1000);
    const allRss = sampler.window(t2, Date.now()).max_rss;
    events.destroy();
    await sleep(2000);

    // the scrapes last, alone: per request, less what the gateway costs without them
    const metrics = await perRequest(pid, `${base}/metrics`, opts.quick ? 50 : 200, idleCpuPerS);
    const status = await perRequest(pid, `${base}/api/status`, opts.quick ? 10 : 40, idleCpuPerS);
    const share = (metrics.cpu_ms / (SCRAPE_EVERY_S * 1000)) * 100;
    return [{
      name: HTTP_ROWS.scrape, readings_per_s: null, lost: null, cpu_pct: round2(share), rss_mb: null,
      loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
      note: `/metrics ${metrics.cpu_ms} ms CPU (${round1(metrics.bytes / 1024)} KiB); /api/status ${status.cpu_ms} ms (${round1(status.bytes / 1024)} KiB); cpu %: /metrics every ${SCRAPE_EVERY_S} s; the gateway alone: ${round1(idleCpuPerS * 100)} % at ${(DEVICES * TAGS).toLocaleString('en-US')} readings/s`,
      detail: { metrics_cpu_ms: metrics.cpu_ms, metrics_bytes: metrics.bytes, status_cpu_ms: status.cpu_ms, status_bytes: status.bytes, idle_cpu_pct: round1(idleCpuPerS * 100), devices: DEVICES, tags: DEVICES * TAGS },
    }, {
      name: HTTP_ROWS.rss, readings_per_s: null, lost: null, cpu_pct: round1((open.cpu_s / open.seconds) * 100), rss_mb: round1(openRss / 2 ** 20),
      loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
      note: `nobody looking: ${round1(idleRss / 2 ** 20)} MB; stream ${round1(streamed / 1024 / open.seconds)} KiB/s; every device opened (history ${round1(history / 2 ** 20)} MiB, ${round1((h.cpu_s * 1000) / DEVICES)} ms CPU each): ${round1(allRss / 2 ** 20)} MB; cpu %: page open`,
      detail: {
        idle_rss_mb: round1(idleRss / 2 ** 20), open_rss_mb: round1(openRss / 2 ** 20), all_open_rss_mb: round1(allRss / 2 ** 20), history_bytes: history,
        history_cpu_ms_per_device: round1((h.cpu_s * 1000) / DEVICES), stream_bytes_per_s: Math.round(streamed / open.seconds), idle_cpu_pct: round1(idleCpuPerS * 100),
      },
    }];
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    process.stderr.write(`bench: http failed: ${msg}\n`);
    const failed = (name: string): Row => ({ name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` });
    return [failed(HTTP_ROWS.scrape), failed(HTTP_ROWS.rss)];
  } finally {
    clearInterval(feed);
    events?.destroy();
    sampler?.stop();
    await stopChild(gw, 10_000);
    for (const fd of fds) closeSync(fd);
    for (const p of ptys) await p.stop();
    await broker?.stop();
    tmp.remove();
  }
}
