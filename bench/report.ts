// The benchmark's rows, the fixed-column table and the gateway/naive ratios.

export interface Row {
  name: string;
  readings_per_s: number | null;
  /** values of the source (ticks of a variable, counter lines) found on the subscriber, each once */
  found?: number | null;
  /** values of the source never found on the subscriber */
  lost: number | null;
  /** values found more than once */
  duplicates?: number | null;
  cpu_pct: number | null;
  rss_mb: number | null;
  loop_p99_ms: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  msgs_per_s: number | null;
  note: string;
  /** what else was measured: lines sent, window, CPU seconds, … */
  detail?: Record<string, unknown>;
}

export interface Ratio {
  what: string;
  /** gateway / naive */
  value: number | null;
}

const COLUMNS: Array<{ key: keyof Row; title: string; width: number; digits?: number }> = [
  { key: 'name', title: 'name', width: 36 },
  { key: 'readings_per_s', title: 'readings/s', width: 11, digits: 0 },
  { key: 'found', title: 'found', width: 9, digits: 0 },
  { key: 'lost', title: 'missing', width: 8, digits: 0 },
  { key: 'duplicates', title: 'dups', width: 5, digits: 0 },
  { key: 'cpu_pct', title: 'cpu %', width: 7, digits: 1 },
  { key: 'rss_mb', title: 'rss MB', width: 7, digits: 1 },
  { key: 'loop_p99_ms', title: 'loop p99', width: 9, digits: 1 },
  { key: 'p50_ms', title: 'p50 ms', width: 8, digits: 1 },
  { key: 'p99_ms', title: 'p99 ms', width: 8, digits: 1 },
  { key: 'msgs_per_s', title: 'msgs/s', width: 9, digits: 0 },
  { key: 'note', title: 'note', width: 0 },
];

function cell(value: unknown, digits: number | undefined): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return digits === undefined ? String(value) : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return String(value);
}

export function table(rows: Row[], ratios: Ratio[], footnotes: string[] = []): string {
  const line = (cells: string[]) =>
    cells.map((c, i) => {
      const col = COLUMNS[i]!;
      if (col.width === 0) return c;
      return i === 0 ? c.padEnd(col.width) : c.padStart(col.width);
    }).join('  ').trimEnd();
  const out = [line(COLUMNS.map((c) => c.title))];
  out.push('-'.repeat(out[0]!.length + 10));
  for (const r of rows) out.push(line(COLUMNS.map((c) => cell(r[c.key], c.digits))));
  out.push('');
  out.push('gateway / naive: ' + ratios.map((r) => `${r.what} ${r.value === null ? '—' : formatRatio(r.value)}`).join('; '));
  for (const f of footnotes) out.push(f);
  return out.join('\n');
}

function formatRatio(v: number): string {
  if (v >= 1) return `×${v.toFixed(1)}`;
  return `×${v.toPrecision(2)} (1/${(1 / v).toFixed(0)})`;
}

/** readings delivered per CPU-second, gateway over naive */
export function perCpuRatio(gw: Row | undefined, naive: Row | undefined): number | null {
  const rate = (r: Row | undefined) =>
    r && r.readings_per_s !== null && r.cpu_pct !== null && r.cpu_pct > 0 ? r.readings_per_s / (r.cpu_pct / 100) : null;
  const a = rate(gw), b = rate(naive);
  return a !== null && b !== null && b > 0 ? a / b : null;
}

/** MQTT messages per reading delivered, gateway over naive (the same as msgs/s when both deliver the same readings) */
export function messagesRatio(gw: Row | undefined, naive: Row | undefined): number | null {
  const per = (r: Row | undefined) =>
    r && r.msgs_per_s !== null && r.readings_per_s !== null && r.readings_per_s > 0 ? r.msgs_per_s / r.readings_per_s : null;
  const a = per(gw), b = per(naive);
  return a !== null && b !== null && b > 0 ? a / b : null;
}
