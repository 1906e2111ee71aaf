// Device faults of SPEC §5 for OPC UA, end to end with the gateway CLI and a
// real Mosquitto: the server stops and comes back (node-opcua's reconnection
// restores session, subscription and monitored items), a server that is not
// there at start (the supervisor's backoff), and reloads. Sessions are
// counted on the server: none may be left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimServer } from '../drivers/opcua/sim-server.js';
import { dataOf, gatewayConfig, latest, setup, waitForState, type Sub } from './helpers/e2e.js';
import { writeConfig } from './helpers/gateway.js';
import { opcuaDeviceMap, sim, stopAll, stopSim, tempPki } from './helpers/opcua.js';
import { freePort, requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker');

const counterAfter = (sub: Sub, device: string, since: number) =>
  dataOf(sub, device).flatMap((b) => b.readings).filter((r) => r.tag === 'counter' && r.ts > since);
const reconnects = (sub: Sub, device: string) =>
  (latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { reconnects: number }> } | undefined)?.devices?.[device]?.reconnects ?? 0;

if (enabled) {
  test.after(async () => {
    await stopAll();
  });

  test('the server stops and restarts: disconnected, then connected, data resumes without restarting the gateway; one session, none after stop', async () => {
    const e = await setup({ pty: false });
    const pkiDir = tempPki();
    let server: SimServer = await sim({ pkiDir });
    const port = server.port;
    try {
      const sub = await e.subscribe(e.broker!.url);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [opcuaDeviceMap('plc1', server.endpoint)]));
      await waitForState(sub, 'plc1', 'connected', 20_000);
      await waitFor(() => counterAfter(sub, 'plc1', 0).length >= 3, 10_000, 'data before the restart');

      await stopSim(server);
      await waitForState(sub, 'plc1', 'disconnected', 10_000);
      assert.match(String(latest(sub, 'edgegate/gw1/devices/plc1/status')?.error), /lost|reconnecting/);
      await sleep(1000);
      server = await sim({ port, pkiDir });
      const restartedAt = Date.now();
      await waitForState(sub, 'plc1', 'connected', 45_000);
      await waitFor(() => counterAfter(sub, 'plc1', restartedAt).length >= 3, 10_000, 'data from the restarted server');
      assert.is(latest(sub, 'edgegate/gw1/devices/plc1/status')?.error, undefined, 'every tag came back');
      await waitFor(() => reconnects(sub, 'plc1') >= 1, 5000, 'the reconnect counted in stats');
      const logs = gw.logs();
      assert.ok(logs.some((l) => l.msg === 'OPC UA connection re-established; subscription restored'), 'node-opcua reconnected');
      assert.not.ok(logs.some((l) => l.msg === 'device failed; retrying'), 'without the supervisor starting over');
      await sleep(500);
      assert.is(server.sessionCount(), 1, 'one session on the restarted server');

      assert.is((await gw.stop()).code, 0);
      await waitFor(() => server.sessionCount() === 0, 5000, 'the session closed at stop');
    } finally {
      await e.cleanup();
    }
  });

  test('no server at start: retried with backoff until it comes; SIGHUP with a changed device closes the old session', async () => {
    const e = await setup({ pty: false });
    const port = await freePort();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const device = opcuaDeviceMap('plc1', `opc.tcp://127.0.0.1:${port}`);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [device]));
      await waitForState(sub, 'plc1', 'disconnected', 20_000);
      assert.match(String(latest(sub, 'edgegate/gw1/devices/plc1/status')?.error), `opc.tcp://127.0.0.1:${port}`);
      const server = await sim({ port });
      await waitForState(sub, 'plc1', 'connected', 45_000);
      await waitFor(() => counterAfter(sub, 'plc1', 0).length >= 1, 10_000, 'data');
      assert.is(server.sessionCount(), 1);

      writeConfig(e.dir, gatewayConfig(e.broker!.url, e.dir, [{ ...device, publishing_interval: '200ms' }]));
      const reloadedAt = Date.now();
      gw.signal('SIGHUP');
      await waitFor(() => gw.logs().some((l) => l.msg === 'configuration reloaded'), 10_000, 'the reload');
      await waitFor(() => counterAfter(sub, 'plc1', reloadedAt + 500).length >= 1, 20_000, 'data after the reload');
      await sleep(500);
      assert.is(server.sessionCount(), 1, 'the old session was closed, the new one is open');

      assert.is((await gw.stop()).code, 0);
      await waitFor(() => server.sessionCount() === 0, 5000, 'no session after stop');
    } finally {
      await e.cleanup();
    }
  });
}

test.run();
