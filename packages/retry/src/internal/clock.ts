/** Milliseconds on some timeline. The default, `Date.now()`, is shared by all threads. */
export interface Clock {
  now(): number;
}

/** Returns a number in [0, 1), like Math.random. */
export type Random = () => number;

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/** A small, fast, seeded generator (mulberry32) for reproducible jitter in tests and benches. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
