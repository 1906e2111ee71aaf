// The instrument end of the benchmark's pty pair, as its own process so that
// writing never competes with the measuring process's event loop. It streams
// kv lines with a counter, `n=123;T=21.53;H=40.2\n`, either paced to a baud
// rate (a pty ignores the baud rate, so the pacing is done here: every 10 ms
// the bytes due by then are written, a line may straddle two writes as on a
// real wire), or as fast as the pty takes them, or N lines a second each
// carrying the time it was written (`lines:N`: `n=12;t=1764250000123\n`), for
// latency from the wire to the subscriber. It ends at a line boundary and
// prints one JSON line: {"lines":…,"bytes":…,"start":…,"end":…,"cpu_s":…}.
//
//   node dist/bench/instrument.js PATH SECONDS BAUD|unpaced|lines:N
import { openInstrument } from '../test/helpers/socat.js';

const [path, secondsArg, modeArg] = process.argv.slice(2);
if (path === undefined || secondsArg === undefined || modeArg === undefined) {
  console.error('usage: instrument.js PATH SECONDS BAUD|unpaced|lines:N');
  process.exit(2);
}
const seconds = Number(secondsArg);
const STALL_MS = 5000;
const linesPerS = modeArg.startsWith('lines:') ? Number(modeArg.slice(6)) : undefined;
const baud = modeArg === 'unpaced' || linesPerS !== undefined ? undefined : Number(modeArg);

let n = 0;
/** the next line of the instrument */
function line(): string {
  const i = n++;
  const t = (2153 + Math.round(300 * Math.sin(i / 500))) / 100;
  const h = (402 + (i % 97)) / 10;
  return `n=${i};T=${t};H=${h}\n`;
}

/** complete lines of about `bytes` in all */
function lines(bytes: number): Buffer {
  let s = '';
  while (s.length < bytes) s += line();
  return Buffer.from(s, 'latin1');
}

const port = await openInstrument(path);
const start = Date.now();
const until = start + seconds * 1000;
let bytes = 0;
// a reader that stopped reading leaves a write waiting for ever: give up, saying so
setTimeout(() => {
  console.error(`the pty took no more bytes for ${STALL_MS} ms after the end (${bytes} bytes written)`);
  process.exit(1);
}, seconds * 1000 + STALL_MS).unref();

if (linesPerS !== undefined) {
  // one line per period, stamped as it is written
  const period = 1000 / linesPerS;
  for (let due = start; due < until; due += period) {
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const chunk = Buffer.from(`n=${n++};t=${Date.now()}\n`, 'latin1');
    await port.write(chunk);
    bytes += chunk.length;
  }
} else if (baud === undefined) {
  // each write waits until the pty took it: as fast as the reader drains it
  while (Date.now() < until) {
    const chunk = lines(16 * 1024);
    await port.write(chunk);
    bytes += chunk.length;
  }
} else {
  // 8N1: ten bits on the wire per byte
  const bytesPerMs = baud / 10 / 1000;
  let pending = Buffer.alloc(0);
  let lastByte = 10;
  await new Promise<void>((resolve, reject) => {
    let busy = false;
    const tick = (): void => {
      if (busy) return; // a slow write: the next tick catches up on the bytes due
      const now = Date.now();
      const last = now >= until;
      const due = Math.floor((Math.min(now, until) - start) * bytesPerMs) - bytes;
      if (pending.length < due) pending = Buffer.concat([pending, lines(due - pending.length + 64)]);
      let take = Math.max(0, due);
      // after the end, finish the line under way and nothing more (pending always ends a line)
      if (last && (take > 0 ? pending[take - 1] : lastByte) !== 10) take = pending.indexOf(10, take) + 1;
      const out = pending.subarray(0, take);
      pending = pending.subarray(take);
      bytes += out.length;
      if (out.length > 0) lastByte = out[out.length - 1] as number;
      const done = (): void => {
        busy = false;
        if (!last) return;
        clearInterval(timer);
        resolve();
      };
      busy = true;
      if (out.length === 0) done();
      else port.write(out).then(done, reject);
    };
    const timer = setInterval(tick, 10);
  });
  // lines made but never written were not sent
  n -= countLines(pending);
}

const end = Date.now();
const cpu = process.cpuUsage();
process.stdout.write(JSON.stringify({ lines: n, bytes, start, end, cpu_s: (cpu.user + cpu.system) / 1e6 }) + '\n');
await port.close();
process.exit(0);

function countLines(buf: Buffer): number {
  let c = 0;
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) c++;
  return c;
}
