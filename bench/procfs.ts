// CPU time and resident memory of another process, read from /proc: sampled
// at a fixed period so a measured window can be cut out afterwards.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcSample {
  /** Date.now() when read */
  t: number;
  /** utime + stime, in seconds */
  cpu_s: number;
  /** VmRSS, in bytes */
  rss: number;
  /** RssAnon: the private part of VmRSS (the rest is mapped files, the node binary above all) */
  rss_anon: number;
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** one sample, or undefined when the process is gone */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name in field 2 may hold spaces: count fields after its ")"
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { t: Date.now(), cpu_s: (utime + stime) / clockTicks(), rss: kb('VmRSS'), rss_anon: kb('RssAnon') };
  } catch {
    return undefined;
  }
}

export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pid: number, private readonly periodMs = 100) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.periodMs);
  }

  /** takes a sample now (also called at the edges of a window) */
  sample(): ProcSample | undefined {
    const s = readProc(this.pid);
    if (s) this.samples.push(s);
    return s;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** the sample closest in time to t */
  at(t: number): ProcSample | undefined {
    let best: ProcSample | undefined;
    for (const s of this.samples) if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    return best;
  }

  /** RSS in MB about once a second between two instants, to see growth */
  rssSeries(from: number, to: number): number[] {
    const out: number[] = [];
    let next = from;
    for (const s of this.samples) {
      if (s.t < next || s.t > to) continue;
      out.push(Math.round((s.rss / 2 ** 20) * 10) / 10);
      next = s.t + 1000;
    }
    return out;
  }

  /** CPU seconds and the largest RSS between two instants */
  window(from: number, to: number): { cpu_s: number; seconds: number; max_rss: number; max_rss_anon: number } {
    const a = this.at(from);
    const b = this.at(to);
    let maxRss = 0, maxAnon = 0;
    for (const s of this.samples) {
      if (s.t < from - this.periodMs || s.t > to + this.periodMs) continue;
      maxRss = Math.max(maxRss, s.rss);
      maxAnon = Math.max(maxAnon, s.rss_anon);
    }
    if (!a || !b || b.t <= a.t) return { cpu_s: 0, seconds: 0, max_rss: maxRss, max_rss_anon: maxAnon };
    return { cpu_s: b.cpu_s - a.cpu_s, seconds: (b.t - a.t) / 1000, max_rss: maxRss, max_rss_anon: maxAnon };
  }
}

/** the direct children of a process, with their command names */
export function childrenOf(ppid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (Number(stat.slice(close + 2).split(' ')[1]) === ppid) out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** busy and total CPU seconds of the whole machine, from /proc/stat */
function hostCpu(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const t = clockTicks();
  return { busy: (user + nice + system + irq + softirq + steal) / t, total: (user + nice + system + idle + iowait + irq + softirq + steal) / t };
}

/** CPU seconds of several processes at once, by role, and of the whole machine */
export class CpuShares {
  private readonly start = new Map<string, { pid: number; s: ProcSample }>();
  private t0 = 0;
  private host0 = { busy: 0, total: 0 };

  constructor(private readonly roles: Map<string, number>) {}

  begin(): void {
    this.t0 = Date.now();
    this.host0 = hostCpu();
    for (const [role, pid] of this.roles) {
      const s = readProc(pid);
      if (s) this.start.set(role, { pid, s });
    }
  }

  /**
   * % of one core per role since begin(), and `host`: the whole machine busy,
   * in % of one core (200 is two cores fully busy)
   */
  end(): Record<string, number> {
    const secs = (Date.now() - this.t0) / 1000;
    const out: Record<string, number> = {};
    if (secs <= 0) return out;
    for (const [role, { pid, s }] of this.start) {
      const e = readProc(pid);
      if (e) out[role] = Math.round(((e.cpu_s - s.cpu_s) / secs) * 1000) / 10;
    }
    const h = hostCpu();
    out.host = Math.round(((h.busy - this.host0.busy) / secs) * 1000) / 10;
    return out;
  }
}
