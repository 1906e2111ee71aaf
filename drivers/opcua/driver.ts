// The OPC UA driver: one client, one session and one subscription per device.
// run() connects once and then keeps the data flowing through node-opcua's own
// reconnection; it rejects only when that gives up, and the supervisor starts
// a fresh client after its backoff.
import type { OpcuaDeviceConfig } from '../../config/schema.js';
import { PermanentError, type Driver, type DriverContext } from '../../gateway/types.js';
import { openSession, type OpenSession } from './client.js';
import { OpcuaConnection } from './connection.js';
import { errorText } from './errors.js';
import { slotsOf } from './monitor.js';
import { routeOpcuaLogs } from './ua.js';

export class OpcuaDriver implements Driver {
  readonly reportsChangesOnly = true;
  private connection: OpcuaConnection | undefined;

  /** gatewayId: named in the client certificate the driver creates on first start */
  constructor(private readonly config: OpcuaDeviceConfig, private readonly gatewayId?: string) {}

  async run(ctx: DriverContext): Promise<void> {
    if (ctx.signal.aborted) return;
    const c = this.config;
    if (c.pki_dir === undefined) throw new PermanentError('pki_dir is not set (the configuration loader sets it to buffer.dir/pki)');
    routeOpcuaLogs(ctx.log);
    if (c.password !== undefined && c.username === undefined) ctx.log.warn({ endpoint: c.endpoint }, 'a password without a username is ignored: the session is anonymous');
    ctx.setStatus('connecting');
    let open: OpenSession;
    try {
      open = await openSession({ ...c, pki_dir: c.pki_dir, ...(this.gatewayId ? { gateway_id: this.gatewayId } : {}) }, ctx.log, { signal: ctx.signal, clientName: `edgegate-${ctx.deviceId}` });
    } catch (err) {
      if (ctx.signal.aborted) return;
      throw new Error(`${c.endpoint}: ${errorText(err)}`, { cause: err });
    }
    const connection = new OpcuaConnection(c, ctx, open, slotsOf(c));
    this.connection = connection;
    try {
      await connection.run();
    } finally {
      if (this.connection === connection) this.connection = undefined;
    }
  }

  async write(key: string, value: number | boolean | string): Promise<void> {
    const connection = this.connection;
    if (!connection) throw new Error(`${this.config.endpoint} is not connected`);
    await connection.write(key, value);
  }
}
