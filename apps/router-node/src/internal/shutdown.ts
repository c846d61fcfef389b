import type { Timers } from './timers.js';

/** Where a router is in its shutdown; `serving` until one starts. */
export const SHUTDOWN_PHASE = Object.freeze({
  Serving: 'serving',
  /** The drain window: health says NOT_SERVING, calls and connections are still served. */
  Draining: 'draining',
  /** GOAWAY sent, not accepting: calls in flight finish up to the grace period. */
  Closing: 'closing',
  Closed: 'closed',
} as const);
export type ShutdownPhase = (typeof SHUTDOWN_PHASE)[keyof typeof SHUTDOWN_PHASE];

/** What each phase does; the I/O side of a shutdown. */
export interface ShutdownSteps {
  /** Starts the drain window: health NOT_SERVING (load balancers stop sending), still serving. */
  notServing(): void;
  /** GOAWAY on every connection, stop accepting, wait for calls in flight up to `graceMs`,
   * stop everything; resolves with the calls abandoned. */
  close(graceMs: number): Promise<number>;
}

export interface ShutdownTiming {
  /** How long the drain window lasts; 0 = none (straight to GOAWAY). */
  readonly drainMs: number;
  /** How long calls in flight may take once GOAWAY is sent. */
  readonly graceMs: number;
}

/**
 * Envoy-style shutdown: first a drain window in which health answers NOT_SERVING while calls
 * and new connections are still served (a load balancer needs a few probe intervals to take
 * the router out of rotation; refusing at once failed every call it still sent), then GOAWAY,
 * in-flight calls finish up to the grace period, and everything stops. `run` is idempotent:
 * a second call joins the first, and may shorten a running drain window (`drainMs` 0: a
 * failed start stops at once).
 */
export class Shutdown {
  readonly #steps: ShutdownSteps;
  readonly #timers: Timers;
  #phase: ShutdownPhase = SHUTDOWN_PHASE.Serving;
  #done: Promise<number> | null = null;
  #endWindow: (() => void) | null = null;

  constructor(steps: ShutdownSteps, timers: Timers) {
    this.#steps = steps;
    this.#timers = timers;
  }

  get phase(): ShutdownPhase {
    return this.#phase;
  }

  /** True from the start of a shutdown on: health is NOT_SERVING (readiness fails). */
  get draining(): boolean {
    return this.#phase !== SHUTDOWN_PHASE.Serving;
  }

  /** Runs the shutdown (or joins the one running); resolves with the calls abandoned. */
  run(timing: ShutdownTiming): Promise<number> {
    if (this.#done !== null) {
      if (timing.drainMs === 0) this.#endWindow?.();
      return this.#done;
    }
    this.#done = this.#run(timing);
    return this.#done;
  }

  async #run({ drainMs, graceMs }: ShutdownTiming): Promise<number> {
    this.#phase = SHUTDOWN_PHASE.Draining;
    this.#steps.notServing();
    if (drainMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.#timers.setTimeout(() => this.#endWindow?.(), drainMs);
        this.#endWindow = () => {
          this.#endWindow = null;
          this.#timers.clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#phase = SHUTDOWN_PHASE.Closing;
    try {
      return await this.#steps.close(graceMs);
    } finally {
      this.#phase = SHUTDOWN_PHASE.Closed;
    }
  }
}
