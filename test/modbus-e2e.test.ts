// End to end: a pymodbus RTU slave with two units on a socat pty → the
// gateway CLI as a child process → Mosquitto → a subscriber; writes published
// over MQTT reach the slave's registers, results come back on .../result.
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dataOf, gatewayConfig, latest, setup, waitForState } from './helpers/e2e.js';
import { requirePeer, waitFor } from './helpers/peers.js';
import { requirePymodbus, startModbusPeer, type ModbusPeer } from './peers/modbus.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs') && requirePymodbus();

function meter(id: string, port: string, unit: number, tags: Record<string, object>) {
  return { id, driver: 'modbus-rtu', port, baud_rate: 19200, parity: 'even', unit_id: unit, poll_interval: '200ms', timeout: '300ms', tags };
}

if (enabled) {
  test('two slaves on one bus publish; writes over MQTT are checked, encoded and answered; a dead slave says so alone', async () => {
    const e = await setup();
    let peer: ModbusPeer | undefined;
    const client = await mqtt.connectAsync(e.broker!.url);
    try {
      peer = await startModbusPeer({ rtu: e.pty!.instrument, units: [1, 2] });
      await peer.set(1, 'holding', 0, [0x4148, 0x0000]); // 12.5 as float32, big word order
      await peer.set(2, 'input', 5, [235]);
      const sub = await e.subscribe(e.broker!.url);
      const devices = [
        meter('meter1', e.pty!.device, 1, {
          voltage: { area: 'holding', address: 0, type: 'float32' },
          relay: { area: 'coil', address: 3, writable: true },
          setpoint: { area: 'holding', address: 10, type: 'int32', word_order: 'little', writable: true, min: -1000, max: 100000 },
          limit: { area: 'holding', address: 20, type: 'uint16' },
        }),
        meter('meter2', e.pty!.device, 2, { temp: { area: 'input', address: 5, type: 'int16', scale: 0.1, deadband: 0 } }),
      ];
      e.start(gatewayConfig(e.broker!.url, e.dir, devices));
      await waitForState(sub, 'meter1', 'connected');
      await waitForState(sub, 'meter2', 'connected');
      await waitFor(() => dataOf(sub, 'meter2').length > 0 && dataOf(sub, 'meter1').length > 0, 5000, 'data from both');
      const reading = (device: string, tag: string) => dataOf(sub, device).flatMap((b) => b.readings).find((r) => r.tag === tag);
      assert.is(reading('meter1', 'voltage')?.value, 12.5);
      assert.is(reading('meter1', 'relay')?.value, false);
      assert.is(reading('meter2', 'temp')?.value, 23.5);
      assert.is(reading('meter2', 'temp')?.quality, 'good');

      const results: Array<{ topic: string; body: { ok: boolean; error?: string } }> = [];
      client.on('message', (topic, payload) => results.push({ topic, body: JSON.parse(payload.toString()) as { ok: boolean; error?: string } }));
      await client.subscribeAsync('edgegate/gw1/devices/+/set/+/result', { qos: 1 });
      const write = async (device: string, tag: string, payload: string) => {
        const n = results.length;
        await client.publishAsync(`edgegate/gw1/devices/${device}/set/${tag}`, payload, { qos: 1 });
        await waitFor(() => results.length > n, 5000, `result of ${tag} = ${payload}`);
        const r = results[n]!;
        assert.is(r.topic, `edgegate/gw1/devices/${device}/set/${tag}/result`);
        return r.body;
      };
      assert.equal(await write('meter1', 'relay', 'true'), { ok: true });
      assert.equal(await peer.get(1, 'coil', 3, 1), [1]);
      assert.equal(await write('meter1', 'setpoint', '70000'), { ok: true });
      assert.equal(await peer.get(1, 'holding', 10, 2), [70000 & 0xffff, 70000 >>> 16], 'int32, little word order');
      const above = await write('meter1', 'setpoint', '100001');
      assert.is(above.ok, false);
      assert.match(above.error ?? '', 'above max');
      const fraction = await write('meter1', 'setpoint', '1.5');
      assert.is(fraction.ok, false);
      assert.match(fraction.error ?? '', 'integer');
      const readOnly = await write('meter1', 'limit', '1');
      assert.equal(readOnly, { ok: false, error: 'tag is not writable' });
      assert.equal(await peer.get(1, 'holding', 10, 2), [70000 & 0xffff, 70000 >>> 16], 'refused writes changed nothing');
      await waitFor(() => dataOf(sub, 'meter1').flatMap((b) => b.readings).some((r) => r.tag === 'relay' && r.value === true), 5000, 'the written coil read back');

      // unit 2 stops answering: its status says so, meter1 is untouched; it comes back
      await peer.dead(2, true);
      await waitForState(sub, 'meter2', 'disconnected', 10_000);
      assert.match(String(latest(sub, 'edgegate/gw1/devices/meter2/status')?.error), 'unit 2 does not answer');
      assert.is(latest(sub, 'edgegate/gw1/devices/meter1/status')?.state, 'connected');
      const meter1Statuses = sub.messages.filter((m) => m.topic === 'edgegate/gw1/devices/meter1/status').length;
      await peer.dead(2, false);
      await waitForState(sub, 'meter2', 'connected', 40_000);
      assert.is(sub.messages.filter((m) => m.topic === 'edgegate/gw1/devices/meter1/status').length, meter1Statuses, 'meter1 status never changed');
      await waitFor(() => {
        const s = latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { timeouts: number; reconnects: number }> } | undefined;
        return (s?.devices?.meter2?.timeouts ?? 0) >= 3 && s?.devices?.meter2?.reconnects === 1 && s.devices.meter1?.reconnects === 0;
      }, 3000, 'timeouts and one reconnect of meter2 in stats, none of meter1');
    } finally {
      await client.endAsync();
      await peer?.stop();
      await e.cleanup();
    }
  });
}

test.run();
