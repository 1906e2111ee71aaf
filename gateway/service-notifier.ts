// Tells systemd how the service is doing (SPEC §6): READY=1 once started,
// RELOADING=1 and READY=1 around a reload, STOPPING=1, a one-line STATUS=, and
// WATCHDOG=1 every half WatchdogSec, but only while the gateway is healthy:
// the event loop answers (this very timer did not fire late by more than half
// WatchdogSec) and the publisher is not wedged. A withheld WATCHDOG=1 lets
// systemd restart the service. Silent without a notify socket.
import { systemClock } from './clock.js';
import type { Health } from './health.js';
import type { SdNotify } from './sdnotify.js';
import type { Clock, Logger, TimerHandle } from './types.js';

export interface ServiceSummary {
  devices: number;
  connected: number;
  /** readings taken in so far (monotonic while the process lives) */
  readings_in: number;
  mqtt_connected: boolean;
  buffer: { batches: number; bytes: number };
}

/** what is asked of the gateway */
export interface ServiceSource {
  /** stallMs: how long batches may wait for an acknowledgement on a live connection */
  healthy(stallMs: number): Health;
  summary(): ServiceSummary;
}

export interface ServiceNotifierOptions {
  notify: SdNotify;
  source: ServiceSource;
  log: Logger;
  clock?: Clock;
  /** how often STATUS= is refreshed (the watchdog may tick more often); default 10 s */
  statusEveryMs?: number;
}

export class ServiceNotifier {
  readonly #o: ServiceNotifierOptions;
  readonly #clock: Clock;
  readonly #tickMs: number;
  #timer: TimerHandle | undefined;
  #due = 0;
  #withheld: string | undefined;
  #last: { at: number; readings: number } | undefined;

  constructor(opts: ServiceNotifierOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    const every = opts.statusEveryMs ?? 10_000;
    const w = opts.notify.watchdogMs;
    this.#tickMs = w === undefined ? every : Math.max(1, Math.min(every, Math.floor(w / 2)));
  }

  /** READY=1 with the first status, then the periodic ticks */
  started(): void {
    if (!this.#o.notify.active) return;
    this.#o.notify.ready(this.statusLine());
    this.#schedule();
  }

  reloading(): void {
    this.#o.notify.reloading();
  }

  /** READY=1 again, whether the new config was taken or refused */
  reloaded(outcome: string): void {
    this.#o.notify.ready(`${outcome}; ${this.statusLine()}`);
  }

  /** STOPPING=1; no more watchdog pings (systemd stops watching now) */
  stopping(): void {
    this.#cancel();
    this.#o.notify.stopping();
  }

  close(): void {
    this.#cancel();
    this.#o.notify.close();
  }

  /** "2/3 devices connected, 41.5 readings/s, buffer 0 batches (0 B), mqtt connected" */
  statusLine(): string {
    const s = this.#o.source.summary();
    const now = this.#clock.monotonic();
    let rate = 0;
    if (this.#last && now > this.#last.at) rate = Math.max(0, s.readings_in - this.#last.readings) / ((now - this.#last.at) / 1000);
    this.#last = { at: now, readings: s.readings_in };
    return `${s.connected}/${s.devices} devices connected, ${rate.toFixed(1)} readings/s, ` +
      `buffer ${s.buffer.batches} batches (${formatBytes(s.buffer.bytes)}), mqtt ${s.mqtt_connected ? 'connected' : 'disconnected'}`;
  }

  #schedule(): void {
    this.#due = this.#clock.monotonic() + this.#tickMs;
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#tickMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #cancel(): void {
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const late = this.#clock.monotonic() - this.#due;
    const status = this.statusLine();
    const w = this.#o.notify.watchdogMs;
    if (w === undefined) {
      this.#o.notify.status(status);
    } else {
      const health: Health = late > w / 2
        ? { ok: false, reason: `event loop blocked: the watchdog timer fired ${late} ms late` }
        : this.#o.source.healthy(Math.max(w, 1));
      if (health.ok) this.#o.notify.watchdog(status);
      else this.#o.notify.status(`unhealthy (${health.reason}); ${status}`);
      this.#report(health);
    }
    this.#schedule();
  }

  /** logs the changes only: withheld, then healthy again */
  #report(health: Health): void {
    if (!health.ok && this.#withheld === undefined) {
      this.#o.log.warn({ reason: health.reason }, 'watchdog ping withheld: systemd restarts the service unless it recovers');
    } else if (health.ok && this.#withheld !== undefined) {
      this.#o.log.info('healthy again: watchdog pings resumed');
    }
    this.#withheld = health.ok ? undefined : health.reason;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
