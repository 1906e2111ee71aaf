// The Modbus pieces without a peer: CRC, PDUs, every type and word order in
// both directions, and the read planner's coalescing.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../config/load.js';
import { configSchema, modbusTag } from '../config/schema.js';
import {
  answerLength, checkAnswer, crc16, FrameError, ModbusException, readRequest, writeCoilRequest, writeRegistersRequest,
} from '../drivers/modbus/pdu.js';
import { planReads } from '../drivers/modbus/plan.js';
import { decodeBit, decodeRegisters, encodeBit, encodeRegisters, type RegisterType } from '../drivers/modbus/values.js';
import { PermanentError } from '../gateway/types.js';
import { registers } from './peers/modbus.js';

const tag = (o: Record<string, unknown>) => modbusTag.parse({ area: 'holding', address: 0, ...o });
const regs = (...words: number[]) => {
  const b = Buffer.alloc(words.length * 2);
  words.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
};

test('CRC-16/MODBUS of the textbook request 01 03 00 00 00 0A is C5 CD', () => {
  const frame = Buffer.from('01030000000a', 'hex');
  const crc = crc16(frame);
  assert.is(crc & 0xff, 0xc5);
  assert.is(crc >> 8, 0xcd);
});

test('requests and the lengths of their answers', () => {
  assert.equal([...readRequest(3, 0x1234, 10)], [3, 0x12, 0x34, 0, 10]);
  assert.is(answerLength(readRequest(3, 0, 10)), 22);
  assert.is(answerLength(readRequest(1, 0, 9)), 4);
  assert.is(answerLength(readRequest(2, 0, 2000)), 252);
  assert.equal([...writeCoilRequest(7, true)], [5, 0, 7, 0xff, 0]);
  assert.equal([...writeRegistersRequest(1, regs(0xbeef))], [6, 0, 1, 0xbe, 0xef]);
  assert.equal([...writeRegistersRequest(1, regs(1, 2))], [16, 0, 1, 0, 2, 4, 0, 1, 0, 2]);
});

test('answers: data, exceptions, and frames that cannot be trusted', () => {
  const req = readRequest(3, 0, 2);
  assert.equal([...checkAnswer(req, Buffer.from([3, 4, 0, 1, 0, 2]))], [0, 1, 0, 2]);
  const ex = (() => { try { checkAnswer(req, Buffer.from([0x83, 2])); } catch (e) { return e; } })();
  assert.instance(ex, ModbusException);
  assert.is((ex as ModbusException).code, 2);
  assert.match((ex as Error).message, 'illegal data address');
  assert.throws(() => checkAnswer(req, Buffer.from([3, 4, 0, 1])), (e: unknown) => e instanceof FrameError);
  assert.throws(() => checkAnswer(req, Buffer.from([4, 4, 0, 1, 0, 2])), (e: unknown) => e instanceof FrameError);
  assert.throws(() => checkAnswer(req, Buffer.from([3, 2, 0, 1, 0, 2])), (e: unknown) => e instanceof FrameError);
  const w = writeRegistersRequest(5, regs(9));
  assert.is(checkAnswer(w, Buffer.from(w)).length, 0);
  assert.throws(() => checkAnswer(w, Buffer.from([6, 0, 6, 0, 9])), /echo/);
});

// [type, word_order, byte_swap, value, registers as the device holds them]
const CASES: Array<[RegisterType, 'big' | 'little', boolean, number | string, number[]]> = [
  ['uint16', 'big', false, 0x1234, [0x1234]],
  ['uint16', 'big', true, 0x1234, [0x3412]],
  ['int16', 'big', false, -2, [0xfffe]],
  ['int16', 'little', true, -2, [0xfeff]],
  ['uint32', 'big', false, 0x12345678, [0x1234, 0x5678]],
  ['uint32', 'little', false, 0x12345678, [0x5678, 0x1234]],
  ['uint32', 'big', true, 0x12345678, [0x3412, 0x7856]],
  ['uint32', 'little', true, 0x12345678, [0x7856, 0x3412]],
  ['int32', 'big', false, -2, [0xffff, 0xfffe]],
  ['int32', 'little', false, -70000, [0xee90, 0xfffe]],
  ['float32', 'big', false, 12.5, [0x4148, 0x0000]],
  ['float32', 'little', false, 12.5, [0x0000, 0x4148]],
  ['float32', 'big', true, 12.5, [0x4841, 0x0000]],
  ['float32', 'little', true, -0.25, [0x0000, 0x80be]],
  ['float64', 'big', false, 1.5, [0x3ff8, 0, 0, 0]],
  ['float64', 'little', false, 1.5, [0, 0, 0, 0x3ff8]],
  ['float64', 'big', true, -2.75, [0x06c0, 0, 0, 0]],
  ['float64', 'little', true, 1e300, [0x9c75, 0x0088, 0x3ce4, 0x377e]],
  ['string', 'big', false, 'AB CD', [0x4142, 0x2043, 0x4400]],
  ['string', 'big', true, 'AB CD', [0x4241, 0x4320, 0x0044]],
  ['string', 'little', false, 'AB CD', [0x4142, 0x2043, 0x4400]],
];

test('every type, word order and byte swap: decoded from and encoded to the same registers', () => {
  for (const [type, word_order, byte_swap, value, words] of CASES) {
    const t = tag({ type, word_order, byte_swap, ...(type === 'string' ? { length: words.length } : {}) });
    const what = `${type} ${word_order}${byte_swap ? ' swapped' : ''}`;
    // at an odd offset within a longer answer, as in a coalesced read
    const data = Buffer.concat([regs(0xaaaa), regs(...words), regs(0x5555)]);
    assert.equal(decodeRegisters(type, t, data, 2), value, `decode ${what}`);
    assert.equal(registers(encodeRegisters(type, t, value)), words, `encode ${what}`);
  }
});

test('strings end at the first NUL; trailing spaces are dropped; too long is an error', () => {
  const t = tag({ type: 'string', length: 3 });
  assert.is(decodeRegisters('string', t, regs(0x4100, 0x4242, 0x4343), 0), 'A');
  assert.is(decodeRegisters('string', t, regs(0x4120, 0x2020, 0x2020), 0), 'A');
  assert.equal(registers(encodeRegisters('string', t, 'Hi')), [0x4869, 0, 0]);
  assert.throws(() => encodeRegisters('string', t, 'seven!!'), /does not fit 3 registers/);
  assert.throws(() => encodeRegisters('string', t, 'π'), /latin1/);
});

test('NaN and infinite floats decode as null (a bad reading)', () => {
  const t = tag({ type: 'float32' });
  assert.is(decodeRegisters('float32', t, regs(0x7fc0, 0), 0), null);
  assert.is(decodeRegisters('float32', t, regs(0x7f80, 0), 0), null);
  assert.is(decodeRegisters('float64', tag({ type: 'float64' }), regs(0xfff0, 0, 0, 0), 0), null);
});

test('writes outside a type\'s range, fractions to integers and non-numbers are refused with the reason', () => {
  assert.throws(() => encodeRegisters('uint16', tag({}), 65536), /outside the uint16 range 0..65535/);
  assert.throws(() => encodeRegisters('int16', tag({ type: 'int16' }), -32769), /int16 range/);
  assert.throws(() => encodeRegisters('int32', tag({ type: 'int32' }), 1.5), /expected an integer/);
  assert.throws(() => encodeRegisters('uint32', tag({ type: 'uint32' }), -1), /uint32 range/);
  assert.throws(() => encodeRegisters('float32', tag({ type: 'float32' }), 1e39), /float32 range/);
  assert.throws(() => encodeRegisters('float32', tag({ type: 'float32' }), 'x'), /expected a number/);
  assert.equal(registers(encodeRegisters('uint16', tag({}), true)), [1]);
  assert.is(encodeBit(true), true);
  assert.is(encodeBit(0), false);
  assert.throws(() => encodeBit(2), /true or false/);
});

test('bits are LSB first within each byte', () => {
  const data = Buffer.from([0b0000_0101, 0b1000_0000]);
  assert.equal([0, 1, 2, 15].map((i) => decodeBit(data, i)), [true, false, true, true]);
});

const holding = (n: number, type = 'uint16', from = 0, size = 1) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, tag({ address: from + i * size, type })]));

test('40 contiguous registers are one read; 70 float32 in a row are two reads of whole values', () => {
  const one = planReads(holding(40));
  assert.is(one.length, 1);
  assert.equal([one[0]!.start, one[0]!.count, one[0]!.tags.length], [0, 40, 40]);
  assert.equal([...one[0]!.request], [3, 0, 0, 0, 40]);
  const two = planReads(holding(70, 'float32', 100, 2));
  assert.equal(two.map((b) => [b.start, b.count]), [[100, 124], [224, 16]]);
  assert.equal(two[1]!.tags[0]!.offset, 0);
  assert.equal(two[0]!.tags[61]!.offset, 244);
});

test('gaps split reads; overlapping tags share one; areas never mix; bits go up to 2000 a read', () => {
  const gap = planReads({ a: tag({ address: 0 }), b: tag({ address: 2 }) });
  assert.equal(gap.map((b) => [b.start, b.count]), [[0, 1], [2, 1]]);
  const overlap = planReads({ f: tag({ address: 10, type: 'float32' }), lo: tag({ address: 11 }) });
  assert.equal(overlap.map((b) => [b.start, b.count, b.tags.map((t) => [t.key, t.offset])]), [[10, 2, [['f', 0], ['lo', 2]]]]);
  const areas = planReads({ h: tag({ address: 0 }), i: tag({ area: 'input', address: 1 }), c: tag({ area: 'coil', address: 0 }) });
  assert.equal(areas.map((b) => [b.area, b.request[0]]), [['coil', 1], ['holding', 3], ['input', 4]]);
  const coils = Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`c${i}`, tag({ area: 'coil', address: i })]));
  assert.equal(planReads(coils).map((b) => [b.start, b.count]), [[0, 2000], [2000, 500]]);
  assert.equal(planReads(coils)[1]!.tags[3]!.offset, 3);
});

test('a tag that runs past address 65535 is a permanent error', () => {
  assert.throws(() => planReads({ x: tag({ address: 65535, type: 'float32' }) }), (e: unknown) => e instanceof PermanentError && /past 65535/.test((e as Error).message));
});

test('config/examples/modbus.yaml is valid: two meters on one bus and an inverter over TCP', () => {
  const r = loadConfig(fileURLToPath(new URL('../../config/examples/modbus.yaml', import.meta.url)), {});
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  if (!r.ok) return;
  assert.equal(r.config.devices.map((d) => d.driver), ['modbus-rtu', 'modbus-rtu', 'modbus-tcp']);
  assert.equal(r.warnings, []);
});

test('devices on one serial port with different line settings are a config error, with its path', () => {
  const device = (id: string, extra: object) => ({ id, driver: 'modbus-rtu', port: '/dev/ttyUSB1', baud_rate: 19200, parity: 'even', ...extra });
  const r = configSchema.safeParse({ devices: [device('a', {}), device('b', { unit_id: 2 }), device('c', { unit_id: 3, parity: 'none' })] });
  assert.not.ok(r.success);
  const issues = r.error?.issues ?? [];
  assert.is(issues.length, 1);
  assert.equal(issues[0]?.path, ['devices', 2, 'port']);
  assert.match(issues[0]?.message ?? '', 'devices[0] uses 19200 baud, 8 data bits, parity even');
});

test('RTU unit_id 0 (broadcast: nothing answers) is a config error', () => {
  const r = configSchema.safeParse({ devices: [{ id: 'a', driver: 'modbus-rtu', port: '/dev/ttyUSB1', unit_id: 0 }] });
  assert.equal(r.error?.issues.map((i) => i.path), [['devices', 0, 'unit_id']]);
});

test.run();
