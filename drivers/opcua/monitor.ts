// One subscription per device and its monitored items, created in chunks of
// identical monitoring parameters so that 10,000 tags start in a few requests.
// Tags that cannot be monitored (a wrong node id, a node that is not readable,
// a value type the gateway cannot carry) are problems of their own: they are
// reported and the other tags keep working.
//
// No item carries a deadband filter: the server would compare with the last
// value it reported, strictly, in raw units, while SPEC's deadband compares
// with the last published value, inclusively, in published units. Any server
// deadband s > 0 can drop a value the rule publishes. Deadband 5, last
// published 0: with s >= 5 the server drops 5 itself (not more than s); with
// s < 5 it reports some r in (s, 5) with 5 - r <= s, which the gateway holds
// back, and then drops 5 (within s of r). So the server reports every sampled
// change (the default trigger, StatusValue) and the gateway's deadband alone
// decides.
import type { OpcuaDeviceConfig } from '../../config/schema.js';
import type { DriverContext } from '../../gateway/types.js';
import {
  AttributeIds, ClientMonitoredItemGroup, coerceNodeId, readOperationLimits, StatusCodes, TimestampsToReturn,
  type ClientMonitoredItemBase, type ClientSession, type ClientSubscription, type DataValue, type NodeId, type StatusCode,
} from './ua.js';
import { qualityOf, rawValueOf, timestampOf, UnsupportedValue } from './values.js';

/** one tag as monitored: what the hot path needs, and what is wrong with it */
export interface Slot {
  key: string;
  node: string;
  nodeId: NodeId | undefined;
  sampling: number;
  queue: number;
  problem: string | undefined;
}

const DEFAULT_CHUNK = 1000;
const CHUNKS_IN_FLIGHT = 2;
const KEEPALIVE_MS = 10_000;
/**
 * Notifications per publish response at most. node-opcua decodes a response
 * and hands out every change in it in one task of the event loop, so this
 * bounds how long a busy subscription holds the loop from the other devices
 * (at 50,000 changes/s: tasks p99 16 → 7 ms, max 33 → 12 ms against the
 * server's own limit, 1,000 for node-opcua, none for some). The server sends
 * the rest in the next responses (moreNotifications), not a publishing
 * interval later.
 */
export const MAX_NOTIFICATIONS_PER_PUBLISH = 250;

// a notification with one of these says the tag is wrong, not that its value is bad
const TAG_ERRORS = new Set<number>([
  StatusCodes.BadNodeIdUnknown.value, StatusCodes.BadNodeIdInvalid.value, StatusCodes.BadNotReadable.value,
  StatusCodes.BadUserAccessDenied.value, StatusCodes.BadAttributeIdInvalid.value, StatusCodes.BadIndexRangeInvalid.value,
]);

export function slotsOf(config: OpcuaDeviceConfig): Slot[] {
  return Object.entries(config.tags).map(([key, tag]) => {
    let nodeId: NodeId | undefined;
    let problem: string | undefined;
    try {
      nodeId = coerceNodeId(tag.node);
    } catch {
      problem = `invalid node id "${tag.node}"`;
    }
    return {
      key, node: tag.node, nodeId, problem,
      sampling: tag.sampling_interval ?? config.sampling_interval,
      queue: tag.queue_size ?? config.queue_size,
    };
  });
}

export class MonitoredTags {
  private subscription: ClientSubscription | undefined;
  private readonly groups: ClientMonitoredItemGroup[] = [];
  /** the items the server accepted, for the check after a reconnection */
  private readonly accepted: Array<{ item: ClientMonitoredItemBase; slot: Slot }> = [];
  private stopped = false;
  /** settles once a subscription being created is answered: closing the session before that makes node-opcua throw */
  private creating: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: OpcuaDeviceConfig,
    readonly slots: Slot[],
    private readonly ctx: DriverContext,
    /** the list of problems changed */
    private readonly onProblems: () => void,
    /** the server ended the subscription (its lifetime ran out): only a new one helps */
    private readonly onLost: (err: Error) => void,
  ) {}

  /** tag key → what is wrong with it */
  problems(): Array<[string, string]> {
    return this.slots.filter((s) => s.problem !== undefined).map((s) => [s.key, s.problem as string]);
  }

  async start(session: ClientSession): Promise<void> {
    const publishing = this.config.publishing_interval;
    const keepAlive = Math.max(2, Math.ceil(KEEPALIVE_MS / Math.max(publishing, 1)));
    const creating = session.createSubscription2({
      requestedPublishingInterval: publishing,
      requestedMaxKeepAliveCount: keepAlive,
      requestedLifetimeCount: keepAlive * 6,
      maxNotificationsPerPublish: MAX_NOTIFICATIONS_PER_PUBLISH,
      publishingEnabled: true,
      priority: 10,
    });
    this.creating = creating.catch(() => undefined);
    this.subscription = await creating;
    this.subscription.on('status_changed', (status: StatusCode) => {
      if (status.value === StatusCodes.BadTimeout.value) this.onLost(new Error(`the server ended the subscription (${status.name})`));
    });
    const limits = await readOperationLimits(session).catch(() => ({ maxMonitoredItemsPerCall: undefined }));
    const chunk = Math.min(DEFAULT_CHUNK, limits.maxMonitoredItemsPerCall || DEFAULT_CHUNK);
    const todo = this.slots.filter((s) => s.nodeId !== undefined);
    await this.monitor(todo, chunk);
  }

  /** after node-opcua recreated the subscription: tags that did not come back are problems */
  recheck(): void {
    for (const { item, slot } of this.accepted) {
      if (!item.statusCode.isGood() && slot.problem === undefined) slot.problem = item.statusCode.name;
    }
    this.onProblems();
  }

  /**
   * Resolves when no subscription is being created (at most after ms): the
   * session may close then. node-opcua asserts that a new subscription's
   * session is still open when it announces it, and that assertion, thrown
   * from an event, would end the process (a stop right after the connect).
   */
  settled(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.creating, new Promise((resolve) => { timer = setTimeout(resolve, ms); })]).then(() => clearTimeout(timer));
  }

  stop(): void {
    this.stopped = true;
    for (const group of this.groups) group.removeAllListeners('changed');
  }

  /** creates the items of the slots */
  private async monitor(slots: Slot[], chunk: number): Promise<void> {
    const byParams = new Map<string, Slot[]>();
    for (const s of slots) {
      const k = `${s.sampling}|${s.queue}`;
      const list = byParams.get(k);
      if (list) list.push(s);
      else byParams.set(k, [s]);
    }
    const chunks: Slot[][] = [];
    for (const list of byParams.values()) for (let i = 0; i < list.length; i += chunk) chunks.push(list.slice(i, i + chunk));
    let next = 0;
    const worker = async () => {
      while (next < chunks.length && !this.stopped) await this.createGroup(chunks[next++] as Slot[]);
    };
    await Promise.all(Array.from({ length: Math.min(CHUNKS_IN_FLIGHT, chunks.length) }, worker));
  }

  private async createGroup(slots: Slot[]): Promise<void> {
    const first = slots[0] as Slot;
    // no filter: every sampled change of value or status is reported (see the top of this file)
    const filter = null;
    const items = slots.map((s) => ({ nodeId: s.nodeId as NodeId, attributeId: AttributeIds.Value }));
    const params = { samplingInterval: first.sampling, queueSize: first.queue, discardOldest: true, filter };
    const group = ClientMonitoredItemGroup.create(this.subscription as ClientSubscription, items, params, TimestampsToReturn.Both);
    // listening before the items exist: the first values may come with the create response
    group.on('changed', (_item, dv: DataValue, index: number) => this.onChange(slots[index] as Slot, dv));
    await new Promise<void>((resolve, reject) => {
      group.once('initialized', () => { group.removeAllListeners('terminated'); resolve(); });
      group.once('terminated', (err?: Error) => reject(new Error(`creating monitored items failed: ${err?.message ?? 'terminated'}`)));
    });
    this.groups.push(group);
    group.monitoredItems.forEach((item, i) => {
      const slot = slots[i] as Slot;
      const status: StatusCode = item.statusCode;
      if (status.isGood()) this.accepted.push({ item, slot });
      else slot.problem = status.name;
    });
  }

  // the hot path: one call per data change, nothing awaited, nothing logged above debug
  private onChange(slot: Slot, dv: DataValue): void {
    if (this.stopped) return;
    const status = dv.statusCode;
    if (TAG_ERRORS.has(status.value)) {
      if (slot.problem !== status.name) this.problem(slot, status.name);
      return;
    }
    const value = rawValueOf(dv.value);
    if (value instanceof UnsupportedValue) {
      this.ctx.parseError(`tag ${slot.key}: ${value.reason}`);
      if (slot.problem !== value.reason) this.problem(slot, value.reason);
      return;
    }
    if (slot.problem !== undefined) this.problem(slot, undefined);
    this.ctx.emit(slot.key, value, timestampOf(dv) ?? this.ctx.clock.now(), qualityOf(status));
  }

  private problem(slot: Slot, problem: string | undefined): void {
    slot.problem = problem;
    if (problem !== undefined) this.ctx.log.warn({ tag: slot.key, node: slot.node, problem }, 'tag not readable');
    this.onProblems();
  }
}

/** "2 of 10 tags not read: a (BadNodeIdUnknown), b (…)"; undefined when all are fine */
export function problemSummary(problems: Array<[string, string]>, total: number, max = 10): string | undefined {
  if (problems.length === 0) return undefined;
  const listed = problems.slice(0, max).map(([k, p]) => `${k} (${p})`).join(', ');
  const more = problems.length > max ? `, and ${problems.length - max} more` : '';
  return `${problems.length} of ${total} tags not read: ${listed}${more}`;
}
