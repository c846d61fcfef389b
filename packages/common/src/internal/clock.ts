/**
 * Milliseconds on a monotonic timeline shared by all threads of a process. The default,
 * `systemClock`, is one (see there); a test injects a fake one so that nothing sleeps.
 */
export interface Clock {
  now(): number;
}

/** Returns a number in [0, 1), like Math.random. */
export type Random = () => number;

/**
 * `performance.timeOrigin + performance.now()`: monotonic within a thread (a wall-clock step
 * neither stretches nor expires deadlines and backoffs), and on one timeline across threads
 * (each thread's origin is its start on the epoch scale), unlike bare `performance.now()`.
 * Looked up per call so that fake timers that replace `performance` are honoured.
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.timeOrigin + performance.now(),
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
