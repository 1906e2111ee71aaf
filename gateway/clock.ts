import type { Clock, TimerHandle } from './types.js';

/** The real clock. Timers are unref'd only by their owners where that is right. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface FakeTimer { at: number; seq: number; fn: () => void; cancelled: boolean }

/** A clock for tests: time moves only when advance() is called. */
export class FakeClock implements Clock {
  private t: number;
  /** how far the wall clock has been stepped away from the monotonic one */
  private wallOffset = 0;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(start = 1_764_250_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t + this.wallOffset;
  }

  monotonic(): number {
    return this.t;
  }

  /** steps the wall clock (an NTP correction): now() moves, monotonic() and timers do not */
  stepWall(ms: number): void {
    this.wallOffset += ms;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as FakeTimer).cancelled = true;
  }

  /** move time forward, firing every timer that falls due, in order */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      let next: FakeTimer | undefined;
      for (const x of this.timers) if (x.at <= end && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      next.cancelled = true;
      next.fn();
    }
    this.t = end;
  }

  /** timers still pending */
  get pending(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }
}
