// The real clock, counting the timers still pending by duration: a test waits
// for "the scan is waiting" or "no debounce timer left" instead of sleeping.
import { systemClock } from '../../gateway/clock.js';
import type { Clock, TimerHandle } from '../../gateway/types.js';

export interface WatchedClock extends Clock {
  /** timers of `ms` set and neither fired nor cleared */
  pending(ms: number): number;
  /** timers of `ms` that fired */
  fired(ms: number): number;
}

export function watchedClock(): WatchedClock {
  const pending = new Map<TimerHandle, number>();
  const fired = new Map<number, number>();
  return {
    now: systemClock.now,
    monotonic: systemClock.monotonic,
    setTimeout(fn, ms) {
      const h = systemClock.setTimeout(() => {
        pending.delete(h);
        fired.set(ms, (fired.get(ms) ?? 0) + 1);
        fn();
      }, ms);
      pending.set(h, ms);
      return h;
    },
    clearTimeout(h) {
      pending.delete(h);
      systemClock.clearTimeout(h);
    },
    pending: (ms) => [...pending.values()].filter((v) => v === ms).length,
    fired: (ms) => fired.get(ms) ?? 0,
  };
}
