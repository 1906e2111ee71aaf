// Modbus TCP framing: an MBAP header (transaction id, protocol 0, length,
// unit) before the PDU. The transaction id pairs an answer with its request,
// so a late answer to a request that already timed out is recognised and
// dropped instead of being taken for the answer to the next one.
import { Socket } from 'node:net';
import { inFlight, type InFlight, type Transport } from './bus.js';
import { FrameError, ModbusTimeout } from './pdu.js';

export interface TcpEndpoint {
  host: string;
  port: number;
  connectTimeoutMs: number;
}

interface Pending {
  tid: number;
  call: InFlight;
}

/** MBAP length field: unit + PDU, at most 1 + 253 */
const MAX_LENGTH = 254;

export class TcpTransport implements Transport {
  onLost: ((err: Error) => void) | undefined;
  private socket: Socket | undefined;
  private rx: Buffer = Buffer.alloc(0);
  private tid = 0;
  private pending: Pending | undefined;
  private closing = false;

  constructor(private readonly endpoint: TcpEndpoint) {}

  private get name(): string {
    return `${this.endpoint.host}:${this.endpoint.port}`;
  }

  open(): Promise<void> {
    const { host, port, connectTimeoutMs } = this.endpoint;
    const socket = new Socket();
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`cannot connect to ${this.name}: ${err.message}`, { cause: err }));
      };
      const timer = setTimeout(() => fail(new Error(`no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      socket.once('error', fail);
      socket.connect({ host, port }, () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 10_000);
        socket.on('data', this.onData);
        socket.on('error', (err) => this.lose(new Error(`${this.name}: ${err.message}`, { cause: err })));
        socket.on('close', () => this.lose(new Error(`${this.name} closed the connection`)));
        this.socket = socket;
        resolve();
      });
    });
  }

  exchange(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    const socket = this.socket;
    if (!socket || this.closing) return Promise.reject(new Error(`${this.name} is not connected`));
    this.tid = (this.tid + 1) & 0xffff;
    const tid = this.tid;
    const frame = Buffer.allocUnsafe(7 + pdu.length);
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(0, 2);
    frame.writeUInt16BE(pdu.length + 1, 4);
    frame[6] = unit;
    pdu.copy(frame, 7);
    const call = inFlight(timeoutMs, () => new ModbusTimeout(`no answer from unit ${unit} at ${this.name} within ${timeoutMs} ms`));
    this.pending = { tid, call };
    socket.write(frame);
    return call.answer;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.pending?.call.settle(new Error(`${this.name} was closed`));
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    this.rx = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    while (this.rx.length >= 7) {
      const length = this.rx.readUInt16BE(4);
      if (this.rx.readUInt16BE(2) !== 0 || length < 2 || length > MAX_LENGTH) {
        // out of step with the stream: nothing after this can be trusted
        this.pending?.call.settle(new FrameError('not a Modbus TCP frame', this.rx.subarray(0, 16)));
        this.lose(new Error(`${this.name} sent something that is not Modbus TCP`));
        this.socket?.destroy();
        return;
      }
      const total = 6 + length;
      if (this.rx.length < total) return;
      const tid = this.rx.readUInt16BE(0);
      // a copy: the PDU outlives the receive buffer
      if (this.pending?.tid === tid) this.pending.call.settle(undefined, Buffer.from(this.rx.subarray(7, total)));
      this.rx = this.rx.subarray(total);
    }
  };

  private lose(err: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.pending?.call.settle(err);
    this.onLost?.(err);
  }
}
