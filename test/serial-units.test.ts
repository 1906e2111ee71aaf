// The serial driver's pieces without a port: the line splitter, the line
// formats, and the port listing.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialDevice, type SerialDeviceConfig } from '../config/schema.js';
import { createParser, Fields } from '../drivers/serial/formats.js';
import { escapeSample, LineSplitter, type LineEncoding } from '../drivers/serial/lines.js';
import { SerialDriver, SLICE_LINES } from '../drivers/serial/driver.js';
import { listPorts, openError } from '../drivers/serial/ports.js';
import { FakeClock, systemClock } from '../gateway/clock.js';
import { newCounters, PermanentError, type Clock, type RawValue, type Reading } from '../gateway/types.js';
import { TagPipeline } from '../gateway/tags.js';
import { SerialPortMock } from 'serialport';
import { recordingContext } from './helpers/socat.js';
import { tempDir, waitFor } from './helpers/peers.js';

function splitter(delimiter = '\n', maxLineLength = 64, encoding: LineEncoding = 'utf8') {
  const lines: string[] = [];
  const errors: Array<{ reason: string; sample: string }> = [];
  const s = new LineSplitter({ delimiter, encoding, maxLineLength }, (l) => lines.push(l), (reason, sample) => errors.push({ reason, sample }));
  const feed = (...chunks: Array<string | Buffer>) => {
    for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  };
  return { s, lines, errors, feed };
}

// ------------------------------------------------------------ lines

test('lines: split across chunks, "\\r\\n" and empty lines', () => {
  const { lines, feed } = splitter();
  feed('T=1\r\nH=', '2\n\n\r\n', 'A', '=3', '\nrest-without-end');
  assert.equal(lines, ['T=1', 'H=2', 'A=3']);
});

test('lines: random chunking of long and short lines gives exactly what split() gives', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  for (const delimiter of ['\n', '\r\n', '<END>']) {
    const want: string[] = [];
    for (let i = 0; i < 300; i++) want.push(`ID=${'A'.repeat(rnd(3000))};P=${1000 + i}.25`);
    const stream = Buffer.from(want.join(delimiter) + delimiter, 'latin1');
    const { lines, errors, feed } = splitter(delimiter, 4096);
    for (let off = 0; off < stream.length; ) {
      const len = 1 + rnd(700);
      feed(stream.subarray(off, off + len));
      off += len;
    }
    assert.is(errors.length, 0);
    assert.equal(lines, want, `delimiter ${JSON.stringify(delimiter)}`);
  }
});

test('lines: a multi-byte delimiter split over chunks, even byte by byte', () => {
  const { lines, feed } = splitter('<END>');
  feed('a=1<E', 'ND>b=2<', 'E', 'N', 'D', '>c=3<END><END>d<EN', 'D>');
  assert.equal(lines, ['a=1', 'b=2', 'c=3', 'd']);
  const x = splitter('\r\n');
  x.feed('a\r', '\nb\r\r\n', 'c\n\r\n');
  assert.equal(x.lines, ['a', 'b\r', 'c\n']);
});

test('lines: delimiter "\\r" drops the "\\n" of a CRLF device', () => {
  const { lines, feed } = splitter('\r');
  feed('a=1\r\nb=2\r\n');
  assert.equal(lines, ['a=1', 'b=2']);
});

test('lines: a multi-byte UTF-8 character split between chunks decodes whole', () => {
  const { lines, feed } = splitter();
  const bytes = Buffer.from('T=21.5°C\n', 'utf8');
  const at = bytes.indexOf(0xb0);
  feed(bytes.subarray(0, at), bytes.subarray(at));
  assert.equal(lines, ['T=21.5°C']);
});

test('lines: an overlong line is one parse error, the next line is intact, the buffer stays bounded', () => {
  const { s, lines, errors, feed } = splitter('\n', 16);
  feed('ok=1\n', 'x'.repeat(10), 'y'.repeat(10), 'z'.repeat(1000), '\u0001more\nok=2\n');
  assert.equal(lines, ['ok=1', 'ok=2']);
  assert.is(errors.length, 1);
  assert.is(errors[0]?.reason, 'line longer than 16 bytes');
  assert.ok(errors[0]?.sample.startsWith('xxxxxxxxxxyyyyyy'), errors[0]?.sample);
  assert.ok(s.capacity <= 16);
  // exactly at the limit is fine; one byte more is not
  feed('a'.repeat(16) + '\n', 'b'.repeat(17) + '\n');
  assert.equal(lines.slice(2), ['a'.repeat(16)]);
  assert.is(errors.length, 2);
});

test('lines: 1 MiB without a delimiter keeps at most max_line_length bytes, then recovers', () => {
  const { s, lines, errors, feed } = splitter('\r\n', 4096);
  const noise = Buffer.alloc(64 * 1024, 0x41);
  for (let i = 0; i < 16; i++) {
    feed(noise);
    assert.ok(s.buffered <= 4096 && s.capacity <= 4096, `buffered ${s.buffered}, capacity ${s.capacity}`);
  }
  feed('tail\r', '\nT=1\r\n');
  assert.is(errors.length, 1);
  assert.equal(lines, ['T=1']);
});

test('lines: a half line is dropped on reset', () => {
  const { s, lines, feed } = splitter();
  feed('T=1\nT=');
  s.reset();
  feed('2\n');
  assert.equal(lines, ['T=1', '2']);
});

test('lines: latin1 and ascii keep bytes >= 0x80 visible', () => {
  const a = splitter('\n', 64, 'latin1');
  a.feed(Buffer.from([0x54, 0x3d, 0xb0, 0x0a]));
  assert.equal(a.lines, ['T=\u00b0']);
  const b = splitter('\n', 64, 'ascii');
  b.feed(Buffer.from([0x54, 0x3d, 0xe9, 0x0a]));
  assert.equal(b.lines, ['T=\u00e9']);
});

test('escapeSample: control characters escaped, long text cut', () => {
  assert.is(escapeSample('a\u0000\u00ff\n\ufffd'), 'a\\x00\\xff\\n\\ufffd');
  assert.is(escapeSample('x'.repeat(100)), `${'x'.repeat(32)}...`);
  assert.is(escapeSample('a\\x00'), 'a\\\\x00', 'a literal backslash is told apart from an escape');
});

// ------------------------------------------------------------ formats

function cfg(extra: Record<string, unknown>): SerialDeviceConfig {
  return serialDevice.parse({ id: 'd', driver: 'serial', port: '/dev/null', ...extra });
}

function parse(extra: Record<string, unknown>, line: string): Record<string, RawValue> | string {
  const out = new Fields();
  const reason = createParser(cfg(extra))(line, out);
  if (reason !== undefined) return reason;
  const r: Record<string, RawValue> = {};
  for (let i = 0; i < out.count; i++) r[out.keys[i] as string] = out.values[i] as RawValue;
  return r;
}

test('values stay text from the line to the tag: its type decides, so a string tag keeps "007"', () => {
  const out: Reading[] = [];
  const p = new TagPipeline({
    tags: { id: { type: 'string' }, n: { type: 'integer' }, ok: { type: 'boolean' } },
    passUnknown: true, clock: new FakeClock(0), out: (r) => out.push(r), counters: newCounters(),
  });
  const fields = new Fields();
  assert.is(createParser(cfg({ format: 'kv' }))('id=007;n=0042;ok=1;T=21.50;state=open;hex=0x1F', fields), undefined);
  for (let i = 0; i < fields.count; i++) p.input(fields.keys[i]!, fields.values[i]!, 0, 'good');
  assert.equal(Object.fromEntries(out.map((r) => [r.tag, r.value])), { id: '007', n: 42, ok: true, T: 21.5, state: 'open', hex: '0x1F' });
});

test('kv: the default separator accepts ";", "," and whitespace, "=" or ":"', () => {
  assert.equal(parse({ format: 'kv' }, 'T=21.5;H=40'), { T: '21.5', H: '40' });
  assert.equal(parse({ format: 'kv' }, 'T=21.5, H:40 state=open ok=true;'), { T: '21.5', H: '40', state: 'open', ok: 'true' });
  assert.equal(parse({ format: 'kv' }, ' T = 1 ; H: 2 '), { T: '1', H: '2' });
  assert.equal(parse({ format: 'kv' }, 'time=12:30:01;T='), { time: '12:30:01' });
  assert.equal(parse({ format: 'kv' }, 'hello world'), 'expected key=value at column 1');
  assert.equal(parse({ format: 'kv' }, 'T=1;oops'), 'expected key=value at column 5');
  assert.equal(parse({ format: 'kv' }, 'T=;H='), 'no fields in line');
});

test('kv: an explicit separator allows spaces and commas in values', () => {
  assert.equal(parse({ format: 'kv', separator: '|' }, 'msg=door open, left|T: 1,5|n=2'), { msg: 'door open, left', T: '1,5', n: '2' });
  assert.equal(parse({ format: 'kv', separator: '|' }, 'a=1|garbage'), 'expected key=value, got "garbage"');
  assert.equal(parse({ format: 'kv', separator: '|' }, '=1'), 'empty key');
});

test('json: scalars, arrays of scalars, nested objects flattened with "."', () => {
  assert.equal(parse({ format: 'json' }, '{"T":21.5,"ok":true,"s":"12","n":null,"v":[1,"a"],"m":{"x":1,"y":{"z":"on"}},"deep":[{"a":1}]}'), {
    T: 21.5, ok: true, s: '12', n: null, v: [1, 'a'], 'm.x': 1, 'm.y.z': 'on',
  });
  assert.equal(parse({ format: 'json' }, '[1,2]'), 'expected a JSON object');
  assert.equal(parse({ format: 'json' }, '42'), 'expected a JSON object');
  assert.equal(parse({ format: 'json' }, '{}'), 'no fields in line');
  assert.ok(String(parse({ format: 'json' }, '{"T":')).startsWith('invalid JSON'));
});

test('csv: columns, separator, wrong field count', () => {
  assert.equal(parse({ format: 'csv', columns: ['weight', 'tare'] }, ' 12.5 , 0 '), { weight: '12.5', tare: '0' });
  assert.equal(parse({ format: 'csv', columns: ['a', 'b'], separator: ';' }, 'x;-1'), { a: 'x', b: '-1' });
  assert.equal(parse({ format: 'csv', columns: ['a', 'b'] }, '1,2,3'), 'expected 2 fields, got 3');
  assert.equal(parse({ format: 'csv', columns: ['a', 'b'] }, '1'), 'expected 2 fields, got 1');
  assert.equal(parse({ format: 'csv', columns: ['a', 'b'] }, '1,'), { a: '1' });
});

test('regex: named groups; no match is a parse error', () => {
  const pattern = String.raw`^W:\s*(?<weight>[-\d.]+)\s*g(?:\s+(?<flag>\w+))?$`;
  assert.equal(parse({ format: 'regex', pattern }, 'W: 12.5 g'), { weight: '12.5' });
  assert.equal(parse({ format: 'regex', pattern }, 'W: 12.5 g STABLE'), { weight: '12.5', flag: 'STABLE' });
  assert.equal(parse({ format: 'regex', pattern }, 'E: overload'), 'line does not match the pattern');
});

test('binary noise and control characters are parse errors in every format', () => {
  for (const extra of [{ format: 'kv' }, { format: 'json' }, { format: 'csv', columns: ['a'] }, { format: 'regex', pattern: '(?<a>.*)' }]) {
    assert.equal(parse(extra, 'T=1\u0000\u0007'), 'binary data or control characters');
    assert.equal(parse(extra, 'T=\ufffd'), 'binary data or control characters');
  }
  assert.equal(parse({ format: 'kv', encoding: 'ascii' }, 'T=\u00e9'), 'binary data or control characters');
  assert.equal(parse({ format: 'kv', encoding: 'latin1' }, 'T=\u00e9'), { T: '\u00e9' });
  assert.equal(parse({ format: 'kv' }, 'T=1\tH=2'), { T: '1', H: '2' });
});

test('options that cannot work are PermanentErrors', () => {
  assert.throws(() => createParser({ ...cfg({ format: 'csv', columns: ['a'] }), columns: undefined }), (e: unknown) => e instanceof PermanentError);
  assert.throws(() => createParser({ ...cfg({ format: 'kv' }), format: 'regex', pattern: '(?<a' }), (e: unknown) => e instanceof PermanentError);
});

// ------------------------------------------------------------ driver on the mock binding

test('driver: runs on an injected binding (the demo uses the mock one)', async () => {
  const binding = SerialPortMock.binding;
  // an echoing mock port answers every request with the request itself
  binding.createPort('/dev/FAKE0', { echo: true });
  try {
    const rec = recordingContext();
    const driver = new SerialDriver(cfg({ port: '/dev/FAKE0', request: 'T=21.5;H=40\n', poll_interval: 20, timeout: 100 }), { binding });
    const run = driver.run(rec.ctx);
    await waitFor(() => rec.values('T').length >= 3, 2000, 'three echoed answers');
    assert.equal(rec.values('H').slice(0, 3), [40, 40, 40]);
    assert.is(rec.timeouts, 0);
    rec.abort();
    await run;
    assert.equal(rec.statuses, [{ state: 'connecting' }, { state: 'connected' }]);
  } finally {
    binding.reset();
  }
});

test('driver: a flood of 64 KB chunks is split a slice at a time between turns of the event loop, in order, nothing lost', async () => {
  const mock = SerialPortMock.binding;
  mock.createPort('/dev/FAKE5', { echo: false, record: false, maxReadSize: 65536 });
  let port: Awaited<ReturnType<typeof mock.open>> | undefined;
  const binding = { ...mock, async open(o: Parameters<typeof mock.open>[0]) { return (port = await mock.open(o)); } };
  try {
    const rec = recordingContext();
    const run = new SerialDriver(cfg({ port: '/dev/FAKE5' }), { binding }).run(rec.ctx);
    await waitFor(() => port !== undefined && rec.lastStatus()?.state === 'connected', 2000, 'the port open');
    // four chunks of ~7,000 lines each, a line cut between two of them
    const total = 28_000;
    const text = Array.from({ length: total }, (_, i) => `n=${i}\n`).join('');
    const cuts = [0, 65536, 131072, 196608, text.length];
    // what the driver emitted at each turn of the event loop
    const turns: number[] = [0];
    let ticking = true;
    const tick = () => { turns.push(rec.emits.length); if (ticking) setImmediate(tick); };
    setImmediate(tick);
    assert.is(rec.emits.length, 0);
    for (let i = 0; i + 1 < cuts.length; i++) port?.emitData(text.slice(cuts[i], cuts[i + 1]));
    await waitFor(() => rec.emits.length >= total, 10_000, 'every line');
    ticking = false;
    assert.equal(rec.values('n'), Array.from({ length: total }, (_, i) => i));
    const most = Math.max(...turns.slice(1).map((n, i) => n - (turns[i] as number)));
    // one slice as the data comes, one more in the same turn's check phase
    assert.ok(most <= 2 * SLICE_LINES, `${most} lines in one turn of the event loop`);
    rec.abort();
    await run;
    assert.equal(rec.statuses, [{ state: 'connecting' }, { state: 'connected' }]);
  } finally {
    mock.reset();
  }
});

test('driver: polls go on when the wall clock is stepped back an hour', async () => {
  const binding = SerialPortMock.binding;
  binding.createPort('/dev/FAKE3', { echo: true });
  try {
    let wallOffset = 0;
    const clock: Clock = { ...systemClock, now: () => Date.now() + wallOffset };
    const rec = recordingContext('d', clock);
    const run = new SerialDriver(cfg({ port: '/dev/FAKE3', request: 'n=1\n', poll_interval: 20, timeout: 500, no_data_timeout: 1000 }), { binding }).run(rec.ctx);
    await waitFor(() => rec.values('n').length >= 3, 2000, 'three answers');
    wallOffset = -3_600_000;
    const before = rec.values('n').length;
    await waitFor(() => rec.values('n').length >= before + 5, 3000, 'five more answers after the step');
    rec.abort();
    await run;
    assert.equal(rec.statuses, [{ state: 'connecting' }, { state: 'connected' }], 'no "no data" failure either');
  } finally {
    binding.reset();
  }
});

test('driver: every timer is cleared when it stops, a request in flight or not', async () => {
  const binding = SerialPortMock.binding;
  binding.createPort('/dev/FAKE1', { echo: true });
  binding.createPort('/dev/FAKE2', { echo: false });
  try {
    const clock = new FakeClock();
    const rec = recordingContext('d', clock);
    const options = { request: 'n=1\n', poll_interval: 1000, timeout: 500, no_data_timeout: 5000 };
    const run = new SerialDriver(cfg({ port: '/dev/FAKE1', ...options }), { binding }).run(rec.ctx);
    await waitFor(() => rec.lastStatus()?.state === 'connected', 2000, 'connected');
    for (let i = 1; i <= 3; i++) {
      clock.advance(1000);
      await waitFor(() => rec.values('n').length === i, 2000, `answer ${i}`);
    }
    await waitFor(() => clock.pending === 2, 2000, 'the next poll and the watchdog armed');
    rec.abort();
    await run;
    assert.is(clock.pending, 0, 'no timer left behind');

    // a silent instrument: the answer timer is what is pending when it stops
    const rec2 = recordingContext('d', clock);
    const run2 = new SerialDriver(cfg({ port: '/dev/FAKE2', ...options, no_data_timeout: undefined }), { binding }).run(rec2.ctx);
    await waitFor(() => rec2.lastStatus()?.state === 'connected', 2000, 'connected');
    for (let i = 1; i <= 3; i++) {
      clock.advance(0);
      await waitFor(() => clock.pending === 1, 2000, `answer timer ${i}`);
      clock.advance(500);
      await waitFor(() => rec2.timeouts === i, 2000, `timeout ${i}`);
      clock.advance(500);
    }
    assert.equal(rec2.lastStatus(), { state: 'error', error: 'no answer to 3 requests in a row' });
    await waitFor(() => clock.pending === 1, 2000, 'the fourth answer timer');
    rec2.abort();
    await run2;
    assert.is(clock.pending, 0, 'no timer left behind');
  } finally {
    binding.reset();
  }
});

// ------------------------------------------------------------ ports

test('listPorts: an array, never a rejection', async () => {
  const ports = await listPorts();
  assert.ok(Array.isArray(ports));
  for (const p of ports) assert.type(p.path, 'string');
});

test('listPorts: by-id links merged with the detailed listing, a failing listing tolerated', async () => {
  const tmp = tempDir();
  try {
    const dev = join(tmp.dir, 'dev');
    const byId = join(tmp.dir, 'by-id');
    mkdirSync(dev);
    mkdirSync(byId);
    writeFileSync(join(dev, 'ttyUSB0'), '');
    writeFileSync(join(dev, 'ttyACM0'), '');
    symlinkSync('../dev/ttyUSB0', join(byId, 'usb-FTDI_FT232R_A1-if00-port0'));
    symlinkSync('../dev/ttyACM0', join(byId, 'usb-Arduino_Uno_B2-if00'));
    symlinkSync('../dev/gone', join(byId, 'usb-dangling'));
    const list = async () => [{ path: join(dev, 'ttyUSB0'), manufacturer: 'FTDI', vendorId: '0403', productId: '6001', serialNumber: 'A1' }];
    const ports = await listPorts({ byIdDir: byId, list });
    assert.equal(ports, [
      { path: join(dev, 'ttyACM0'), by_id: join(byId, 'usb-Arduino_Uno_B2-if00') },
      { path: join(dev, 'ttyUSB0'), by_id: join(byId, 'usb-FTDI_FT232R_A1-if00-port0'), manufacturer: 'FTDI', vendor_id: '0403', product_id: '6001', serial_number: 'A1' },
    ]);
    const failing = await listPorts({ byIdDir: byId, list: () => Promise.reject(new Error('spawn udevadm ENOENT')) });
    assert.is(failing.length, 2);
    assert.equal(await listPorts({ byIdDir: join(tmp.dir, 'absent'), list: async () => [] }), []);
  } finally {
    tmp.remove();
  }
});

test('openError: the errno name recovered from the binding\'s strerror text', () => {
  const cases: Array<[string, string]> = [
    ['Error: No such file or directory, cannot open /dev/ttyUSB0', 'cannot open /dev/ttyUSB0: ENOENT (no such port)'],
    ['Error: Permission denied, cannot open /dev/ttyUSB0', 'cannot open /dev/ttyUSB0: EACCES (permission denied; is the user in the dialout group?)'],
    ['Error Resource temporarily unavailable Cannot lock port', 'cannot open /dev/ttyUSB0: EAGAIN (locked by another program)'],
    ['Error: Device or resource busy, cannot open /dev/ttyUSB0', 'cannot open /dev/ttyUSB0: EBUSY (in use by another program)'],
    ['Error: No such device or address, cannot open /dev/ttyUSB0', 'cannot open /dev/ttyUSB0: ENXIO (no such device or address)'],
    ['something else', 'cannot open /dev/ttyUSB0: something else'],
  ];
  for (const [msg, want] of cases) assert.is(openError('/dev/ttyUSB0', new Error(msg)).message, want);
});

test.run();
