// Is the gateway worth keeping alive? What the systemd watchdog asks before
// each WATCHDOG=1. A broker outage is not a fault (the buffer holds, restarting
// would not help). On a live connection, batches waiting with no progress for
// a long time are: batches in flight with no PUBACK (the publisher is
// wedged), or batches queued that nothing hands out (the pump or the buffer
// is stalled, e.g. waiting for a disk read that never ends). A restart is the
// cure for both: the buffer is read again from what is really on disk.

export interface Health {
  ok: boolean;
  reason?: string;
}

/** what the check reads from the publisher */
export interface PublisherProgressStats {
  connected: boolean;
  inflight: number;
  /** waiting in the buffer, not in flight */
  queued_batches: number;
  published_batches: number;
  /** handed out by the buffer to be sent, since start (resends included) */
  handed_out_batches: number;
  /** queued batches wait on the replay's delay or pace (buffer.replay_rate): by design, not a stall */
  replay_waiting?: boolean;
}

export class PublisherProgress {
  #progress = -1;
  #since = 0;

  /** ok unless batches waited, connected, with nothing handed out or acknowledged for stallMs */
  check(s: PublisherProgressStats, now: number, stallMs: number): Health {
    const progress = s.published_batches + s.handed_out_batches;
    const waiting = s.inflight > 0 || s.queued_batches > 0;
    if (!s.connected || !waiting || s.replay_waiting || progress !== this.#progress) {
      this.#progress = progress;
      this.#since = now;
      return { ok: true };
    }
    const waited = now - this.#since;
    if (waited < stallMs) return { ok: true };
    const secs = Math.round(waited / 1000);
    if (s.inflight > 0) return { ok: false, reason: `publisher wedged: ${s.inflight} batches in flight, no acknowledgement for ${secs} s` };
    return { ok: false, reason: `buffer stalled: ${s.queued_batches} batches queued on a live connection, none handed out or acknowledged for ${secs} s` };
  }

  /** a new publisher starts with a clean slate */
  reset(): void {
    this.#progress = -1;
  }
}
