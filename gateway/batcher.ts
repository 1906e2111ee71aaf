// Collects a device's readings into the batch payload of SPEC §4. Each reading
// is encoded once, when it is added, and its UTF-8 size is counted then, so the
// byte limit never needs the whole payload measured again.
import type { BatchSettings } from '../config/schema.js';
import type { Batch, Clock, Reading, TimerHandle } from './types.js';

// seq is known only at flush time: room for the longest safe integer keeps a
// batch within max_bytes whatever seq turns out to be.
const SEQ_RESERVE = String(Number.MAX_SAFE_INTEGER).length;
const READINGS_OPEN = ',"readings":[';
const CLOSE = ']}';
const TS = ',"ts":';
const QUALITY_SUFFIX = {
  good: ',"quality":"good"}',
  uncertain: ',"quality":"uncertain"}',
  bad: ',"quality":"bad"}',
} as const;
/** tag names seen by one device are few; a flood of new ones must not grow the cache forever */
const MAX_CACHED_TAGS = 4096;

interface TagPrefix {
  /** {"tag":"<name>","value": */
  readonly text: string;
  /** the same after the comma that separates readings */
  readonly next: string;
  readonly bytes: number;
}

export interface BatcherOptions {
  gatewayId: string;
  deviceId: string;
  /** P/devices/<device>/data */
  topic: string;
  settings: BatchSettings;
  clock: Clock;
  /** the next batch number of the device, taken when a batch is closed */
  nextSeq: () => number;
  onBatch: (b: Batch) => void;
  /**
   * each reading as it is taken into the open batch: after the batch it does
   * not fit into was closed, before the batch that carries it can close. So
   * every batch carries exactly the readings announced since the one before.
   */
  onAdd?: (r: Reading) => void;
  /** the tags the device map lists: all of them stay cached, however many (default 4096) */
  knownTags?: number;
}

export class Batcher {
  private readonly head: string;
  /** bytes of everything but the readings: head, seq, brackets */
  private readonly frameBytes: number;
  private readonly prefixes = new Map<string, TagPrefix>();
  private readonly maxCachedTags: number;
  private readonly onTimer: () => void;

  private body = '';
  private count = 0;
  private bytes = 0;
  private firstTs = 0;
  private timer: TimerHandle | null = null;
  private tsSecond = -1;
  /** ,"ts":<the ts of tsSecond without its last three digits> */
  private tsHead = '';

  constructor(private readonly opts: BatcherOptions) {
    this.head = `{"gateway":${JSON.stringify(opts.gatewayId)},"device":${JSON.stringify(opts.deviceId)},"seq":`;
    this.frameBytes = utf8Length(this.head) + SEQ_RESERVE + READINGS_OPEN.length + CLOSE.length;
    this.maxCachedTags = Math.max(MAX_CACHED_TAGS, opts.knownTags ?? 0);
    this.onTimer = () => {
      this.timer = null;
      this.flush();
    };
  }

  /** readings in the open batch */
  get pending(): number {
    return this.count;
  }

  add(r: Reading): void {
    const prefix = this.prefixes.get(r.tag) ?? this.cachePrefix(r.tag);
    const v = r.value;
    let value: string;
    let valueBytes: number;
    if (typeof v === 'number') {
      value = numberText(v);
      valueBytes = value.length;
    } else if (typeof v === 'string') {
      value = stringText(v);
      valueBytes = stringTextBytes;
    } else if (v !== null && typeof v === 'object') {
      // JSON.stringify turns NaN inside arrays into null, as required
      value = JSON.stringify(v);
      valueBytes = utf8Length(value);
    } else {
      value = v === null ? 'null' : v ? 'true' : 'false';
      valueBytes = value.length;
    }
    // ts and quality: a cached head and a table entry, or the slow way for odd ts
    const ts = r.ts;
    let head: string;
    let tail: string;
    if (Number.isInteger(ts) && ts >= 1000 && ts < 1e15) {
      const second = Math.floor(ts / 1000);
      if (second !== this.tsSecond) {
        this.tsSecond = second;
        this.tsHead = TS + second;
      }
      head = this.tsHead;
      tail = TAILS[r.quality][ts - second * 1000]!;
    } else {
      head = TS + numberText(ts);
      tail = QUALITY_SUFFIX[r.quality];
    }
    const size = prefix.bytes + valueBytes + head.length + tail.length;

    const settings = this.opts.settings;
    // the comma before every reading but the first
    if (this.count > 0 && this.frameBytes + this.bytes + 1 + size > settings.max_bytes) this.flush();
    this.opts.onAdd?.(r);
    if (this.count === 0) {
      this.body = prefix.text + value + head + tail;
      this.bytes = size;
      this.firstTs = ts;
      this.count = 1;
      this.timer = this.opts.clock.setTimeout(this.onTimer, settings.max_wait);
    } else {
      this.body += prefix.next + value + head + tail;
      this.bytes += 1 + size;
      this.count++;
    }
    // a single reading over max_bytes goes alone
    if (this.count >= settings.max_readings || this.frameBytes + this.bytes > settings.max_bytes) this.flush();
  }

  /** closes the open batch now; nothing happens when it is empty */
  flush(): void {
    if (this.timer !== null) {
      this.opts.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.count === 0) return;
    const seq = this.opts.nextSeq();
    const payload = this.head + seq + READINGS_OPEN + this.body + CLOSE;
    const readings = this.count;
    const firstTs = this.firstTs;
    // reset before handing out, so onBatch may add again
    this.body = '';
    this.count = 0;
    this.bytes = 0;
    this.opts.onBatch({ device: this.opts.deviceId, seq, topic: this.opts.topic, payload, readings, firstTs });
  }

  /** flushes what is open and leaves no timer */
  stop(): void {
    this.flush();
  }

  private cachePrefix(tag: string): TagPrefix {
    if (this.prefixes.size >= this.maxCachedTags) this.prefixes.clear();
    const text = `{"tag":${JSON.stringify(tag)},"value":`;
    const p: TagPrefix = { text, next: ',' + text, bytes: utf8Length(text) };
    this.prefixes.set(tag, p);
    return p;
  }
}

const DIGITS3: string[] = [];
const DIGITS2: string[] = [];
for (let i = 0; i < 1000; i++) DIGITS3.push(String(i).padStart(3, '0'));
for (let i = 0; i < 100; i++) DIGITS2.push(String(i).padStart(2, '0'));
// String() of a 13-digit ts is slow, and the readings of one second share all
// but its last three digits: those and the quality come from a table, so a
// reading is four pieces of text.
const TAILS = {
  good: DIGITS3.map((d) => d + QUALITY_SUFFIX.good),
  uncertain: DIGITS3.map((d) => d + QUALITY_SUFFIX.uncertain),
  bad: DIGITS3.map((d) => d + QUALITY_SUFFIX.bad),
};

/**
 * A number as JSON: the text String() gives, non-finite as null. Shortest
 * round-trip formatting of a double is slow, and sensor values mostly have up
 * to three decimals. When k/1000 is exactly the double, it is the only decimal
 * of at most three places that rounds to it (doubles of this size lie far
 * closer together than 0.001), so its digits are the ones String() picks.
 */
export function numberText(v: number): string {
  if (Number.isInteger(v)) return String(v);
  if (!Number.isFinite(v)) return 'null';
  const k = Math.round(v * 1000);
  if (k / 1000 !== v || k >= 0x7fffffff || k <= -0x7fffffff) return String(v);
  const neg = k < 0;
  const a = neg ? -k : k;
  const whole = (a / 1000) | 0;
  const frac = a - whole * 1000;
  const decimals = frac % 100 === 0 ? String(frac / 100) : frac % 10 === 0 ? DIGITS2[frac / 10]! : DIGITS3[frac]!;
  return (neg ? '-' : '') + whole + '.' + decimals;
}

/** UTF-8 bytes of the last stringText() result, handed back without allocating a pair */
let stringTextBytes = 0;

/** a string as JSON; plain text (the usual case) is only quoted, in the same pass that counts its bytes */
export function stringText(s: string): string {
  let bytes = s.length + 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x22 || c === 0x5c) return escaped(s);
    } else if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      return escaped(s); // surrogates: pairs and lone ones are JSON.stringify's business
    } else {
      bytes += 2;
    }
  }
  stringTextBytes = bytes;
  return '"' + s + '"';
}

function escaped(s: string): string {
  const text = JSON.stringify(s);
  stringTextBytes = utf8Length(text);
  return text;
}

/** UTF-8 bytes of a string; lone surrogates count as the replacement character they become */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) { n += 1; continue; }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { n += 2; i++; continue; }
    }
    n += 2;
  }
  return n;
}

