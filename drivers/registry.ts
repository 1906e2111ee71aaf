// The only way the core reaches concrete drivers. Driver modules are imported
// lazily, so a gateway without OPC UA devices never loads node-opcua.
import type { DeviceConfig } from '../config/schema.js';
import type { Driver } from '../gateway/types.js';

/** extra wiring a caller may give a driver (the demo's mock serial binding) */
export interface DriverDeps {
  binding?: unknown;
  /** the gateway's id (an OPC UA client certificate names it) */
  gatewayId?: string;
}

export async function createDriver(config: DeviceConfig, deps: DriverDeps = {}): Promise<Driver> {
  switch (config.driver) {
    case 'serial': {
      const { createSerialDriver } = await import('./serial/index.js');
      return createSerialDriver(config, deps);
    }
    case 'modbus-rtu':
    case 'modbus-tcp': {
      const { createModbusDriver } = await import('./modbus/index.js');
      return createModbusDriver(config, deps);
    }
    case 'opcua': {
      const { createOpcuaDriver } = await import('./opcua/index.js');
      return createOpcuaDriver(config, deps.gatewayId);
    }
  }
}
