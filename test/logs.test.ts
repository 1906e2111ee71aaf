// Log output: json, pretty and journal formats, how auto picks one, levels and
// their aliases, secrets in every format, and device lines naming the device once.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import { journalLine, prettyLine, resolveLogFormat } from '../gateway/log-format.js';
import { createLogger, safeUrl } from '../gateway/logger.js';
import { runCli, writeConfig } from './helpers/gateway.js';
import { freePort, tempDir, waitFor } from './helpers/peers.js';

function capture(format: 'json' | 'pretty' | 'journal', level = 'trace') {
  const lines: string[] = [];
  const log = createLogger({ level, format, destination: { write: (s: string) => lines.push(s) } });
  return { log, lines };
}

const SECRET = 'hunter2-s3cret';

test('auto: journal when systemd gave stdout to the journal, pretty on a terminal, else json', () => {
  const tty = () => true;
  const pipe = () => false;
  assert.is(resolveLogFormat('auto', {}, 1, pipe), 'json');
  assert.is(resolveLogFormat('auto', {}, 1, tty), 'pretty');
  assert.is(resolveLogFormat('auto', { JOURNAL_STREAM: '8:12345' }, 1, pipe), 'journal');
  // a shell that inherited the variable writes to a terminal, not to the journal
  assert.is(resolveLogFormat('auto', { JOURNAL_STREAM: '8:12345' }, 1, tty), 'pretty');
  for (const f of ['json', 'pretty', 'journal'] as const) assert.is(resolveLogFormat(f, { JOURNAL_STREAM: '8:1' }, 1, tty), f);
});

test('journal: one line per entry, prefixed with the syslog priority of its level', () => {
  const { log, lines } = capture('journal');
  log.trace('t');
  log.debug('d');
  log.info({ device: 'boiler', state: 'connected' }, 'device status');
  log.warn({ err: 'no such file', retry_in_ms: 1000 }, 'device failed; retrying');
  log.error({ err: new Error('boom\nsecond line') }, 'reload failed');
  log.fatal('uncaught exception; exiting');
  assert.is(lines.length, 6);
  assert.ok(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1), 'one line per entry');
  assert.equal(lines.map((l) => l.slice(0, 3)), ['<7>', '<7>', '<6>', '<4>', '<3>', '<2>']);
  assert.is(lines[2], '<6>device status device=boiler state=connected\n');
  assert.is(lines[3], '<4>device failed; retrying err="no such file" retry_in_ms=1000\n');
  assert.match(lines[4]!, /^<3>reload failed err="boom\\nsecond line" stack="Error: boom\\nsecond line\\n {4}at /);
  // journald stamps time, pid and unit itself
  assert.not.match(lines[2]!, /time=|pid=|"level"/);
});

test('pretty: time, level, message, then key=value pairs; an error stack indented below', () => {
  const { log, lines } = capture('pretty');
  log.info({ device: 'boiler', port: '/dev/tty USB0', n: 3, ok: true, tags: ['a', 'b'] }, 'device status');
  log.error({ err: new Error('boom') }, 'reload failed');
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  device status device=boiler port="\/dev\/tty USB0" n=3 ok=true tags=\["a","b"\]\n$/);
  const [first, ...stack] = lines[1]!.trimEnd().split('\n');
  assert.match(first!, /Z ERROR reload failed err=boom$/);
  assert.ok(stack.length > 0 && stack.every((l) => /^ {4,}at /.test(l)), stack.join('|'));
  assert.not.match(lines[0]!, /pid=|hostname=|name=/);
  assert.is(prettyLine({ level: 40, time: '2026-01-01T00:00:00.000Z', msg: 'w' }, true), '2026-01-01T00:00:00.000Z \x1b[33mWARN \x1b[0m w');
  assert.is(journalLine({ level: 30, msg: 'a\nb', s: '' }), '<6>a\\nb s=""');
});

test('secrets are redacted in every format', () => {
  for (const format of ['json', 'pretty', 'journal'] as const) {
    const { log, lines } = capture(format);
    log.info({ password: SECRET, mqtt: { username: 'gw', password: SECRET }, opcua: { auth: { token: SECRET } } }, 'config');
    log.child({ device: 'plc1' }).warn({ settings: { password: SECRET } }, 'x');
    const out = lines.join('');
    assert.not.ok(out.includes(SECRET), `${format}: ${out}`);
    assert.ok(out.includes('[redacted]'), format);
  }
});

test('safeUrl: no userinfo, query string or fragment (a token may ride in any of them)', () => {
  assert.is(safeUrl('wss://gw:pw@broker.example:8884/mqtt?token=T0k3n&x=1#frag'), 'wss://broker.example:8884/mqtt');
  assert.is(safeUrl('mqtt://broker:1883'), 'mqtt://broker:1883');
  assert.is(safeUrl('not a url'), '(unparsable url)');
});

test('disabled levels write nothing in any format', () => {
  for (const format of ['json', 'pretty', 'journal'] as const) {
    const { log, lines } = capture(format, 'warn');
    log.debug({ a: 1 }, 'x');
    log.info({ a: 1 }, 'x');
    assert.is(lines.length, 0, format);
  }
});

test('config: the log section, gateway.log_level as its alias, a conflict is a warning', () => {
  const load = (text: string) => parseConfigText(text, 'test.yaml', {});
  const dflt = load('devices: []\n');
  assert.ok(dflt.ok && dflt.config.log.format === 'auto' && dflt.config.log.level === undefined);
  const set = load('log: { level: debug, format: journal }\n');
  assert.ok(set.ok && set.config.log.level === 'debug' && set.config.log.format === 'journal');
  const bad = load('log: { format: text, colour: true }\n');
  assert.not.ok(bad.ok);
  if (!bad.ok) {
    assert.ok(bad.errors.some((e) => e.startsWith('test.yaml: log.format')), bad.errors.join('\n'));
    assert.ok(bad.errors.some((e) => e.includes('log') && e.includes('colour')), bad.errors.join('\n'));
  }
  const both = load('gateway: { log_level: debug }\nlog: { level: warn }\n');
  assert.ok(both.ok);
  if (both.ok) assert.equal(both.warnings, ['test.yaml: gateway.log_level: ignored: log.level (warn) is set']);
});

/** runs `edgegate run` with a serial device whose port is missing, until its warning is logged */
async function runWithMissingPort(log: Record<string, unknown> | undefined, env: NodeJS.ProcessEnv = {}, extra: Record<string, unknown> = {}) {
  const t = tempDir();
  const port = await freePort();
  const file = writeConfig(t.dir, {
    gateway: { id: 'gw1' },
    mqtt: { url: `mqtt://127.0.0.1:${port}`, username: 'gw', password: SECRET },
    buffer: { dir: join(t.dir, 'buf') },
    ...(log ? { log } : {}),
    ...extra,
    devices: [{ id: 'boiler', driver: 'serial', port: join(t.dir, 'ttyNONE'), tags: { T: {} } }],
  });
  const cli = runCli(['run', '--config', file], { env: { JOURNAL_STREAM: '', LOG_LEVEL: '', NO_COLOR: '1', ...env } });
  try {
    await waitFor(() => cli.stdout().includes('waiting for its port to appear') || cli.proc.exitCode !== null, 20_000, 'the device warning');
    const r = await cli.stop();
    assert.is(r.code, 0, cli.stderr());
    return cli.stdout();
  } finally {
    await cli.stop();
    t.remove();
  }
}

test('run: a device warning names the device once', async () => {
  const out = await runWithMissingPort({ format: 'json' });
  const line = out.split('\n').find((l) => l.includes('waiting for its port to appear'));
  assert.ok(line, out);
  assert.is(line!.split('"device":"boiler"').length - 1, 1, line);
  for (const l of out.split('\n').filter((x) => x.includes('"device"'))) assert.is(l.split('"device":').length - 1, 1, l);
});

test('run under systemd (JOURNAL_STREAM): priority-prefixed lines; LOG_LEVEL overrides log.level; no secret', async () => {
  const out = await runWithMissingPort(undefined, { JOURNAL_STREAM: '8:123456' });
  const lines = out.trimEnd().split('\n');
  assert.ok(lines.every((l) => /^<[2-7]>/.test(l)), out);
  assert.ok(lines.some((l) => l.startsWith('<4>device failed; waiting for its port to appear') && l.includes(' device=boiler ')), out);
  assert.ok(lines.some((l) => l.startsWith('<6>')), out);
  assert.not.ok(out.includes(SECRET));

  const warnOnly = await runWithMissingPort({ level: 'debug' }, { JOURNAL_STREAM: '8:123456', LOG_LEVEL: 'warn' });
  assert.not.match(warnOnly, /^<[67]>/m);
  assert.match(warnOnly, /^<4>device failed/m);
});

test('run: gateway.log_level still sets the level; piped stdout without systemd is json', async () => {
  const out = await runWithMissingPort(undefined, {}, { gateway: { id: 'gw1', log_level: 'warn' } });
  const lines = out.trimEnd().split('\n');
  assert.ok(lines.length > 0 && lines.every((l) => l.startsWith('{')), out);
  assert.ok(lines.every((l) => (JSON.parse(l) as { level: number }).level >= 40), out);
});

test.run();
