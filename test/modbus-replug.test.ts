// An RS-485 adapter with two Modbus RTU slaves behind it, unplugged and
// plugged back in under the supervisor: when the port's path reappears both
// devices retry at once and share the reopened bus, however far the backoff
// had grown. socat stands in for the adapter (killing it removes the link).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configSchema } from '../config/schema.js';
import { openBuses } from '../drivers/modbus/bus.js';
import { systemClock } from '../gateway/clock.js';
import { DeviceTask } from '../gateway/device.js';
import type { Logger } from '../gateway/types.js';
import { ptyPair } from './helpers/socat.js';
import { requirePeer, sleep, tempDir, waitFor } from './helpers/peers.js';
import { requirePymodbus, startModbusPeer, type ModbusPeer } from './peers/modbus.js';

const enabled = requirePeer('socat', 'Modbus RTU tests run over socat pty pairs') && requirePymodbus();

const APPEARED = 'port appeared; retrying at once';
/** generous for a loaded machine: that the retry came from the path appearing is asserted apart */
const BOUND_MS = 5000;

if (enabled) {
  test('unplugged and plugged back in: both devices on the bus retry when the port appears, and read again', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    let peer: ModbusPeer | undefined = await startModbusPeer({ rtu: pty.instrument, units: [1, 2] });
    const meter = (id: string, unit: number) => ({
      id, driver: 'modbus-rtu', port: pty.device, baud_rate: 115200, unit_id: unit, poll_interval: '100ms', timeout: '200ms',
      tags: { v: { area: 'holding', address: 0 } },
    });
    const configs = configSchema.parse({ devices: [meter('a', 1), meter('b', 2)] }).devices;
    const messages: string[] = [];
    const log: Logger = {
      trace() {}, debug() {}, warn() {}, error() {}, fatal() {},
      info: (_o, msg) => void messages.push(String(msg)),
      child: () => log,
    };
    const readings: Array<{ device: string; value: unknown }> = [];
    const tasks = configs.map((config) => new DeviceTask({
      config, gatewayId: 'gw', topicPrefix: 'p', batchDefaults: { max_readings: 500, max_bytes: 262_144, max_wait: 1000 },
      clock: systemClock, log, nextSeq: () => 1, onBatch: () => {}, onStatus: () => {},
      onReading: (device, r) => void readings.push({ device, value: r.value }),
    }));
    const reads = (value: number) => ['a', 'b'].every((d) => readings.some((r) => r.device === d && r.value === value));
    const reopened: number[] = [];
    try {
      await peer.set(1, 'holding', 0, [100]);
      await peer.set(2, 'holding', 0, [100]);
      for (const t of tasks) t.start();
      await waitFor(() => reads(100), 10_000, 'both devices reading');
      // the long pause lets the backoff of a timer-only retry grow past the short ones
      const pauses = [300, 2200, 300];
      for (let cycle = 1; cycle <= pauses.length; cycle++) {
        await peer.stop();
        peer = undefined;
        await pty.stop();
        await waitFor(() => tasks.every((t) => t.status.error === `${pty.device}: device removed`), 5000, `the removal ${cycle} to be seen by both`);
        await sleep(pauses[cycle - 1]!);
        const appearedBefore = messages.filter((m) => m === APPEARED).length;
        const t0 = Date.now();
        await pty.restart();
        await waitFor(() => openBuses().get(pty.device)?.clients === 2, 40_000, `the bus reopened by both (replug ${cycle})`, 5);
        reopened.push(Date.now() - t0);
        assert.is(messages.filter((m) => m === APPEARED).length - appearedBefore, 2, `replug ${cycle}: both retried because the port appeared`);
        assert.ok(reopened[cycle - 1]! < BOUND_MS, `replug ${cycle}: ${reopened[cycle - 1]} ms`);
        peer = await startModbusPeer({ rtu: pty.instrument, units: [1, 2] });
        await peer.set(1, 'holding', 0, [100 + cycle]);
        await peer.set(2, 'holding', 0, [100 + cycle]);
        await waitFor(() => reads(100 + cycle), 10_000, `both devices reading after replug ${cycle}`);
      }
      console.log(`replug to the bus reopened, pauses 300/2200/300 ms: ${reopened.join(', ')} ms`);
    } finally {
      await Promise.all(tasks.map((t) => t.stop()));
      await peer?.stop();
      await pty.stop();
      tmp.remove();
    }
  });
}

test.run();
