// What a device is on Sparkplug: its metrics (name, alias, datatype), fixed
// at its DBIRTH, and the payloads built from them. Aliases are unique across
// the whole edge node (the specification asks it) and stay the same for a
// device's tags while its config does not change; a changed device map gets
// new ones.
import type { DeviceConfig, TagConfig } from '../../../config/schema.js';
import type { Quality, RawValue, Reading } from '../../types.js';
import { dataTypeOf, metricValue, typedByValue, type DataType, type UMetric } from './payload.js';

export interface MetricDef {
  readonly name: string;
  readonly alias: number;
  readonly type: DataType;
  /** born without a value to show its datatype (an untyped tag before its first reading): String for now */
  readonly guessed?: boolean;
}

export class DeviceDefinition {
  readonly byName = new Map<string, MetricDef>();
  readonly byAlias = new Map<number, MetricDef>();

  constructor(readonly config: DeviceConfig) {}

  add(def: MetricDef): void {
    this.byName.set(def.name, def);
    this.byAlias.set(def.alias, def);
  }
}

/** the node-wide alias counter (alias 0 is left out: some hosts read it as "none") */
export class Aliases {
  #next = 1;
  take(): number { return this.#next++; }
}

/**
 * A device's metrics: every tag of its map, plus (for a device whose map
 * lists no tags, so it publishes whatever keys come) every tag seen so far.
 */
/** a reading that shows its tag's birth datatype was a guess, and a wrong one: the device is born again first */
export function retyped(def: DeviceDefinition, m: MetricDef, r: Reading): boolean {
  return m.guessed === true && r.value !== null && dataTypeOf(def.config, {} as TagConfig, r.value) !== m.type;
}

export function defineDevice(config: DeviceConfig, latest: ReadonlyMap<string, Reading> | undefined, aliases: Aliases, previous?: DeviceDefinition): DeviceDefinition {
  const def = new DeviceDefinition(config);
  const keep = previous?.config === config ? previous : undefined;
  const tags = config.tags as Record<string, TagConfig>;
  const add = (name: string, tag: TagConfig) => {
    const old = keep?.byName.get(name);
    const value = latest?.get(name)?.value;
    const guessed = typedByValue(config, tag) && (value === undefined || value === null);
    if (old && (!old.guessed || guessed)) return def.add(old);
    const type = dataTypeOf(config, tag, value);
    // a guessed datatype that the first value shows wrong gets a new alias: hosts never see one alias with two datatypes
    const alias = old && old.type === type ? old.alias : aliases.take();
    def.add(guessed ? { name, alias, type, guessed } : { name, alias, type });
  };
  for (const [key, tag] of Object.entries(tags)) add(tag.name ?? key, tag);
  if (Object.keys(tags).length === 0 && latest) for (const name of latest.keys()) add(name, {} as TagConfig);
  return def;
}

/** OPC DA quality codes, as Ignition reads the "Quality" property; only readings that are not good carry it */
const QUALITY_CODE: Record<Quality, number> = { good: 192, uncertain: 64, bad: 0 };

function quality(q: Quality): UMetric['properties'] | undefined {
  return q === 'good' ? undefined : { Quality: { type: 'Int32', value: QUALITY_CODE[q] } };
}

/** DBIRTH metrics: name, alias, datatype and the current value (is_null when there is none) */
export function birthMetrics(def: DeviceDefinition, latest: ReadonlyMap<string, Reading> | undefined, now: number): UMetric[] {
  const out: UMetric[] = [];
  for (const m of def.byName.values()) {
    const r = latest?.get(m.name);
    const metric: UMetric = { name: m.name, alias: m.alias, type: m.type, value: r ? metricValue(m.type, r.value) : null, timestamp: r?.ts ?? now };
    const props = r && quality(r.quality);
    if (props) metric.properties = props;
    out.push(metric);
  }
  return out;
}

/** DDATA metrics by alias only, each with its own timestamp; readings of tags the birth does not know are left to the caller */
export function dataMetric(m: MetricDef, r: Reading, historical: boolean): UMetric {
  const metric: UMetric = { alias: m.alias, type: m.type, value: metricValue(m.type, r.value as RawValue), timestamp: r.ts };
  if (historical) metric.isHistorical = true;
  const props = quality(r.quality);
  if (props) metric.properties = props;
  return metric;
}
