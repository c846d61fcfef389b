import { BreakerCore, type BreakerSnapshot, type BreakerTransitions, REJECTED } from './core.js';
import { CircuitBreakerOpenError } from './errors.js';
import type { BreakerOptions, BreakerStateName, StateChangeListener } from './options.js';

/**
 * A single breaker for one thread (library users): the same state machine and rules as a
 * BreakerTable slot, over ordinary memory. Listeners receive slot 0.
 */
export class CircuitBreaker {
  readonly #core: BreakerCore;

  constructor(options: BreakerOptions = {}) {
    const buffer = new ArrayBuffer(BreakerCore.byteLength(1, options));
    this.#core = new BreakerCore({ kind: 'create', buffer, capacity: 1 }, options);
  }

  /** See BreakerTable.addListener (listeners receive slot 0). */
  addListener(listener: StateChangeListener): () => void {
    return this.#core.addListener(listener);
  }

  /** See BreakerTable.tryAcquire. */
  tryAcquire(): number {
    return this.#core.tryAcquire(0);
  }

  onSuccess(admission: number): void {
    this.#core.onSuccess(0, admission);
  }

  onFailure(admission: number): void {
    this.#core.onFailure(0, admission);
  }

  release(admission: number): void {
    this.#core.release(0, admission);
  }

  state(): BreakerStateName {
    return this.#core.state(0);
  }

  reset(): void {
    this.#core.reset(0);
  }

  /** The node recovered by another account (a health check): see `BreakerCore.recovered`. */
  recovered(): void {
    this.#core.recovered(0);
  }

  snapshot(): BreakerSnapshot {
    return this.#core.snapshotOf(0);
  }

  /** Transitions into each state since construction (a reset keeps them). */
  transitions(): BreakerTransitions {
    return this.#core.transitionsOf(0);
  }

  /**
   * Runs `fn` through the breaker: throws CircuitBreakerOpenError without calling it when
   * rejected; a rejection of `fn` counts as a failure unless `isFailure(error)` says otherwise,
   * in which case the permit is released without a verdict.
   */
  async execute<T>(
    fn: () => T | PromiseLike<T>,
    isFailure: (error: unknown) => boolean = () => true,
  ): Promise<T> {
    const admission = this.#core.tryAcquire(0);
    if (admission === REJECTED) throw new CircuitBreakerOpenError();
    let value: T;
    try {
      value = await fn();
    } catch (error) {
      if (isFailure(error)) this.#core.onFailure(0, admission);
      else this.#core.release(0, admission);
      throw error;
    }
    this.#core.onSuccess(0, admission);
    return value;
  }
}
