// Modbus PDUs (function code + data), the same for RTU and TCP: requests
// built, answers checked. The transports add the unit id and a CRC (RTU) or
// an MBAP header (TCP) around them.

export const FC_READ_COILS = 1;
export const FC_READ_DISCRETE = 2;
export const FC_READ_HOLDING = 3;
export const FC_READ_INPUT = 4;
export const FC_WRITE_COIL = 5;
export const FC_WRITE_REGISTER = 6;
export const FC_WRITE_REGISTERS = 16;

/** the most a single read may ask for (Modbus application protocol, 6.1–6.4) */
export const MAX_READ_REGISTERS = 125;
export const MAX_READ_BITS = 2000;
export const MAX_WRITE_REGISTERS = 123;

const EXCEPTIONS: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  8: 'memory parity error',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

/** The slave answered with an exception response: it is alive, the request was refused. */
export class ModbusException extends Error {
  constructor(readonly code: number, readonly functionCode: number) {
    super(`exception ${code} (${EXCEPTIONS[code] ?? 'unknown'}) to function ${functionCode}`);
  }
}

/** No answer within the timeout. */
export class ModbusTimeout extends Error {}

/** An answer arrived but cannot be trusted: wrong CRC, wrong length, wrong function. */
export class FrameError extends Error {
  constructor(message: string, readonly sample?: Buffer) {
    super(message);
  }
}

export function readRequest(fc: number, address: number, count: number): Buffer {
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = fc;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(count, 3);
  return pdu;
}

export function writeCoilRequest(address: number, on: boolean): Buffer {
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = FC_WRITE_COIL;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(on ? 0xff00 : 0x0000, 3);
  return pdu;
}

/** FC 6 for one register, FC 16 for more */
export function writeRegistersRequest(address: number, registers: Buffer): Buffer {
  const count = registers.length / 2;
  if (count === 1) {
    const pdu = Buffer.allocUnsafe(5);
    pdu[0] = FC_WRITE_REGISTER;
    pdu.writeUInt16BE(address, 1);
    registers.copy(pdu, 3);
    return pdu;
  }
  const pdu = Buffer.allocUnsafe(6 + registers.length);
  pdu[0] = FC_WRITE_REGISTERS;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(count, 3);
  pdu[5] = registers.length;
  registers.copy(pdu, 6);
  return pdu;
}

/** The length of the normal answer's PDU to this request (RTU frames carry no length field). */
export function answerLength(request: Buffer): number {
  const fc = request[0];
  switch (fc) {
    case FC_READ_COILS:
    case FC_READ_DISCRETE:
      return 2 + Math.ceil(request.readUInt16BE(3) / 8);
    case FC_READ_HOLDING:
    case FC_READ_INPUT:
      return 2 + 2 * request.readUInt16BE(3);
    case FC_WRITE_COIL:
    case FC_WRITE_REGISTER:
    case FC_WRITE_REGISTERS:
      return 5;
    default:
      throw new Error(`unsupported function code ${fc}`);
  }
}

/**
 * Checks an answer PDU against its request. Returns the data of a read (a
 * view into answer: bits LSB first, or big-endian registers), or an empty
 * view for a write. Throws ModbusException or FrameError.
 */
export function checkAnswer(request: Buffer, answer: Buffer): Buffer {
  const fc = request[0] as number;
  const got = answer[0];
  if (got === (fc | 0x80) && answer.length >= 2) throw new ModbusException(answer[1] as number, fc);
  if (got !== fc) throw new FrameError(`answer has function ${got}, expected ${fc}`, answer);
  const expected = answerLength(request);
  if (answer.length !== expected) throw new FrameError(`answer of ${answer.length} bytes, expected ${expected}`, answer);
  if (fc <= FC_READ_INPUT) {
    if (answer[1] !== expected - 2) throw new FrameError(`answer says ${answer[1]} data bytes, expected ${expected - 2}`, answer);
    return answer.subarray(2);
  }
  // a write is echoed: address (and value or count) must match
  if (answer.compare(request, 1, 5, 1, 5) !== 0) throw new FrameError('write answer does not echo the request', answer);
  return answer.subarray(answer.length);
}

const CRC_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
  CRC_TABLE[i] = c;
}

/** CRC-16/MODBUS of buf[start, end); sent low byte first */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ (CRC_TABLE[(crc ^ (buf[i] as number)) & 0xff] as number);
  return crc;
}
