/**
 * Seeded randomness for the phantom generator. Everything random in a phantom flows from one
 * 32-bit seed through these functions, so the same seed gives the same bytes on every run.
 * Math.random is never used.
 */

import { splitmix32 } from '../util/random.ts';

/** Spreads nearby seeds (1, 2, 3 …) into unrelated states (util/random.ts splitmix32, stepped). */
export function mixSeed(...parts: number[]): number {
  return splitmix32(parts, true);
}

/** sfc32: small, fast and statistically sound enough for textures and shape parameters. */
export class Rng {
  /** sfc32 state a, b, c, counter d; an Int32Array so that updates never box numbers */
  readonly #s = new Int32Array(4);

  constructor(seed: number) {
    this.#s[0] = mixSeed(seed, 1);
    this.#s[1] = mixSeed(seed, 2);
    this.#s[2] = mixSeed(seed, 3);
    this.#s[3] = 1;
    for (let i = 0; i < 12; i++) this.#next();
  }

  #next(): number {
    const s = this.#s;
    const a = s[0]!;
    const b = s[1]!;
    const c = s[2]!;
    const d = s[3]!;
    const t = (((a + b) | 0) + d) | 0;
    s[3] = d + 1;
    s[0] = b ^ (b >>> 9);
    s[1] = c + (c << 3);
    const rotated = (c << 21) | (c >>> 11);
    s[2] = rotated + t;
    return t;
  }

  /** uniform 32-bit draw; as a signed int32 so that it never needs a heap number */
  int32(): number {
    return this.#next();
  }

  /** uniform in [0, 1) */
  next(): number {
    return (this.#next() >>> 0) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** log-uniform in [lo, hi): for sizes and scales, where ratios matter more than differences */
  logUniform(lo: number, hi: number): number {
    return lo * Math.exp(Math.log(hi / lo) * this.next());
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A child generator whose stream does not depend on how much of this one is used later. */
  fork(tag: number): Rng {
    return new Rng(mixSeed(this.#next() >>> 0, tag));
  }
}

const GAUSS_BITS = 14;
const GAUSS_SIZE = 1 << GAUSS_BITS;

/** Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/**
 * Standard normal deviates by table look-up: image noise needs millions of them per volume and
 * Box–Muller's log/sqrt/cos would dominate the generation time. The table holds the quantiles
 * of 2^14 equal-probability bins (tails cut at ±3.9σ, invisible in an image).
 */
export const GAUSS_TABLE: Float32Array = (() => {
  const table = new Float32Array(GAUSS_SIZE);
  for (let i = 0; i < GAUSS_SIZE; i++) table[i] = normalQuantile((i + 0.5) / GAUSS_SIZE);
  return table;
})();

/** Two independent table indices from one 32-bit draw. */
export const GAUSS_MASK = GAUSS_SIZE - 1;
export const GAUSS_SHIFT = 16;
