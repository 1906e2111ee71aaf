// The serial driver module, loaded by the driver registry when a serial device is configured.
import type { SerialDeviceConfig } from '../../config/schema.js';
import { SerialDriver, type SerialDriverDeps } from './driver.js';

export { SerialDriver, type SerialDriverDeps } from './driver.js';
export { listPorts, type PortListing, type ListPortsOptions } from './ports.js';

export function createSerialDriver(config: SerialDeviceConfig, deps?: SerialDriverDeps): SerialDriver {
  return new SerialDriver(config, deps);
}
