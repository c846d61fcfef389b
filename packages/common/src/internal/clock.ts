/**
 * Milliseconds on a monotonic timeline shared by all threads of a process. The default,
 * `systemClock`, is one (see there); a test injects a fake one so that nothing sleeps.
 */
export interface Clock {
  now(): number;
}

/** Returns a number in [0, 1), like Math.random. */
export type Random = () => number;

/** The `performance` object whose `timeOrigin` is cached in `origin` (a getter: ~20 ns a read). */
let originOf: typeof performance | undefined;
let origin = 0;

/**
 * `performance.timeOrigin + performance.now()`: monotonic within a thread (a wall-clock step
 * neither stretches nor expires deadlines and backoffs), and on one timeline across threads
 * (each thread's origin is its start on the epoch scale), unlike bare `performance.now()`.
 * `performance` is looked up per call so that fake timers that replace it are honoured; its
 * `timeOrigin`, fixed for an object, is read again only when the object changed.
 */
export const systemClock: Clock = Object.freeze({
  now: () => {
    const p = performance;
    if (p !== originOf) {
      originOf = p;
      origin = p.timeOrigin;
    }
    return origin + p.now();
  },
});

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
