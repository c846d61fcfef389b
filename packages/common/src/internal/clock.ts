import { InvalidArgumentError } from './errors.js';

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

/** Already settled: `then` on it queues a job for the end of the synchronous run (~15 ns). */
const SETTLED = Promise.resolve();

/**
 * A `Clock` that reads `clock` at most once per synchronous run: the first reading after the
 * microtask queue drained is kept until it drains again, so every caller in one turn of the
 * event loop (a socket read and the calls it completes, a timer) sees the same time. What
 * Envoy's `approximateMonotonicTime()` and HAProxy's `now_ms` are: a data plane that reads the
 * clock a dozen times per call at ~40 ns a reading (`performance.now()`) pays for one per
 * turn instead. The cost is resolution: a reading trails the true time by at most the work
 * done since it was taken in the same run (a batch of frames from one read), so a deadline set
 * from it may end that much sooner; readings never go backwards.
 *
 * For deadlines, backoffs and latencies measured across turns. Not for timing work inside one
 * synchronous run (it reads zero), nor for a loop that spins until the clock moves (it never
 * does within the run).
 */
export function perTurn(clock: Clock): Clock {
  if (typeof clock !== 'object' || clock === null || typeof clock.now !== 'function') {
    throw new InvalidArgumentError('clock', clock, 'a Clock (an object with now())');
  }
  return new TurnClock(clock);
}

class TurnClock implements Clock {
  readonly #clock: Clock;
  #reading = 0;
  #fresh = false;
  readonly #forget = (): void => {
    this.#fresh = false;
  };

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  now(): number {
    if (this.#fresh) return this.#reading;
    this.#reading = this.#clock.now();
    this.#fresh = true;
    void SETTLED.then(this.#forget);
    return this.#reading;
  }
}

/** `systemClock` read at most once per synchronous run (`perTurn`): the data plane's clock. */
export const turnClock: Clock = perTurn(systemClock);

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
