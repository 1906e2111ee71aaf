// Is the gateway worth keeping alive? What the systemd watchdog asks before
// each WATCHDOG=1. A broker outage is not a fault (the buffer holds, restarting
// would not help); a publisher that has batches in flight on a live connection
// and sees no PUBACK for a long time is wedged, and a restart is the cure.

export interface Health {
  ok: boolean;
  reason?: string;
}

/** what the check reads from the publisher */
export interface PublisherProgressStats {
  connected: boolean;
  inflight: number;
  published_batches: number;
}

export class PublisherProgress {
  #published = -1;
  #since = 0;

  /** ok unless batches stayed in flight, connected, with no acknowledgement for stallMs */
  check(s: PublisherProgressStats, now: number, stallMs: number): Health {
    if (!s.connected || s.inflight === 0 || s.published_batches !== this.#published) {
      this.#published = s.published_batches;
      this.#since = now;
      return { ok: true };
    }
    const waited = now - this.#since;
    if (waited < stallMs) return { ok: true };
    return { ok: false, reason: `publisher wedged: ${s.inflight} batches in flight, no acknowledgement for ${Math.round(waited / 1000)} s` };
  }

  /** a new publisher starts with a clean slate */
  reset(): void {
    this.#published = -1;
  }
}
