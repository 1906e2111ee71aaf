// Splits the byte stream of a serial port into lines. Fed with the Buffers of
// the port's 'data' events directly (no stream Transform): a complete line
// inside one chunk is decoded straight from that chunk, and only an unfinished
// line is copied into the splitter's own buffer, which never grows past
// max_line_length whatever the device sends.

export type LineEncoding = 'utf8' | 'ascii' | 'latin1';

export interface LineSplitterOptions {
  delimiter: string;
  encoding: LineEncoding;
  /** bytes before the delimiter (a "\r" before a "\n" delimiter included) */
  maxLineLength: number;
}

const INITIAL_CAPACITY = 256;
const SAMPLE_BYTES = 32;

export class LineSplitter {
  private readonly delim: Buffer;
  private readonly decodeAs: BufferEncoding;
  private readonly stripCR: boolean;
  private readonly stripLF: boolean;
  private readonly max: number;
  private readonly maxCapacity: number;
  private buf: Buffer;
  private len = 0;
  /** inside an overlong line: bytes are dropped up to the next delimiter */
  private discarding = false;

  constructor(
    options: LineSplitterOptions,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: (reason: string, sample: string) => void,
  ) {
    // ascii is decoded as latin1 so that bytes >= 0x80 stay visible to the
    // noise check instead of having their high bit silently cleared
    this.decodeAs = options.encoding === 'utf8' ? 'utf8' : 'latin1';
    this.delim = Buffer.from(options.delimiter, this.decodeAs);
    if (this.delim.length === 0) throw new RangeError('empty delimiter');
    // a device that ends lines with "\r\n" works with either "\n" or "\r" configured
    this.stripCR = options.delimiter === '\n';
    this.stripLF = options.delimiter === '\r';
    this.max = Math.max(1, Math.floor(options.maxLineLength));
    // while discarding, the last delimiter-length - 1 bytes are kept to find a
    // delimiter that straddles two chunks
    this.maxCapacity = Math.max(this.max, this.delim.length - 1);
    this.buf = Buffer.allocUnsafe(Math.min(INITIAL_CAPACITY, this.maxCapacity));
  }

  /** bytes of an unfinished line held right now */
  get buffered(): number {
    return this.len;
  }

  /** bytes allocated for unfinished lines; never more than max_line_length */
  get capacity(): number {
    return this.buf.length;
  }

  /**
   * Splits chunk[from..], at most maxLines lines. Returns where it stopped:
   * chunk.length when the chunk is done, else the start of the next line,
   * to be passed back as `from` (nothing is held between the two calls).
   */
  push(chunk: Buffer, from = 0, maxLines = Infinity): number {
    const d = this.delim.length;
    let start = from;
    if (from === 0 && this.len > 0 && d > 1) start = this.straddling(chunk);
    let lines = 0;
    let idx = chunk.indexOf(this.delim, start);
    while (idx !== -1) {
      if (lines === maxLines) return start;
      this.complete(chunk, start, idx);
      lines++;
      start = idx + d;
      idx = chunk.indexOf(this.delim, start);
    }
    if (start < chunk.length) this.keep(chunk, start);
    return chunk.length;
  }

  /** drops an unfinished line, e.g. when the port closes */
  reset(): void {
    this.len = 0;
    this.discarding = false;
  }

  /**
   * A multi-byte delimiter may begin in the held bytes and end in this chunk:
   * the longest such overlap is the earliest delimiter. Returns where the
   * scan of the chunk continues.
   */
  private straddling(chunk: Buffer): number {
    const d = this.delim.length;
    for (let k = Math.min(d - 1, this.len); k >= 1; k--) {
      if (chunk.length < d - k) continue;
      if (this.buf.compare(this.delim, 0, k, this.len - k, this.len) !== 0) continue;
      if (chunk.compare(this.delim, k, d, 0, d - k) !== 0) continue;
      if (this.discarding) this.reset();
      else {
        this.len -= k;
        this.complete(chunk, 0, 0);
      }
      return d - k;
    }
    return 0;
  }

  /** the line is the held bytes followed by chunk[from, to) */
  private complete(chunk: Buffer, from: number, to: number): void {
    if (this.discarding) {
      this.reset();
      return;
    }
    const n = this.len + (to - from);
    if (n > this.max) {
      this.overflow(chunk, from, to);
      this.len = 0;
      return;
    }
    let src = chunk;
    let s = from;
    let e = to;
    if (this.len > 0) {
      this.ensure(n);
      chunk.copy(this.buf, this.len, from, to);
      src = this.buf;
      s = 0;
      e = n;
      this.len = 0;
    }
    if (this.stripCR && e > s && src[e - 1] === 0x0d) e--;
    if (this.stripLF && e > s && src[s] === 0x0a) s++;
    if (e > s) this.onLine(src.toString(this.decodeAs, s, e));
  }

  /** holds chunk[from..] as the start of an unfinished line */
  private keep(chunk: Buffer, from: number): void {
    const rest = chunk.length - from;
    if (!this.discarding && this.len + rest > this.max) {
      this.overflow(chunk, from, chunk.length);
      this.discarding = true;
    }
    if (this.discarding) {
      this.keepTail(chunk, from);
      return;
    }
    this.ensure(this.len + rest);
    chunk.copy(this.buf, this.len, from);
    this.len += rest;
  }

  /** while discarding: only the last delimiter-length - 1 bytes are kept */
  private keepTail(chunk: Buffer, from: number): void {
    const want = this.delim.length - 1;
    const rest = chunk.length - from;
    if (want === 0) {
      this.len = 0;
    } else if (rest >= want) {
      this.ensure(want);
      chunk.copy(this.buf, 0, chunk.length - want);
      this.len = want;
    } else {
      const old = Math.min(this.len, want - rest);
      this.buf.copyWithin(0, this.len - old, this.len);
      this.ensure(old + rest);
      chunk.copy(this.buf, old, from);
      this.len = old + rest;
    }
  }

  private ensure(size: number): void {
    if (size <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.min(this.maxCapacity, Math.max(size, this.buf.length * 2)));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private overflow(chunk: Buffer, from: number, to: number): void {
    const head = Buffer.allocUnsafe(Math.min(SAMPLE_BYTES, this.len + (to - from)));
    const held = this.buf.copy(head, 0, 0, Math.min(this.len, head.length));
    chunk.copy(head, held, from, from + (head.length - held));
    this.onOverflow(`line longer than ${this.max} bytes`, escapeSample(head.toString(this.decodeAs)));
  }
}

/** a short, printable excerpt of bad input for logs */
export function escapeSample(text: string, maxChars = SAMPLE_BYTES): string {
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  const escaped = cut.replace(/[^\x20-\x5b\x5d-\x7e]/g, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return text.length > maxChars ? `${escaped}...` : escaped;
}
