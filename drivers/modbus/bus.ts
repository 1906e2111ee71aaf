// One Modbus link (a serial port, or a TCP connection) shared by every device
// configured on it. The devices of a bus are its clients: each has its own
// unit id, poll schedule and timeout, and the bus serializes their requests
// (Modbus is one exchange at a time on a line, and many TCP gateways accept
// only one connection). A bus is opened by the first client's run() and
// closed when the last client leaves; when the link is lost every client is
// told and the bus is forgotten, so the next run() opens a fresh one.

export interface Transport {
  /** rejects with a readable error when the link cannot be opened */
  open(): Promise<void>;
  /**
   * One request PDU to a unit and its answer PDU (function code onwards), or a
   * ModbusTimeout / FrameError rejection. Never called concurrently.
   */
  exchange(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer>;
  close(): Promise<void>;
  /** set by the bus before open(): called at most once, when an open link is lost */
  onLost: ((err: Error) => void) | undefined;
}

/** The one request a transport has on the line: settled once, by its answer, an error, or its timeout. */
export interface InFlight {
  readonly answer: Promise<Buffer>;
  readonly settled: boolean;
  settle(err: Error | undefined, pdu?: Buffer): void;
}

export function inFlight(timeoutMs: number, timeoutError: () => Error): InFlight {
  let finish: ((err: Error | undefined, pdu?: Buffer) => void) | undefined;
  const answer = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => call.settle(timeoutError()), timeoutMs);
    finish = (err, pdu) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(pdu as Buffer);
    };
  });
  const call: InFlight = {
    answer,
    get settled() {
      return finish === undefined;
    },
    settle(err, pdu) {
      const f = finish;
      finish = undefined;
      f?.(err, pdu);
    },
  };
  return call;
}

export class Bus {
  /** exchanges started on this bus (benchmarks and tests read it) */
  requests = 0;
  private users = 0;
  private dead: Error | undefined;
  private turn: Promise<unknown> = Promise.resolve();
  private readonly lostListeners = new Set<(err: Error) => void>();
  /** settles when the link is open, or could not be opened */
  ready: Promise<void> = Promise.resolve();

  constructor(readonly key: string, readonly settings: string, private readonly transport: Transport) {}

  open(): void {
    this.transport.onLost = (err) => this.lose(err);
    this.ready = this.transport.open().catch((err: unknown) => {
      this.dead = err instanceof Error ? err : new Error(String(err));
      forget(this);
      throw this.dead;
    });
  }

  get clients(): number {
    return this.users;
  }

  /** queued behind every request already asked for; rejects at once when the bus is lost */
  request(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    const go = (): Promise<Buffer> => {
      if (this.dead) return Promise.reject(this.dead);
      this.requests++;
      return this.transport.exchange(unit, pdu, timeoutMs);
    };
    const answer = this.turn.then(go, go);
    this.turn = answer.catch(() => undefined);
    return answer;
  }

  /** fn is called once with the reason when the link is lost (at once, if it is already) */
  onLost(fn: (err: Error) => void): () => void {
    const dead = this.dead;
    if (dead) {
      queueMicrotask(() => fn(dead));
      return () => undefined;
    }
    this.lostListeners.add(fn);
    return () => this.lostListeners.delete(fn);
  }

  join(): void {
    this.users++;
  }

  async leave(): Promise<void> {
    if (--this.users > 0) return;
    forget(this);
    // an open still under way is waited for, so the port is never left open behind a stopped device
    await this.ready.catch(() => undefined);
    if (!this.dead) {
      this.dead = new Error(`${this.key} was closed`);
      await this.transport.close();
    }
  }

  private lose(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    forget(this);
    // closed before the clients hear of it: their retries must find the port free
    void this.transport.close().then(() => {
      for (const fn of this.lostListeners) fn(err);
    });
  }
}

const buses = new Map<string, Bus>();

function forget(bus: Bus): void {
  if (buses.get(bus.key) === bus) buses.delete(bus.key);
}

/**
 * The bus for a key, opened by the first client. `settings` describe the line
 * (baud rate, parity, ...): a client asking for other settings on the same
 * port is refused, since one port cannot run two ways at once.
 */
export function acquireBus(key: string, settings: string, makeTransport: () => Transport): Bus {
  let bus = buses.get(key);
  if (bus && bus.settings !== settings) {
    throw new Error(`${key} is already open with ${bus.settings}, not ${settings}: devices on one port need the same line settings`);
  }
  if (!bus) {
    bus = new Bus(key, settings, makeTransport());
    buses.set(key, bus);
    bus.open();
  }
  bus.join();
  return bus;
}

/** the open buses, for tests */
export function openBuses(): ReadonlyMap<string, Bus> {
  return buses;
}
