// The wait between two attempts of a device whose port is a file (a serial
// port). A USB adapter that is unplugged takes its /dev/ttyUSB* node and its
// /dev/serial/by-id link with it, and udev creates both again when it comes
// back: retrying on the backoff timer would find it seconds late (the backoff
// has grown with every failed attempt meanwhile), so a missing path is watched
// instead and the device is retried the moment it appears. inotify does not
// see every change on every filesystem or container, so a cheap existence
// check at a short interval backs the watch up.
import { readlinkSync, statSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Clock, TimerHandle } from './types.js';

/** The filesystem as the wait sees it (a fake one in tests). */
export interface PathProbe {
  /** whether the path exists, following symlinks (a dangling link does not) */
  exists(path: string): boolean;
  /** where a symlink points, as an absolute path; undefined for anything else */
  linkTarget(path: string): string | undefined;
  /**
   * Calls onChange on any change among the entries of dir; onChange(true)
   * when the watch broke. Returns its stop, or undefined when dir cannot be
   * watched (the existence check still runs).
   */
  watch(dir: string, onChange: (broken?: boolean) => void): (() => void) | undefined;
}

export const fsProbe: PathProbe = {
  exists(path) {
    try {
      statSync(path);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // present but not ours to see (EACCES ...): the open will say why, and the backoff applies
      return code !== 'ENOENT' && code !== 'ENOTDIR';
    }
  },
  linkTarget(path) {
    try {
      return resolve(dirname(path), readlinkSync(path));
    } catch {
      return undefined;
    }
  },
  watch(dir, onChange) {
    try {
      // not persistent: the wait's own timers decide how long the process lives
      const watcher = watch(dir, { persistent: false }, () => onChange());
      watcher.on('error', () => {
        watcher.close();
        onChange(true);
      });
      return () => watcher.close();
    } catch {
      // out of inotify watches, or the directory went away meanwhile
      return undefined;
    }
  },
};

/** how often the existence check runs, in case the watch misses the change */
export const PATH_CHECK_MS = 250;
const MAX_LINK_HOPS = 8;

export interface RetryWaitOptions {
  clock: Clock;
  signal: AbortSignal;
  probe?: PathProbe;
  checkMs?: number;
}

/** why a wait ended: its time was up, the path appeared, or the device was stopped */
export type RetryCause = 'timer' | 'appeared' | 'aborted';

/**
 * Waits before the next attempt on a device whose port is `path`. While the
 * path exists, that is `ms` on the clock (the backoff). While it is missing,
 * at the start or at any moment of the wait, the timer cannot end the wait
 * (opening would only fail again): the wait ends as soon as the path
 * appears. Every watch and timer is stopped when it ends, aborted included.
 */
export function waitForRetry(path: string, ms: number, opts: RetryWaitOptions): Promise<RetryCause> {
  const { clock, signal } = opts;
  const probe = opts.probe ?? fsProbe;
  const checkMs = opts.checkMs ?? PATH_CHECK_MS;
  return new Promise((done) => {
    if (signal.aborted) return done('aborted');
    let ended = false;
    let missing = !probe.exists(path);
    let watchedKey: string | undefined;
    let stops: Array<() => void> = [];
    let checkTimer: TimerHandle | undefined;

    const unwatch = (): void => {
      for (const stop of stops) stop();
      stops = [];
      watchedKey = undefined;
    };
    // the directories that can make the path appear move as they come and go: re-anchored on every check
    const rewatch = (): void => {
      const dirs = watchDirs(path, probe);
      const key = dirs.join('\0');
      if (key === watchedKey) return;
      unwatch();
      watchedKey = key;
      for (const dir of dirs) {
        const stop = probe.watch(dir, onChange);
        if (stop) stops.push(stop);
      }
    };
    const finish = (cause: RetryCause): void => {
      if (ended) return;
      ended = true;
      clock.clearTimeout(timer);
      if (checkTimer !== undefined) clock.clearTimeout(checkTimer);
      unwatch();
      signal.removeEventListener('abort', onAbort);
      done(cause);
    };
    const check = (): void => {
      if (ended) return;
      const present = probe.exists(path);
      if (present && missing) return finish('appeared');
      missing = !present;
      rewatch();
    };
    function onChange(broken?: boolean): void {
      // a broken watch is set up again by the next periodic check, not in a loop here
      if (broken) unwatch();
      else check();
    }
    const onAbort = (): void => finish('aborted');
    const tick = (): void => {
      checkTimer = undefined;
      check();
      if (!ended) checkTimer = clock.setTimeout(tick, checkMs);
    };
    // while the path is missing, the time being up changes nothing: its appearance ends the wait
    const timer = clock.setTimeout(() => {
      if (!missing) finish('timer');
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
    rewatch();
    checkTimer = clock.setTimeout(tick, checkMs);
  });
}

/**
 * The directories whose entries decide whether path exists: the nearest
 * existing one above the path (/dev/serial/by-id itself is removed with the
 * last USB serial adapter) and, for a symlink such as a by-id link, the same
 * for where it points.
 */
export function watchDirs(path: string, probe: PathProbe): string[] {
  const dirs = new Set<string>();
  let p: string | undefined = resolve(path);
  for (let hops = 0; p !== undefined && hops < MAX_LINK_HOPS; hops++) {
    dirs.add(existingAncestor(dirname(p), probe));
    p = probe.linkTarget(p);
  }
  return [...dirs];
}

function existingAncestor(dir: string, probe: PathProbe): string {
  while (!probe.exists(dir) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
