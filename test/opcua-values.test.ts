// OPC UA values without a server: quality from the StatusCode, the timestamp
// fallbacks, Variants as gateway values, and the conversions of writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { problemSummary } from '../drivers/opcua/monitor.js';
import { DataType, DataValue, StatusCodes, Variant, VariantArrayType } from '../drivers/opcua/ua.js';
import { qualityOf, rawValueOf, timestampOf, toVariant, UnsupportedValue } from '../drivers/opcua/values.js';

test('quality: the severity bits of the StatusCode', () => {
  assert.is(qualityOf(StatusCodes.Good), 'good');
  assert.is(qualityOf(StatusCodes.GoodClamped), 'good');
  assert.is(qualityOf(StatusCodes.UncertainLastUsableValue), 'uncertain');
  assert.is(qualityOf(StatusCodes.UncertainSensorNotAccurate), 'uncertain');
  assert.is(qualityOf(StatusCodes.BadSensorFailure), 'bad');
  assert.is(qualityOf(StatusCodes.BadWaitingForInitialData), 'bad');
});

test('timestamp: source, else server, else none (the gateway then uses its own time)', () => {
  const source = new Date(1_764_250_000_123), server = new Date(1_764_250_000_456);
  assert.is(timestampOf(new DataValue({ sourceTimestamp: source, serverTimestamp: server })), source.getTime());
  assert.is(timestampOf(new DataValue({ serverTimestamp: server })), server.getTime());
  assert.is(timestampOf(new DataValue({})), undefined);
  // OPC UA's "no time" (1601) is not a time
  assert.is(timestampOf(new DataValue({ sourceTimestamp: new Date(Date.UTC(1601, 0, 1)), serverTimestamp: server })), server.getTime());
});

test('values: scalars, 64-bit integers, DateTime as ms, arrays; other types are unsupported', () => {
  assert.is(rawValueOf(new Variant({ dataType: DataType.Double, value: 21.5 })), 21.5);
  assert.is(rawValueOf(new Variant({ dataType: DataType.Boolean, value: true })), true);
  assert.is(rawValueOf(new Variant({ dataType: DataType.String, value: 'run' })), 'run');
  assert.is(rawValueOf(new Variant({ dataType: DataType.Int64, value: -5 })), -5);
  assert.is(rawValueOf(new Variant({ dataType: DataType.UInt64, value: 2 ** 40 + 3 })), 2 ** 40 + 3);
  assert.is(rawValueOf(new Variant({ dataType: DataType.DateTime, value: new Date(1_764_250_000_000) })), 1_764_250_000_000);
  assert.is(rawValueOf(new Variant({ dataType: DataType.Null })), null);
  assert.equal(rawValueOf(new Variant({ dataType: DataType.Float, arrayType: VariantArrayType.Array, value: new Float32Array([1, 2.5]) })), [1, 2.5]);
  assert.equal(rawValueOf(new Variant({ dataType: DataType.String, arrayType: VariantArrayType.Array, value: ['a', 'b'] })), ['a', 'b']);
  const matrix = new Variant({ dataType: DataType.Double, arrayType: VariantArrayType.Matrix, value: [1, 2, 3, 4], dimensions: [2, 2] });
  assert.instance(rawValueOf(matrix), UnsupportedValue);
  assert.instance(rawValueOf(new Variant({ dataType: DataType.ByteString, value: Buffer.from('x') })), UnsupportedValue);
  assert.instance(rawValueOf(new Variant({ dataType: DataType.LocalizedText, value: { text: 'x' } })), UnsupportedValue);
});

test('writes: integers whole and in range, floats finite, booleans, strings, dates, each only from its JSON kind; arrays and other types refused', () => {
  const ok = (dataType: DataType, v: number | boolean | string) => {
    const r = toVariant({ dataType, array: false }, v);
    if (!r.ok) assert.unreachable(r.error);
    return (r as { variant: Variant }).variant;
  };
  const refused = (dataType: DataType, v: number | boolean | string, pattern: RegExp, array = false) => {
    const r = toVariant({ dataType, array }, v);
    assert.not.ok(r.ok, `${DataType[dataType]} accepted ${String(v)}`);
    assert.match((r as { error: string }).error, pattern);
  };
  assert.is(ok(DataType.Int16, -32768).value, -32768);
  assert.is(ok(DataType.Byte, 255).dataType, DataType.Byte);
  assert.is(ok(DataType.Double, 1.25).value, 1.25);
  assert.is(ok(DataType.Boolean, true).value, true);
  assert.is(ok(DataType.String, 'x').value, 'x');
  assert.is((ok(DataType.DateTime, '2026-11-27T12:00:00Z').value as Date).getTime(), Date.UTC(2026, 10, 27, 12));
  refused(DataType.Int16, 32768, /Int16: 32768 is out of range -32768\.\.32767/);
  refused(DataType.UInt32, -1, /out of range 0\.\.4294967295/);
  refused(DataType.SByte, 0.5, /expected an integer/);
  refused(DataType.Float, 1e39, /out of the Float range/);
  refused(DataType.Double, 'x', /expected a number/);
  refused(DataType.Boolean, 2, /expected true or false/);
  refused(DataType.Boolean, 1, /Boolean: expected true or false, got 1/);
  refused(DataType.Int32, true, /Int32: expected an integer, got true/);
  refused(DataType.String, 5, /expected a string/);
  refused(DataType.DateTime, 'not a date', /ISO date/);
  refused(DataType.Double, 1, /array nodes cannot be written/, true);
  refused(DataType.ByteString, 'x', /not supported/);
});

test('status text: the tags that cannot be read, at most ten named', () => {
  assert.is(problemSummary([], 5), undefined);
  assert.is(problemSummary([['a', 'BadNodeIdUnknown']], 5), '1 of 5 tags not read: a (BadNodeIdUnknown)');
  const many = Array.from({ length: 12 }, (_, i): [string, string] => [`t${i}`, 'BadNotReadable']);
  assert.match(problemSummary(many, 20)!, /^12 of 20 tags not read: t0 \(BadNotReadable\), .*t9 \(BadNotReadable\), and 2 more$/);
});

test.run();
