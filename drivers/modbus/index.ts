// The Modbus driver module, loaded by the driver registry when a modbus-rtu or modbus-tcp device is configured.
import { ModbusDriver, type ModbusDeviceConfig, type ModbusDriverDeps } from './driver.js';

export { ModbusDriver, MISSES_BEFORE_DISCONNECTED, type ModbusDeviceConfig, type ModbusDriverDeps } from './driver.js';

export function createModbusDriver(config: ModbusDeviceConfig, deps?: ModbusDriverDeps): ModbusDriver {
  return new ModbusDriver(config, deps);
}
