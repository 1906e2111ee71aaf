// A broker that is alive but never acknowledges: it accepts the connection
// (CONNACK), grants subscriptions, answers PINGREQ, and swallows every
// PUBLISH without a PUBACK. The wedged pipeline that a watchdog must catch;
// no real broker can be made to behave like this on purpose. MQTT 3.1.1 only.
import { createServer, type Socket } from 'node:net';

export interface SilentBroker {
  url: string;
  /** PUBLISH packets received (none acknowledged) */
  publishes: number;
  close(): Promise<void>;
}

export async function startSilentBroker(): Promise<SilentBroker> {
  const sockets = new Set<Socket>();
  const state = { publishes: 0 };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const packet = nextPacket(buf);
        if (!packet) break;
        buf = buf.subarray(packet.end);
        answer(socket, packet.type, packet.body, state);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    get publishes() { return state.publishes; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** one complete packet at the start of buf: its type (high nibble) and body */
function nextPacket(buf: Buffer): { type: number; body: Buffer; end: number } | undefined {
  let length = 0;
  for (let i = 1, mul = 1; i <= 4; i++, mul *= 128) {
    const byte = buf[i];
    if (byte === undefined) return undefined;
    length += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) {
      const start = i + 1;
      if (buf.length < start + length) return undefined;
      return { type: buf[0]! >> 4, body: buf.subarray(start, start + length), end: start + length };
    }
  }
  throw new Error('malformed remaining length');
}

function answer(socket: Socket, type: number, body: Buffer, state: { publishes: number }): void {
  switch (type) {
    case 1: // CONNECT → CONNACK accepted
      socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
      break;
    case 3: // PUBLISH → nothing, ever
      state.publishes++;
      break;
    case 8: { // SUBSCRIBE → SUBACK granting QoS 1 to each filter
      let filters = 0;
      for (let o = 2; o + 2 <= body.length; filters++) o += 2 + body.readUInt16BE(o) + 1;
      socket.write(Buffer.from([0x90, 2 + filters, body[0]!, body[1]!, ...Array<number>(filters).fill(1)]));
      break;
    }
    case 12: // PINGREQ → PINGRESP
      socket.write(Buffer.from([0xd0, 0x00]));
      break;
    case 14: // DISCONNECT
      socket.end();
      break;
  }
}
