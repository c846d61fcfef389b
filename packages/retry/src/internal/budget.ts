import { type Clock, InvalidArgumentError, LayoutMismatchError, systemClock } from '@engram/common';
import {
  BUDGET_BYTES,
  EPOCH_UNUSED,
  HDR_DEPOSIT,
  HDR_MAGIC,
  HDR_ORIGIN_F64,
  HDR_RESERVE,
  HDR_SLICES,
  HDR_TOTAL,
  HDR_TTL_MS,
  HDR_VERSION,
  HEADER_WORDS,
  LAYOUT_VERSION,
  MAGIC,
  SLICE_BALANCE,
  SLICE_EPOCH,
  SLICE_WORDS,
  SLICES,
  WITHDRAWAL,
} from './budget-layout.js';

export interface RetryBudgetOptions {
  /** Retries allowed as a share of requests over the window, in [0, 1]. Default 0.2 (20 %). */
  readonly ratio?: number | undefined;
  /** Retries always allowed per second of the window, on top. Default 10 per second. */
  readonly minRetriesPerSecond?: number | undefined;
  /** How long a deposit or withdrawal counts. Default 10_000 ms. */
  readonly ttlMs?: number | undefined;
  /** Time source. Default `systemClock` (monotonic); shared budgets need one timeline across threads. */
  readonly clock?: Clock | undefined;
}

export const RETRY_BUDGET_DEFAULTS = Object.freeze({
  ratio: 0.2, // 20 %
  minRetriesPerSecond: 10, // retries per second
  ttlMs: 10 * 1000, // 10 s
});
const MIN_TTL_MS = 100;
const MAX_TTL_MS = 10 * 60 * 1000; // 10 min
const MAX_MIN_RETRIES_PER_SECOND = 10_000;

/** What `retry()` needs from a budget; both budgets implement it. */
export interface RetryBudgetLike {
  /** Counts one original request (a deposit). */
  recordRequest(): void;
  /** Takes one retry token; false when the budget is exhausted. */
  tryRetry(): boolean;
}

/** Shared core; the window lives in an Int32Array over any buffer. */
class BudgetCore implements RetryBudgetLike {
  readonly #mem: Int32Array;
  readonly #clock: Clock;
  readonly #origin: number;
  readonly #sliceMs: number;
  readonly #deposit: number;
  readonly #reserve: number;

  constructor(buffer: ArrayBufferLike, create: boolean, options: RetryBudgetOptions) {
    const ratio = options.ratio ?? RETRY_BUDGET_DEFAULTS.ratio;
    const minPerSecond = options.minRetriesPerSecond ?? RETRY_BUDGET_DEFAULTS.minRetriesPerSecond;
    const ttlMs = options.ttlMs ?? RETRY_BUDGET_DEFAULTS.ttlMs;
    if (!(ratio >= 0 && ratio <= 1)) throw new InvalidArgumentError('ratio', ratio, 'in [0, 1]');
    if (!(minPerSecond >= 0 && minPerSecond <= MAX_MIN_RETRIES_PER_SECOND)) {
      throw new InvalidArgumentError(
        'minRetriesPerSecond',
        minPerSecond,
        `in [0, ${MAX_MIN_RETRIES_PER_SECOND}]`,
      );
    }
    if (!(Number.isInteger(ttlMs) && ttlMs >= MIN_TTL_MS && ttlMs <= MAX_TTL_MS)) {
      throw new InvalidArgumentError(
        'ttlMs',
        ttlMs,
        `an integer in [${MIN_TTL_MS}, ${MAX_TTL_MS}]`,
      );
    }
    this.#clock = options.clock ?? systemClock;
    this.#sliceMs = ttlMs / SLICES;
    this.#deposit = Math.round(ratio * WITHDRAWAL);
    this.#reserve = Math.round(minPerSecond * (ttlMs / 1000) * WITHDRAWAL);
    if (!create && buffer.byteLength < BUDGET_BYTES) {
      throw new LayoutMismatchError(
        'retry budget',
        `it holds ${buffer.byteLength} bytes, a budget takes ${BUDGET_BYTES}`,
      );
    }
    const mem = new Int32Array(buffer, 0, BUDGET_BYTES / 4);
    const f64 = new Float64Array(buffer, 0, HEADER_WORDS / 2);
    if (create) {
      mem[HDR_MAGIC] = MAGIC;
      mem[HDR_VERSION] = LAYOUT_VERSION;
      mem[HDR_DEPOSIT] = this.#deposit;
      mem[HDR_RESERVE] = this.#reserve;
      mem[HDR_TTL_MS] = ttlMs;
      mem[HDR_SLICES] = SLICES;
      mem[HDR_TOTAL] = 0;
      f64[HDR_ORIGIN_F64] = this.#clock.now();
      for (let i = 0; i < SLICES; i++) {
        mem[HEADER_WORDS + i * SLICE_WORDS + SLICE_EPOCH] = EPOCH_UNUSED;
        mem[HEADER_WORDS + i * SLICE_WORDS + SLICE_BALANCE] = 0;
      }
    } else {
      if (mem[HDR_MAGIC] !== MAGIC || mem[HDR_VERSION] !== LAYOUT_VERSION) {
        throw new LayoutMismatchError(
          'retry budget',
          'bad magic or layout version (another structure, or another version of @engram/retry)',
        );
      }
      const check = (name: string, mine: number, theirs: number | undefined): void => {
        if (mine !== theirs) {
          throw new LayoutMismatchError(
            'retry budget',
            `${name} differs from the shared budget's: options give ${mine}, buffer holds ${theirs}`,
          );
        }
      };
      check('ttlMs', ttlMs, mem[HDR_TTL_MS]);
      check('ratio (as deposit units)', this.#deposit, mem[HDR_DEPOSIT]);
      check('minRetriesPerSecond (as reserve units)', this.#reserve, mem[HDR_RESERVE]);
    }
    this.#mem = mem;
    this.#origin = f64[HDR_ORIGIN_F64]!;
  }

  #slice(): number {
    const elapsed = this.#clock.now() - this.#origin;
    return elapsed > 0 ? Math.floor(elapsed / this.#sliceMs) | 0 : 0;
  }

  /** Empties slot `at` if it still holds `epoch`, moving it to `next`; true if this thread did. */
  #recycle(at: number, epoch: number, next: number): boolean {
    const mem = this.#mem;
    const stale = Atomics.load(mem, at + SLICE_BALANCE);
    if (Atomics.compareExchange(mem, at + SLICE_EPOCH, epoch, next) !== epoch) return false;
    if (stale !== 0) {
      Atomics.sub(mem, at + SLICE_BALANCE, stale);
      Atomics.sub(mem, HDR_TOTAL, stale);
    }
    return true;
  }

  /** Index of the balance word of slice `cur`, recycling slots that left the window. */
  #current(cur: number): number {
    const mem = this.#mem;
    const at = HEADER_WORDS + (cur % SLICES) * SLICE_WORDS;
    const epoch = Atomics.load(mem, at + SLICE_EPOCH);
    if (epoch !== cur && cur - epoch > 0 && this.#recycle(at, epoch, cur)) {
      // Once per slice period: retire every other slot that has left the window.
      for (let i = 0; i < SLICES; i++) {
        const other = HEADER_WORDS + i * SLICE_WORDS;
        if (other === at) continue;
        const e = Atomics.load(mem, other + SLICE_EPOCH);
        if (e !== EPOCH_UNUSED && cur - e >= SLICES) this.#recycle(other, e, EPOCH_UNUSED);
      }
    }
    return at + SLICE_BALANCE;
  }

  recordRequest(): void {
    const deposit = this.#deposit;
    if (deposit === 0) return;
    Atomics.add(this.#mem, this.#current(this.#slice()), deposit);
    Atomics.add(this.#mem, HDR_TOTAL, deposit);
  }

  tryRetry(): boolean {
    const mem = this.#mem;
    const idx = this.#current(this.#slice());
    const before = Atomics.sub(mem, HDR_TOTAL, WITHDRAWAL);
    if (this.#reserve + before - WITHDRAWAL >= 0) {
      Atomics.sub(mem, idx, WITHDRAWAL);
      return true;
    }
    Atomics.add(mem, HDR_TOTAL, WITHDRAWAL);
    return false;
  }

  /** Whole retries the budget would allow right now (for metrics; racy by nature). */
  available(): number {
    this.#current(this.#slice());
    const total = this.#reserve + Atomics.load(this.#mem, HDR_TOTAL);
    return total > 0 ? Math.floor(total / WITHDRAWAL) : 0;
  }
}

/**
 * Finagle-style retry budget for one thread: retries may be `ratio` of the requests of the
 * last `ttlMs`, plus `minRetriesPerSecond * ttlMs / 1000` always. Allocation-free hot path.
 */
export class RetryBudget extends BudgetCore {
  constructor(options: RetryBudgetOptions = {}) {
    super(new ArrayBuffer(BUDGET_BYTES), true, options);
  }
}

export interface SharedRetryBudgetOptions extends RetryBudgetOptions {
  /** The `buffer` of an existing SharedRetryBudget (posted to this worker); options must match. */
  readonly buffer?: SharedArrayBuffer | undefined;
}

/** The same budget in a SharedArrayBuffer, drawn on by every thread of the process at once. */
export class SharedRetryBudget extends BudgetCore {
  /** Post this to workers and build `new SharedRetryBudget({ buffer, ...sameOptions })` there. */
  readonly buffer: SharedArrayBuffer;

  constructor(options: SharedRetryBudgetOptions = {}) {
    const existing = options.buffer;
    if (existing !== undefined && !(existing instanceof SharedArrayBuffer)) {
      throw new InvalidArgumentError('buffer', existing, 'a SharedArrayBuffer');
    }
    const buffer = existing ?? new SharedArrayBuffer(BUDGET_BYTES);
    super(buffer, existing === undefined, options);
    this.buffer = buffer;
  }

  /** Bytes a shared budget occupies. */
  static readonly byteLength = BUDGET_BYTES;
}
