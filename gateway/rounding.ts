// Numbers meant as decimals, held as binary doubles (SPEC §5 "Honest values").
// A device sends "21.7", a user writes `deadband: 0.2`: both are decimals, and
// each double is only the nearest binary fraction to it. Comparing or rounding
// the doubles as if they were the decimals moves edges: 21.7 - 21.5 is
// 0.19999999999999929, and 2.03 * 10 is 20.299999999999997.
//
// How far a double can be from the decimal it stands for: parsing the text is
// off by at most half a unit in the last place (ulp) of the value; `scale`
// and `offset` add half an ulp of their result each (a large `offset` adds
// half an ulp of itself, which is why it counts as a magnitude); subtracting
// two values adds half an ulp of the larger. That is about 3 ulps of the
// largest magnitude involved. An ulp of x is at most |x| * 2^-52, so
// |x| * 2^-49 is 8 ulps: a margin over those 3 that still lies far below
// any difference a sensor means (at 123456.78 it is 2e-10).
//
// The tolerance is capped at 2^-10 of the step it protects (the deadband, the
// last decimal kept): where 8 ulps would be more, the double cannot hold that
// step to begin with (a deadband of 0.001 on 1e12), and an uncapped tolerance
// would let equal values through or round every fraction up.

/** the noise a few operations leave on a double, as a fraction of its magnitude */
export const DECIMAL_NOISE = 2 ** -49;
/** the most of a step the tolerance may take */
const MAX_SHARE = 2 ** -10;

/**
 * |a - b| >= d for the decimals a, b and d stand for: a change of exactly d
 * passes, whatever binary noise the three carry. `floor` is a magnitude the
 * values may have lost by cancellation (the tag's |offset|) and at least d.
 */
export function reachesBand(a: number, b: number, d: number, floor: number): boolean {
  const m = Math.max(Math.abs(a), Math.abs(b), floor);
  return Math.abs(a - b) >= d - Math.min(m * DECIMAL_NOISE, d * MAX_SHARE);
}

/** every double from 2^52 up is a whole number: x * 10^k has no fraction left to round */
const WHOLE = 2 ** 52;

/**
 * x rounded to k decimal places, half away from zero, as the double nearest
 * to that decimal (so String() prints at most k decimals: 20.3, not
 * 20.299999999999997). `factor` is 10^k (k <= 15, so it is exact); `floor`
 * is the magnitude x may have lost by cancellation, times factor (|offset| *
 * 10^k). No string is built: this runs per reading.
 */
export function roundToDecimals(x: number, factor: number, floor: number): number {
  const y = Math.abs(x) * factor;
  if (!(y < WHOLE)) return x; // also NaN and Infinity
  let n = Math.floor(y);
  // y - n is exact. The product carries x's noise and its own rounding: a
  // fraction short of .5 by no more than that noise was a half in decimal
  // (1.005 * 100 is 100.49999999999999), and a half rounds away from zero.
  if (y - n >= 0.5 - Math.min(Math.max(y, floor) * DECIMAL_NOISE, MAX_SHARE)) n += 1;
  if (n === 0) return 0; // never -0
  // n and factor are exact, so the quotient is the double nearest to n / 10^k
  const r = n / factor;
  return x < 0 ? -r : r;
}
