// A Modbus device: one unit id on a shared bus, polled on its own schedule.
//
// Failures, and whose they are:
// - the link (serial port unplugged, TCP connection closed, cannot open):
//   run() rejects for every device on it, and the supervisor reopens it with
//   backoff;
// - this slave stops answering: the device alone is marked `disconnected`
//   after MISSES_BEFORE_DISCONNECTED timeouts in a row and then probed with
//   jittered backoff (1 s up to 30 s) until it answers again; run() does not
//   reject, so the shared port stays open for the other devices. A poll round
//   ends at its first timeout: a dead slave costs the bus one timeout per round;
// - exception answers: the block's tags are emitted with quality bad;
// - garbled answers (CRC, length): counted as parse errors.
import { backoffDelay, sleep } from '../../gateway/backoff.js';
import type { Driver, DriverContext } from '../../gateway/types.js';
import type { ModbusRtuDeviceConfig, ModbusTcpDeviceConfig } from '../../config/schema.js';
import { portFile } from '../serial/ports.js';
import { acquireBus, type Bus } from './bus.js';
import {
  checkAnswer, FrameError, MAX_WRITE_REGISTERS, ModbusException, ModbusTimeout, writeCoilRequest, writeRegistersRequest,
} from './pdu.js';
import { planReads, type ReadBlock } from './plan.js';
import { RtuTransport } from './rtu.js';
import { TcpTransport } from './tcp.js';
import { decodeBit, decodeRegisters, encodeBit, encodeRegisters, sizeOf, typeOf } from './values.js';

export type ModbusDeviceConfig = ModbusRtuDeviceConfig | ModbusTcpDeviceConfig;

export interface ModbusDriverDeps {
  /** a serialport binding for RTU (the OS binding by default) */
  binding?: unknown;
}

export const MISSES_BEFORE_DISCONNECTED = 3;

export class ModbusDriver implements Driver {
  private bus: Bus | undefined;

  constructor(
    private readonly config: ModbusDeviceConfig,
    private readonly deps: ModbusDriverDeps = {},
  ) {}

  /** the RTU port, waited for by the supervisor while it is missing; a TCP device has none */
  get devicePath(): string | undefined {
    return this.config.driver === 'modbus-rtu' ? portFile(this.config.port, this.deps.binding) : undefined;
  }

  async run(ctx: DriverContext): Promise<void> {
    if (ctx.signal.aborted) return;
    const c = this.config;
    const blocks = planReads(c.tags);
    ctx.setStatus('connecting');
    const bus = this.acquire();
    try {
      if (!(await opened(bus, ctx.signal))) return;
      this.bus = bus;
      await new Poller(c, ctx, bus, blocks).run();
    } finally {
      if (this.bus === bus) this.bus = undefined;
      await bus.leave();
    }
  }

  async write(key: string, value: number | boolean | string): Promise<void> {
    const c = this.config;
    const tag = c.tags[key];
    if (tag === undefined) throw new Error(`unknown tag ${key}`);
    let pdu: Buffer;
    if (tag.area === 'coil') pdu = writeCoilRequest(tag.address, encodeBit(value));
    else if (tag.area === 'holding') {
      const type = typeOf(tag);
      if (type === 'bool') throw new Error('a holding register tag cannot be of type bool');
      if (sizeOf(tag) > MAX_WRITE_REGISTERS) throw new Error(`at most ${MAX_WRITE_REGISTERS} registers can be written at once`);
      pdu = writeRegistersRequest(tag.address, encodeRegisters(type, tag, value));
    } else throw new Error(`area ${tag.area} is read-only`);
    const bus = this.bus;
    if (!bus) throw new Error(`device ${c.id} is not connected`);
    checkAnswer(pdu, await bus.request(c.unit_id, pdu, c.timeout));
  }

  private acquire(): Bus {
    const c = this.config;
    if (c.driver === 'modbus-tcp') {
      const endpoint = { host: c.host, port: c.port, connectTimeoutMs: Math.max(c.timeout, 1000) };
      return acquireBus(`${c.host}:${c.port}`, 'tcp', () => new TcpTransport(endpoint));
    }
    const settings = `${c.baud_rate} baud ${c.data_bits}${c.parity[0]?.toUpperCase()}${c.stop_bits}`;
    const line = { path: c.port, baudRate: c.baud_rate, dataBits: c.data_bits, parity: c.parity, stopBits: c.stop_bits };
    return acquireBus(c.port, settings, () => new RtuTransport(line, this.deps.binding));
  }
}

type Outcome = 'answered' | 'timeout';

/** One run of a device on an open bus: the poll schedule, liveness, and what it emits. */
class Poller {
  /** aborted when the device stops or the bus is lost */
  private readonly stop = new AbortController();
  private lost: Error | undefined;
  /** per block: the exception code it got last time, for logging changes only */
  private readonly exceptions = new Map<ReadBlock, number>();

  constructor(
    private readonly config: ModbusDeviceConfig,
    private readonly ctx: DriverContext,
    private readonly bus: Bus,
    private readonly blocks: ReadBlock[],
  ) {}

  async run(): Promise<void> {
    const { ctx, stop } = this;
    const onAbort = (): void => stop.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const unsubscribe = this.bus.onLost((err) => {
      this.lost = err;
      stop.abort();
    });
    try {
      await this.loop();
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
    if (this.lost && !ctx.signal.aborted) throw this.lost;
  }

  private async loop(): Promise<void> {
    const { ctx, config, stop } = this;
    const { clock } = ctx;
    if (this.blocks.length === 0) {
      ctx.setStatus('connected');
      await sleep(clock, 2 ** 31 - 1, stop.signal);
      return;
    }
    let state: 'connecting' | 'connected' | 'disconnected' = 'connecting';
    let misses = 0;
    let attempt = 0;
    let nextAt = clock.monotonic();
    while (!stop.signal.aborted) {
      const outcome = await this.round();
      if (stop.signal.aborted) return;
      if (outcome === 'answered') {
        misses = 0;
        attempt = 0;
        if (state !== 'connected') ctx.setStatus((state = 'connected'));
      } else {
        misses++;
        if (state !== 'disconnected' && misses >= MISSES_BEFORE_DISCONNECTED) {
          state = 'disconnected';
          ctx.setStatus('disconnected', `unit ${config.unit_id} does not answer (${misses} requests in a row timed out after ${config.timeout} ms)`);
          // the supervisor does not see this one (run() goes on): counted here, once an episode
          ctx.reconnecting?.();
        }
        ctx.timeout();
      }
      const now = clock.monotonic();
      if (state === 'disconnected') {
        // probed with backoff; on its answer the grid starts again from then
        const delay = backoffDelay(attempt++);
        nextAt = now + delay;
      } else {
        // on the grid of poll_interval: a slow round delays the next, missed slots are skipped
        nextAt += config.poll_interval;
        if (nextAt < now) nextAt = now;
      }
      // An RTU answer names no request: one that comes after its timeout could pass for the
      // answer to this slave's next request. The slave is given one more timeout to be quiet
      // first; the bus serves the other devices meanwhile (their answers carry other unit ids).
      if (outcome === 'timeout' && config.driver === 'modbus-rtu') nextAt = Math.max(nextAt, now + config.timeout);
      // a round that overran its slot starts the next at once, without a timer's millisecond
      if (nextAt > now) await sleep(clock, nextAt - now, stop.signal);
    }
  }

  /** reads every block once; stops at the first timeout */
  private async round(): Promise<Outcome> {
    const { ctx, config, bus } = this;
    for (const block of this.blocks) {
      let data: Buffer;
      try {
        data = checkAnswer(block.request, await bus.request(config.unit_id, block.request, config.timeout));
      } catch (err) {
        if (this.stop.signal.aborted) return 'answered';
        if (err instanceof ModbusTimeout) return 'timeout';
        if (err instanceof FrameError) {
          ctx.parseError(err.message, err.sample?.toString('hex'));
          continue;
        }
        if (err instanceof ModbusException) {
          this.refused(block, err);
          continue;
        }
        throw err;
      }
      if (this.exceptions.delete(block)) ctx.log.info({ area: block.area, address: block.start }, 'modbus block answers again');
      this.emit(block, data);
    }
    return 'answered';
  }

  private emit(block: ReadBlock, data: Buffer): void {
    const ctx = this.ctx;
    const ts = ctx.clock.now();
    for (const t of block.tags) {
      if (t.type === 'bool') ctx.emit(t.key, decodeBit(data, t.offset), ts, 'good');
      else {
        const v = decodeRegisters(t.type, t.tag, data, t.offset);
        ctx.emit(t.key, v, ts, v === null ? 'bad' : 'good');
      }
    }
  }

  /** an exception answer: the tags of the block are bad for this round */
  private refused(block: ReadBlock, err: ModbusException): void {
    const ctx = this.ctx;
    if (this.exceptions.get(block) !== err.code) {
      this.exceptions.set(block, err.code);
      ctx.log.warn({ area: block.area, address: block.start, count: block.count, err: err.message }, 'modbus exception answer');
    }
    const ts = ctx.clock.now();
    for (const t of block.tags) ctx.emit(t.key, null, ts, 'bad');
  }
}

/** true once the bus is open, false when the device is stopped first; rejects when the bus cannot open */
function opened(bus: Bus, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    bus.ready.then(
      () => resolve(!signal.aborted),
      (err: unknown) => (signal.aborted ? resolve(false) : reject(err)),
    ).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
