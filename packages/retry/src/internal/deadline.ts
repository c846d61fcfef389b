import { type Clock, InvalidArgumentError, systemClock } from '@engram/common';
import { AbortedError, DeadlineExceededError } from './errors.js';

/** Default deadline of an operation and all its attempts (the seed's). */
export const DEFAULT_DEADLINE_MS = 10 * 1000; // 10 s
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (~24.8 days)

/**
 * One absolute point in time for an operation and all its attempts, on an injected clock.
 * Immutable.
 */
export class Deadline {
  /** The deadline on the clock's timeline, ms (Infinity for none). */
  readonly at: number;
  readonly clock: Clock;

  constructor(at: number, clock: Clock = systemClock) {
    if (Number.isNaN(at)) throw new InvalidArgumentError('at', at, 'a number of ms');
    this.at = at;
    this.clock = clock;
  }

  /** A deadline `timeoutMs` from now. */
  static after(timeoutMs: number, clock: Clock = systemClock): Deadline {
    if (!(timeoutMs >= 0)) throw new InvalidArgumentError('timeoutMs', timeoutMs, 'a number >= 0');
    return new Deadline(clock.now() + timeoutMs, clock);
  }

  /** A deadline that never passes. */
  static never(clock: Clock = systemClock): Deadline {
    return new Deadline(Number.POSITIVE_INFINITY, clock);
  }

  /** ms left, never negative (Infinity for none). */
  remaining(): number {
    const left = this.at - this.clock.now();
    return Math.max(left, 0);
  }

  expired(): boolean {
    return this.clock.now() >= this.at;
  }

  /** The earlier of this deadline and `timeoutMs` from now (e.g. a per-attempt deadline). */
  within(timeoutMs: number): Deadline {
    const at = this.clock.now() + timeoutMs;
    return at < this.at ? new Deadline(at, this.clock) : this;
  }

  /**
   * The deadline as grpc-js's `deadline` call option: ms since the Unix epoch (grpc-js accepts
   * `Date | number`; Infinity means none). Always converted through `Date.now()`: grpc-js
   * compares it with the wall clock, and no clock here (not even the monotonic `systemClock`,
   * after a wall-clock step) is guaranteed to be on the wall clock's timeline.
   */
  toGrpcDeadline(): number {
    if (this.at === Number.POSITIVE_INFINITY) return this.at;
    return Date.now() + this.remaining();
  }

  /** Throws DeadlineExceededError(attempts, cause) if the deadline has passed. */
  throwIfExpired(attempts = 0, cause?: unknown): void {
    if (this.expired()) throw new DeadlineExceededError(attempts, cause);
  }

  /**
   * Waits `ms`, but never past the deadline: when the deadline comes first the promise rejects
   * with DeadlineExceededError at the deadline. Rejects with AbortedError (cause: the signal's
   * reason) as soon as `signal` aborts. Leaves no timer or listener behind either way.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (!(ms >= 0)) return Promise.reject(new InvalidArgumentError('ms', ms, 'a number >= 0'));
    if (signal?.aborted) return Promise.reject(new AbortedError(0, signal.reason));
    const left = this.remaining();
    const cut = ms >= left;
    if (cut && left === 0) return Promise.reject(new DeadlineExceededError());
    const wait = Math.min(cut ? left : ms, MAX_TIMER_MS);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new AbortedError(0, signal?.reason));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        if (cut) reject(new DeadlineExceededError());
        else resolve();
      }, wait);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
