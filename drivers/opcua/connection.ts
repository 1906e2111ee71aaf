// One connected client, from the first session to its close. node-opcua
// repairs a lost connection by itself (new secure channel, session reactivated
// or recreated, subscription transferred or recreated with its monitored
// items): this class turns that on once everything is monitored, reports it as
// device status, and gives up — rejecting, so the supervisor starts afresh —
// when the repair takes too long or the subscription is lost for good.
import type { OpcuaDeviceConfig } from '../../config/schema.js';
import type { DriverContext, TimerHandle } from '../../gateway/types.js';
import type { OpenSession } from './client.js';
import { errorText } from './errors.js';
import { MonitoredTags, problemSummary, type Slot } from './monitor.js';
import { AttributeIds, DataType, findBasicDataType, StatusCodes, type NodeId, type StatusCode } from './ua.js';
import { toVariant, type NodeType } from './values.js';

/** node-opcua retries with backoff up to 30 s; a repair that has not worked by then is started over */
export const RECONNECT_GIVE_UP_MS = 120_000;
const INITIAL_DELAY_MS = 1000;
/** how long a close waits for a subscription being created to be answered */
const CREATE_WAIT_MS = 5000;

export class OpcuaConnection {
  private readonly monitored: MonitoredTags;
  private readonly nodeTypes = new Map<string, NodeType>();
  private reconnecting = false;
  private ended = false;
  private giveUp: TimerHandle | undefined;
  private settle: (err?: Error) => void = () => undefined;

  constructor(
    private readonly config: OpcuaDeviceConfig,
    private readonly ctx: DriverContext,
    private readonly open: OpenSession,
    slots: Slot[],
  ) {
    this.monitored = new MonitoredTags(config, slots, ctx, () => this.report(), (err) => this.fail(err));
  }

  /** resolves when the signal aborts, rejects when the connection is lost for good */
  async run(): Promise<void> {
    const { client, session } = this.open;
    const done = new Promise<void>((resolve, reject) => {
      this.settle = (err) => (err ? reject(err) : resolve());
    });
    this.ctx.signal.addEventListener('abort', this.onAbort, { once: true });
    client.on('close', this.onClose);
    session.on('session_closed', this.onSessionClosed);
    try {
      await this.monitored.start(session);
    } catch (err) {
      this.fail(err as Error);
      return done;
    }
    if (this.ended) return done;
    // from now on a lost connection is node-opcua's to repair (maxRetry -1: for ever, bounded by giveUp)
    client.connectionStrategy.maxRetry = -1;
    client.on('connection_lost', this.onLost);
    client.on('reconnection_attempt_has_failed', this.onAttemptFailed);
    client.on('connection_reestablished', this.onReestablished);
    this.report();
    return done;
  }

  async write(key: string, value: number | boolean | string): Promise<void> {
    if (this.ended) throw new Error(`${this.config.endpoint} is not connected`);
    if (this.reconnecting) throw new Error(`the connection to ${this.config.endpoint} is being re-established`);
    const slot = this.monitored.slots.find((s) => s.key === key);
    if (!slot?.nodeId) throw new Error(`tag "${key}" has no valid node id`);
    const type = await this.nodeType(slot.key, slot.nodeId);
    const converted = toVariant(type, value);
    if (!converted.ok) throw new Error(converted.error);
    const status: StatusCode = await this.open.session.write({ nodeId: slot.nodeId, attributeId: AttributeIds.Value, value: { value: converted.variant } });
    if (!status.isGood()) throw new Error(`the server refused the write to ${slot.node}: ${status.name}`);
  }

  /** the built-in DataType and array-ness of a node, read once */
  private async nodeType(key: string, nodeId: NodeId): Promise<NodeType> {
    const known = this.nodeTypes.get(key);
    if (known) return known;
    const session = this.open.session;
    const [dt, rank] = await session.read([{ nodeId, attributeId: AttributeIds.DataType }, { nodeId, attributeId: AttributeIds.ValueRank }]);
    if (!dt?.statusCode.isGood()) throw new Error(`cannot read the DataType of ${nodeId.toString()}: ${dt?.statusCode.name ?? 'no answer'}`);
    const dataType: DataType = await findBasicDataType(session, dt.value.value as NodeId);
    const valueRank = rank?.statusCode.isGood() ? (rank.value.value as number) : -1;
    const type = { dataType, array: valueRank >= 1 || valueRank === 0 };
    this.nodeTypes.set(key, type);
    return type;
  }

  /** connected, with the tags that are not read; error when none is */
  private report(): void {
    if (this.ended || this.reconnecting) return;
    const problems = this.monitored.problems();
    const total = this.monitored.slots.length;
    const summary = problemSummary(problems, total);
    this.ctx.setStatus(total > 0 && problems.length === total ? 'error' : 'connected', summary);
  }

  private readonly onLost = (): void => {
    if (this.ended) return;
    this.reconnecting = true;
    // node-opcua's reconnection backoff has no jitter of its own: a random first delay spreads gateways out
    this.open.client.connectionStrategy.initialDelay = Math.round(INITIAL_DELAY_MS * (0.5 + 0.5 * Math.random()));
    this.ctx.reconnecting?.();
    this.ctx.setStatus('disconnected', `connection to ${this.config.endpoint} lost; reconnecting`);
    this.ctx.log.warn({ endpoint: this.config.endpoint }, 'OPC UA connection lost; node-opcua reconnects, session and subscription are restored');
    this.giveUp ??= this.ctx.clock.setTimeout(() => {
      this.giveUp = undefined;
      this.fail(new Error(`connection to ${this.config.endpoint} not re-established within ${RECONNECT_GIVE_UP_MS / 1000} s`));
    }, RECONNECT_GIVE_UP_MS);
  };

  private readonly onAttemptFailed = (err: Error): void => {
    if (this.ended) return;
    const why = this.open.refusal()?.message ?? errorText(err);
    this.ctx.setStatus('disconnected', `reconnecting to ${this.config.endpoint}: ${why}`);
  };

  private readonly onReestablished = (): void => {
    if (this.ended) return;
    this.reconnecting = false;
    if (this.giveUp !== undefined) this.ctx.clock.clearTimeout(this.giveUp);
    this.giveUp = undefined;
    this.ctx.log.info({ endpoint: this.config.endpoint }, 'OPC UA connection re-established; subscription restored');
    this.monitored.recheck();
  };

  private readonly onClose = (err?: Error | null): void => {
    this.fail(new Error(`connection to ${this.config.endpoint} closed${err ? `: ${errorText(err)}` : ''}`));
  };

  private readonly onSessionClosed = (status?: StatusCode): void => {
    if (status?.value === StatusCodes.Good.value && this.ended) return;
    this.fail(new Error(`the server closed the session${status ? ` (${status.name})` : ''}`));
  };

  private readonly onAbort = (): void => {
    if (this.ended) return;
    this.cleanup();
    void this.close().then(() => this.settle());
  };

  private fail(err: Error): void {
    if (this.ended) return;
    this.cleanup();
    // the session is closed before rejecting: the next attempt must not find it still open on the server
    void this.close().then(() => this.settle(err));
  }

  /** the session closes once a subscription being created is answered (bounded) */
  private async close(): Promise<void> {
    await this.monitored.settled(CREATE_WAIT_MS);
    await this.open.close();
  }

  private cleanup(): void {
    this.ended = true;
    this.monitored.stop();
    if (this.giveUp !== undefined) this.ctx.clock.clearTimeout(this.giveUp);
    this.giveUp = undefined;
    this.ctx.signal.removeEventListener('abort', this.onAbort);
    const { client, session } = this.open;
    client.off('close', this.onClose);
    client.off('connection_lost', this.onLost);
    client.off('reconnection_attempt_has_failed', this.onAttemptFailed);
    client.off('connection_reestablished', this.onReestablished);
    session.off('session_closed', this.onSessionClosed);
  }
}
