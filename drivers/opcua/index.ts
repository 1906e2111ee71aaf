// The OPC UA driver module, loaded by the driver registry only when an OPC UA device is configured.
import type { OpcuaDeviceConfig } from '../../config/schema.js';
import { OpcuaDriver } from './driver.js';

export { OpcuaDriver } from './driver.js';

export function createOpcuaDriver(config: OpcuaDeviceConfig, gatewayId?: string): OpcuaDriver {
  return new OpcuaDriver(config, gatewayId);
}
