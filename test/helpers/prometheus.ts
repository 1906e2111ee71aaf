// A small reader of the Prometheus text exposition format (what a scraper
// sees): every sample by its series (name and sorted labels) and every
// family's TYPE. Strict enough to fail on a malformed line.

export interface Exposition {
  /** 'name{a="x",b="y"}' (labels sorted; no braces without labels) → value */
  samples: Map<string, number>;
  /** family name → counter, gauge, histogram, summary, untyped */
  types: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;

export function parseExposition(text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      else if (!/^# HELP \S+ /.test(line)) throw new Error(`malformed comment line: ${line}`);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`malformed sample line: ${line}`);
    const labels: string[] = [];
    if (m[2]) {
      LABEL.lastIndex = 0;
      let l: RegExpExecArray | null;
      let end = 0;
      while ((l = LABEL.exec(m[2])) !== null) {
        labels.push(`${l[1]}="${l[2]}"`);
        end = LABEL.lastIndex;
      }
      if (end !== m[2].length) throw new Error(`malformed labels: ${line}`);
    }
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan")
    const special = /^([+-]?)(inf|infinity|nan)$/i.exec(m[3]!);
    const value = special ? (special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(m[3]);
    if (Number.isNaN(value) && !special) throw new Error(`malformed value: ${line}`);
    samples.set(labels.length ? `${m[1]}{${labels.sort().join(',')}}` : m[1]!, value);
  }
  return { samples, types };
}
