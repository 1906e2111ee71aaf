// The catch-up after an outage, so that a fleet of gateways coming back
// together does not flood the broker and the consumers behind it.
//
// BacklogReplay: when the connection comes up with batches waiting in the
// buffer, their replay starts after a random delay of up to buffer.replay_jitter
// (gateways that lost the broker together reconnect together; the delay
// spreads their first bursts), then goes at buffer.replay_rate until the
// buffer has nothing queued. Live-only traffic is never delayed nor paced.
//
// ReplayPacer (buffer.replay_rate): a token bucket over readings, spent a
// whole batch at a time. A batch may go while the bucket is not in debt; it
// takes all its readings, so it can put the bucket into debt, and the next
// batch waits until the debt is paid. That keeps the long-run rate exact
// whatever the batch size (a batch of 500 readings at 100/s goes every 5 s)
// with one clock read per batch and no per-reading work.
//
// The backlog and the live data behind it leave the buffer as one FIFO, so the
// rate covers both. If the devices produce faster than the rate, the backlog
// could never drain: live data would wait behind it for ever and the buffer
// would fill until max_size drops the oldest. So the pace never stays below
// what comes in: measured over MEASURE_MS, it rises to DRAIN_MARGIN times the
// incoming rate (the backlog still shrinks, by a fifth of what goes out).
import type { Clock, Logger, TimerHandle } from './types.js';

/** the bucket holds this much time's worth of readings: a small burst */
export const BURST_MS = 100;
/** incoming readings are measured over windows this long */
export const MEASURE_MS = 5000;
/** when readings come in faster than the rate, the pace is this multiple of the incoming rate */
export const DRAIN_MARGIN = 1.25;

export class ReplayPacer {
  /** readings per second, as configured */
  readonly configured: number;
  readonly #clock: Clock;
  #rate: number;
  #tokens: number;
  #at: number;
  #arrived = 0;
  #windowFrom: number;
  /** readings per second that came in over the last full window; 0 before one ended */
  #incoming = 0;

  constructor(rate: number, clock: Clock) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`replay rate must be a positive number, got ${rate}`);
    this.configured = rate;
    this.#rate = rate;
    this.#clock = clock;
    this.#at = this.#windowFrom = clock.monotonic();
    this.#tokens = this.#burst();
  }

  /** the pace now: the configured rate, or more while readings come in faster */
  get rate(): number { return this.#rate; }
  get incoming(): number { return this.#incoming; }

  /** ms until the next batch may go; 0: now */
  wait(): number {
    this.#refill();
    // an empty bucket is not a debt (a float sum landing a hair below 0 is not either)
    if (this.#tokens > -1e-6) return 0;
    return Math.max(1, Math.ceil((-this.#tokens / this.#rate) * 1000));
  }

  /** a batch of this many readings goes */
  take(readings: number): void {
    this.#tokens -= readings;
  }

  /** readings the devices produced (they queue behind the backlog) */
  arrived(readings: number): void {
    this.#arrived += readings;
  }

  #burst(): number {
    return Math.max(1, (this.#rate * BURST_MS) / 1000);
  }

  #refill(): void {
    const now = this.#clock.monotonic();
    this.#tokens = Math.min(this.#burst(), this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
    if (now - this.#windowFrom >= MEASURE_MS) {
      this.#incoming = (this.#arrived * 1000) / (now - this.#windowFrom);
      this.#arrived = 0;
      this.#windowFrom = now;
      this.#rate = Math.max(this.configured, this.#incoming * DRAIN_MARGIN);
    }
  }
}

export interface BacklogReplayOptions {
  /** readings per second; 0: unlimited */
  rate: number;
  /** the random delay before a backlog's replay is at most this long; 0: none */
  jitterMs: number;
  clock: Clock;
  /** uniform in [0, 1) */
  random: () => number;
  log: Logger;
  /** the pump: called when batches may go again */
  resume: () => void;
}

interface Run { from: number; batches: number; readings: number; warned: boolean }

export class BacklogReplay {
  readonly #o: BacklogReplayOptions;
  #hold: TimerHandle | undefined;
  #resume: TimerHandle | undefined;
  #pacer: ReplayPacer | undefined;
  #run: Run | undefined;

  constructor(opts: BacklogReplayOptions) {
    this.#o = opts;
  }

  /** true from a connect with a backlog until the buffer has nothing queued */
  get active(): boolean { return this.#run !== undefined; }
  /** true while the random delay runs */
  get holding(): boolean { return this.#hold !== undefined; }
  /** batches wait on the delay or the pace by design: a timer will let them go */
  get waiting(): boolean { return this.#hold !== undefined || this.#resume !== undefined; }

  /** the connection is up with this many batches queued in the buffer */
  connected(backlog: number): void {
    this.stop();
    if (backlog === 0) return;
    const { rate, jitterMs, random, log } = this.#o;
    const delay = Math.floor(Math.min(Math.max(random(), 0), 1) * jitterMs);
    log.info({ queued_batches: backlog, delay_ms: delay, replay_rate: rate > 0 ? rate : 'unlimited' }, 'backlog to replay after the delay');
    this.#run = { from: this.#o.clock.monotonic(), batches: 0, readings: 0, warned: false };
    if (delay === 0) {
      this.#begin();
      return;
    }
    this.#hold = this.#timer(delay, () => {
      this.#hold = undefined;
      this.#begin();
      this.#o.resume();
    });
  }

  /** whether a batch may go now; when not, resume() is called once it may */
  mayGo(): boolean {
    if (!this.#run) return true;
    if (this.#hold) return false;
    if (!this.#pacer) return true;
    const ms = this.#pacer.wait();
    if (!this.#run.warned && this.#pacer.rate > this.#pacer.configured) {
      this.#run.warned = true;
      this.#o.log.warn({ replay_rate: this.#pacer.configured, incoming_readings_per_s: Math.round(this.#pacer.incoming), pace: Math.round(this.#pacer.rate) },
        'readings come in faster than buffer.replay_rate: the replay keeps ahead of them so that the backlog drains');
    }
    if (ms === 0) return true;
    this.#resume ??= this.#timer(ms, () => {
      this.#resume = undefined;
      this.#o.resume();
    });
    return false;
  }

  /** a batch of this many readings went */
  sent(readings: number): void {
    const run = this.#run;
    if (!run) return;
    run.batches++;
    run.readings += readings;
    this.#pacer?.take(readings);
  }

  /** the devices produced a batch of this many readings */
  arrived(readings: number): void {
    this.#pacer?.arrived(readings);
  }

  /** the buffer has nothing queued: the backlog and what came in behind it have gone */
  caughtUp(): void {
    const run = this.#run;
    if (!run || this.#hold) return;
    const seconds = (this.#o.clock.monotonic() - run.from) / 1000;
    this.#o.log.info({ batches: run.batches, readings: run.readings, seconds: Math.round(seconds * 10) / 10,
      readings_per_s: seconds > 0 ? Math.round(run.readings / seconds) : null }, 'backlog replayed');
    this.stop();
  }

  /** connection lost, or the publisher stops: the next connect decides again */
  stop(): void {
    if (this.#hold) this.#o.clock.clearTimeout(this.#hold);
    if (this.#resume) this.#o.clock.clearTimeout(this.#resume);
    this.#hold = this.#resume = this.#pacer = this.#run = undefined;
  }

  /** the pace (and the time the log reports) starts with the replay, not with the delay */
  #begin(): void {
    if (this.#run) this.#run.from = this.#o.clock.monotonic();
    if (this.#o.rate > 0) this.#pacer = new ReplayPacer(this.#o.rate, this.#o.clock);
  }

  #timer(ms: number, fn: () => void): TimerHandle {
    const h = this.#o.clock.setTimeout(fn, ms);
    // never what keeps the process alive
    (h as { unref?: () => void }).unref?.();
    return h;
  }
}
