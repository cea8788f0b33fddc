/**
 * Seeded pseudo-random numbers. Everything random in training and data generation draws from
 * these, so a run is reproducible from its seed and a resumed run continues the same stream.
 */

/**
 * SplitMix32-style hash of keys (a seed and a stream position): stateless, so any step can be
 * replayed. `stepped` adds the golden-ratio increment after each key, as the phantom generator's
 * seeds were defined (phantom/random.ts mixSeed): one function, two fixed variants, because
 * phantoms and training streams already published by seed must stay byte-identical.
 */
export function splitmix32(keys: readonly number[], stepped = false): number {
  let h = 0x9e3779b9;
  for (const key of keys) {
    h = Math.imul(h ^ (key >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    if (stepped) h = (h + 0x9e3779b9) | 0;
  }
  return h >>> 0;
}

/** The training streams' hash of a seed and a stream position (splitmix32, unstepped). */
export function hash32(...keys: number[]): number {
  return splitmix32(keys);
}

/** Mulberry32: small, fast, good enough for sampling and augmentation. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generator for one (seed, ...position) pair, e.g. rngAt(seed, epoch, step). */
export function rngAt(seed: number, ...position: number[]): () => number {
  return mulberry32(hash32(seed, ...position));
}

/** Standard normal deviates by Box–Muller. */
export function gaussian(random: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    let u = 0;
    while (u === 0) u = random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
