// Durations and sizes as users write them. Pure functions.

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** the longest timer Node keeps: a longer one silently fires after 1 ms */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** ms from a number of ms or "250ms" / "5s" / "2m" / "1h"; undefined when invalid or longer than ~24.8 days */
export function parseDuration(input: unknown): number | undefined {
  let ms: number | undefined;
  if (typeof input === 'number') ms = Number.isFinite(input) && input >= 0 ? input : undefined;
  else if (typeof input === 'string') {
    const m = DURATION.exec(input);
    ms = m ? Math.round(Number(m[1]) * DURATION_MS[m[2]!]!) : undefined;
  }
  return ms !== undefined && ms <= MAX_DURATION_MS ? ms : undefined;
}

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1000, MB: 1000 ** 2, GB: 1000 ** 3,
  k: 1024, K: 1024, M: 1024 ** 2, G: 1024 ** 3,
};

/** bytes from a number of bytes or "64KiB" / "256MiB"; undefined when invalid */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const m = SIZE.exec(input);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * SIZE_BYTES[m[2] ?? 'B']!);
}
