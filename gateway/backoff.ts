import type { Clock } from './types.js';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** 0..1, a random number source (injected in tests) */
  random?: () => number;
}

/**
 * Jittered exponential backoff: attempt n waits between half and all of
 * min(max, initial * 2^n), never less than `initial`, so that devices that
 * failed together do not retry together.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.max(initial, Math.round(ceiling * (0.5 + 0.5 * random())));
}

/** resolves after ms on the clock, or at once when the signal aborts */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(handle);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const handle = clock.setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
