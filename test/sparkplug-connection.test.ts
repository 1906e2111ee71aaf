// The edge node's own connection without a broker to take it: a refused
// connection says so at warn (once a minute, not per attempt), and a stop
// during the goodbye of a restart leaves the client closed for good.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfigText } from '../config/load.js';
import { systemClock } from '../gateway/clock.js';
import type { BdSeqStore } from '../gateway/outputs/sparkplug/bdseq.js';
import { EdgeConnection } from '../gateway/outputs/sparkplug/connection.js';
import { sparkplugSettings } from '../gateway/outputs/sparkplug/index.js';
import { gatewayConfig } from './helpers/e2e.js';
import { captureLog } from './helpers/mqtt-fixtures.js';
import { freePort, waitFor } from './helpers/peers.js';

async function rig() {
  // a port nothing listens on: every CONNECT is refused
  const url = `mqtt://127.0.0.1:${await freePort()}`;
  const loaded = parseConfigText(JSON.stringify(gatewayConfig(url, '/nonexistent', [], { sparkplug: { enabled: true } })), 'config.json');
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  let taken = 0;
  const bdSeq = { take: () => taken++ } as unknown as BdSeqStore;
  const { log, lines } = captureLog();
  const conn = new EdgeConnection({
    settings: sparkplugSettings(loaded.config, url), deathTopic: 'spBv1.0/g/NDEATH/n', subscriptions: [], bdSeq, clock: systemClock, log,
    online() {}, offline() {}, message() {},
  });
  return { conn, lines, taken: () => taken };
}

test('a refused connection is logged at warn, once for a burst of attempts', async () => {
  const r = await rig();
  r.conn.start();
  const errors = () => r.lines.filter((l) => l.msg === 'sparkplug connection error');
  await waitFor(() => errors().length > 0 && r.taken() >= 2, 15_000, 'an error and a second attempt');
  await r.conn.stop();
  const warned = errors().filter((l) => l.level === 'warn');
  assert.is(warned.length, 1, 'one warning: later attempts within the minute go at debug');
  assert.ok(!JSON.stringify(warned[0]!.obj).includes('password'));
});

test('stop() during the goodbye of a restart: the client is not reconnected (no bdSeq taken after)', async () => {
  const r = await rig();
  r.conn.start();
  assert.is(r.taken(), 1);
  const restarting = r.conn.restart();
  await r.conn.stop();
  await restarting;
  assert.is(r.taken(), 1, 'no reconnect once stopped');
  assert.is(r.conn.connected, false);
});

test.run();
