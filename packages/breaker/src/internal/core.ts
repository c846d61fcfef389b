/**
 * Why this module is long (~520 lines): it is one state machine over shared memory, every
 * transition one compare-and-swap on a packed state word; the CAS loops and the probe-permit
 * protocol rely on one ordering argument (layout.ts) and are reviewed together. The trip
 * rules, the layout and the options live in their own modules.
 */
import { type Clock, InvalidArgumentError, LayoutMismatchError } from '@engram/common';
import {
  byteLengthFor,
  CLOSED,
  diff30,
  HALF_OPEN,
  HDR_CAPACITY,
  HDR_HALF_OPEN_PROBES,
  HDR_MAGIC,
  HDR_ORIGIN_F64,
  HDR_RULE_WORDS,
  HDR_RULES_FINGERPRINT,
  HDR_STRIDE,
  HDR_VERSION,
  HEADER_WORDS,
  LAYOUT_VERSION,
  MAGIC,
  OPEN,
  PERMIT_DONE,
  PERMIT_FLAGS,
  PERMIT_FREE,
  PERMIT_HELD,
  PERMIT_RELEASED,
  SLOT_OPEN_STREAK,
  SLOT_PERMITS,
  SLOT_STATE,
  SLOT_TRANSITIONS,
  STATE_MASK,
  strideWords,
  TIME_MASK,
} from './layout.js';
import {
  type BreakerOptions,
  type BreakerStateName,
  MAX_CAPACITY,
  type ResolvedBreakerOptions,
  resolveOptions,
  type StateChangeListener,
  type TransitionReason,
} from './options.js';
import type { TripRule } from './rules.js';

/** `tryAcquire` result: the call must not be made. */
export const REJECTED = 0;
/** `tryAcquire` result: a normal call through a closed breaker. Larger values are probes. */
export const ADMITTED = 1;

/** True when a `tryAcquire` result is a half-open probe (a value greater than ADMITTED). */
export function isProbe(admission: number): boolean {
  return admission > ADMITTED;
}

const STATE_NAMES: readonly BreakerStateName[] = ['closed', 'open', 'half-open', 'closed'];
const PROBE_TOKEN_MASK = 0xffffff; // low 24 bits of the permit's time go into the admission
const PROBE_INDEX_BITS = 5;
const PROBE_INDEX_MASK = 31;
const PROBE_OFFSET = 2;
/** Threads read the clock a little before or after each other; allow this much disorder. */
const CLOCK_SKEW_TOLERANCE_MS = 1000;

/** Transitions of one breaker into each state (counted once across threads). */
export interface BreakerTransitions {
  readonly open: number;
  readonly halfOpen: number;
  readonly closed: number;
}

/** Point-in-time view of one breaker, for the admin API. */
export interface BreakerSnapshot {
  readonly slot: number;
  readonly state: BreakerStateName;
  /** ms until an open breaker admits probes (0 unless open). */
  readonly remainingOpenMs: number;
  /** Probe permits currently held and not yet settled (0 unless half-open). */
  readonly probesInFlight: number;
  /** Probes that succeeded in the current half-open period. */
  readonly probesSucceeded: number;
  /** Consecutive opens without a close (grows the open timeout). */
  readonly openStreak: number;
}

function fingerprint(rules: readonly TripRule[]): number {
  // FNV-1a over the rule keys: cheap, stable, and enough to catch two threads configured apart.
  let h = 0x811c9dc5;
  for (const rule of rules) {
    const key = `${rule.key};`;
    for (let i = 0; i < key.length; i++) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  }
  return h | 0;
}

/**
 * Where a core's words live: fresh memory it lays a table of `capacity` breakers out in
 * (`create`), or a table another thread laid out in a SharedArrayBuffer (`attach`: the header
 * is checked against the options, and the capacity is the table's).
 */
export type CoreMemory =
  | { readonly kind: 'create'; readonly buffer: ArrayBufferLike; readonly capacity: number }
  | { readonly kind: 'attach'; readonly buffer: SharedArrayBuffer };

/** What LayoutMismatchError names when a buffer is not a table these options can use. */
const LAYOUT = 'breaker table';

/** The state machine over an Int32Array; shared by BreakerTable (SAB) and CircuitBreaker. */
export class BreakerCore {
  readonly capacity: number;

  readonly #mem: Int32Array;
  readonly #stride: number;
  readonly #probes: number;
  readonly #rules: readonly TripRule[];
  readonly #ruleOffsets: Int32Array;
  readonly #clock: Clock;
  readonly #origin: number;
  readonly #opts: ResolvedBreakerOptions;
  readonly #maxRemainingMs: number;
  /**
   * Transition listeners of this thread's view, in registration order. Replaced, never
   * mutated, so a listener that subscribes or unsubscribes during an emit does not disturb it.
   */
  #listeners: readonly { readonly listener: StateChangeListener }[] = [];
  #ownedWord = 0;

  constructor(memory: CoreMemory, options: BreakerOptions) {
    const opts = resolveOptions(options);
    const { buffer } = memory;
    this.#opts = opts;
    this.#maxRemainingMs = opts.maxOpenTimeoutMs + CLOCK_SKEW_TOLERANCE_MS;
    this.#clock = opts.clock;
    this.#probes = opts.halfOpenProbes;
    this.#rules = opts.rules;
    this.#ruleOffsets = new Int32Array(opts.rules.length);
    let ruleWords = 0;
    for (let i = 0; i < opts.rules.length; i++) {
      this.#ruleOffsets[i] = SLOT_PERMITS + opts.halfOpenProbes + ruleWords;
      ruleWords += opts.rules[i]!.words;
    }
    this.#stride = strideWords(opts.halfOpenProbes, ruleWords);
    if (options.onStateChange !== undefined) {
      if (typeof options.onStateChange !== 'function') {
        throw new InvalidArgumentError('onStateChange', options.onStateChange, 'a function');
      }
      this.#listeners = [{ listener: options.onStateChange }];
    }
    if (
      memory.kind === 'attach' &&
      (buffer.byteLength < HEADER_WORDS * 4 || buffer.byteLength % 4 !== 0)
    ) {
      throw new LayoutMismatchError(
        LAYOUT,
        `it holds ${buffer.byteLength} bytes, not a header and whole Int32 words`,
      );
    }
    const mem = new Int32Array(buffer);
    const f64 = new Float64Array(buffer, 0, HEADER_WORDS / 2);
    const fp = fingerprint(opts.rules);
    if (memory.kind === 'create') {
      const { capacity } = memory;
      this.capacity = capacity;
      const needed = byteLengthFor(capacity, this.#stride);
      if (buffer.byteLength < needed) {
        throw new InvalidArgumentError(
          'buffer',
          buffer,
          `at least ${needed} bytes for ${capacity} breakers`,
        );
      }
      mem[HDR_MAGIC] = MAGIC;
      mem[HDR_VERSION] = LAYOUT_VERSION;
      mem[HDR_CAPACITY] = capacity;
      mem[HDR_STRIDE] = this.#stride;
      mem[HDR_HALF_OPEN_PROBES] = opts.halfOpenProbes;
      mem[HDR_RULE_WORDS] = ruleWords;
      mem[HDR_RULES_FINGERPRINT] = fp;
      f64[HDR_ORIGIN_F64] = opts.clock.now();
      this.#mem = mem;
      this.#origin = f64[HDR_ORIGIN_F64]!;
      for (let slot = 0; slot < capacity; slot++)
        this.#resetSlot(HEADER_WORDS + slot * this.#stride, 0);
    } else {
      if (mem[HDR_MAGIC] !== MAGIC || mem[HDR_VERSION] !== LAYOUT_VERSION) {
        throw new LayoutMismatchError(
          LAYOUT,
          'bad magic or layout version (another structure, or another version of @engram/breaker)',
        );
      }
      const mismatch = (what: string, mine: number, theirs: number | undefined): never => {
        throw new LayoutMismatchError(
          LAYOUT,
          `${what} differs from the table's: options give ${mine}, buffer holds ${theirs}`,
        );
      };
      if (mem[HDR_HALF_OPEN_PROBES] !== opts.halfOpenProbes) {
        mismatch('halfOpenProbes', opts.halfOpenProbes, mem[HDR_HALF_OPEN_PROBES]);
      }
      if (mem[HDR_RULE_WORDS] !== ruleWords || mem[HDR_RULES_FINGERPRINT] !== fp) {
        mismatch('trip rules fingerprint', fp, mem[HDR_RULES_FINGERPRINT]);
      }
      if (mem[HDR_STRIDE] !== this.#stride) mismatch('stride', this.#stride, mem[HDR_STRIDE]);
      this.capacity = mem[HDR_CAPACITY]!;
      const needed = byteLengthFor(this.capacity, this.#stride);
      if (buffer.byteLength < needed) {
        throw new LayoutMismatchError(
          LAYOUT,
          `its header says ${this.capacity} breakers (${needed} bytes), it holds ${buffer.byteLength} bytes`,
        );
      }
      this.#mem = mem;
      this.#origin = f64[HDR_ORIGIN_F64]!;
    }
  }

  static byteLength(capacity: number, options: BreakerOptions): number {
    checkCapacity(capacity);
    const opts = resolveOptions(options);
    let ruleWords = 0;
    for (const rule of opts.rules) ruleWords += rule.words;
    return byteLengthFor(capacity, strideWords(opts.halfOpenProbes, ruleWords));
  }

  get options(): ResolvedBreakerOptions {
    return this.#opts;
  }

  #now30(): number {
    return (this.#clock.now() - this.#origin) & TIME_MASK;
  }

  #base(slot: number): number {
    if (!(slot >>> 0 === slot && slot < this.capacity)) {
      throw new InvalidArgumentError('slot', slot, `an integer in [0, ${this.capacity})`);
    }
    return HEADER_WORDS + slot * this.#stride;
  }

  /**
   * Adds a transition listener for this thread's view (after the `onStateChange` option and
   * any added before). Returns a function that removes it again (idempotent); adding the same
   * function twice makes two registrations.
   */
  addListener(listener: StateChangeListener): () => void {
    if (typeof listener !== 'function') {
      throw new InvalidArgumentError('listener', listener, 'a function');
    }
    const entry = { listener };
    this.#listeners = [...this.#listeners, entry];
    return () => {
      this.#listeners = this.#listeners.filter((e) => e !== entry);
    };
  }

  /** Called once per transition, by the thread whose CAS made it: counts it, tells listeners. */
  #emit(slot: number, from: number, to: number, reason: TransitionReason): void {
    Atomics.add(this.#mem, HEADER_WORDS + slot * this.#stride + SLOT_TRANSITIONS + to, 1);
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!.listener(slot, STATE_NAMES[from]!, STATE_NAMES[to]!, reason);
      } catch (error) {
        // The transition already happened: the other listeners must still hear of it, and
        // the caller (a tryAcquire on the hot path) must not fail for a listener's bug.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #openTimeoutMs(streak: number): number {
    const o = this.#opts;
    if (streak <= 1 || o.maxOpenTimeoutMs === o.openTimeoutMs) return o.openTimeoutMs;
    return Math.min(o.maxOpenTimeoutMs, o.openTimeoutMs * o.openTimeoutMultiplier ** (streak - 1));
  }

  /**
   * Asks to make a call through breaker `slot`. Returns `REJECTED` (0), `ADMITTED` (1) or a
   * probe admission (> 1). Pass the result back to exactly one of onSuccess / onFailure /
   * release. Allocation-free.
   */
  tryAcquire(slot: number): number {
    const base = this.#base(slot);
    const mem = this.#mem;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const state = w & STATE_MASK;
    if (state === CLOSED) return ADMITTED;
    const now = this.#now30();
    if (state === OPEN) {
      const remaining = diff30(w >>> 2, now);
      // A remaining time longer than any open timeout cannot come from a live deadline: the
      // 30-bit time wrapped while nobody asked (~12.4 days), so the open period is long over.
      if (remaining > 0 && remaining <= this.#maxRemainingMs) return REJECTED;
      const hw = (now << 2) | HALF_OPEN;
      if (Atomics.compareExchange(mem, base + SLOT_STATE, w, hw) === w) {
        this.#emit(slot, OPEN, HALF_OPEN, 'open-timeout-elapsed');
      }
    }
    return this.#acquireProbe(base, now);
  }

  #acquireProbe(base: number, now: number): number {
    const mem = this.#mem;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const state = w & STATE_MASK;
    if (state !== HALF_OPEN) return state === CLOSED ? ADMITTED : REJECTED;
    const start = w >>> 2;
    const probeTimeoutMs = this.#opts.probeTimeoutMs;
    const first = base + SLOT_PERMITS;
    for (let i = 0; i < this.#probes; i++) {
      const p = Atomics.load(mem, first + i);
      if (p !== PERMIT_FREE && (p & PERMIT_FLAGS) !== PERMIT_RELEASED) {
        const at = p >>> 2;
        const stale = diff30(start, at) > 0;
        if (!stale) {
          if ((p & PERMIT_FLAGS) === PERMIT_DONE) continue;
          const age = diff30(now, at);
          // A negative age is a race with the holder's clock read; treat it as fresh unless it
          // is too large to be a race (the 30-bit time wrapped), then the probe is long hung.
          if (age < probeTimeoutMs && age >= -probeTimeoutMs) continue;
        }
      }
      // Tokens of one permit word strictly increase, so a released admission never matches
      // the next holder's even within the same millisecond.
      // Never before the period's start either: a thread whose clock read predates the
      // transition must not produce a permit that others would take for a stale one.
      let at = diff30(start, now) > 0 ? start : now;
      if (p !== PERMIT_FREE) {
        const prevAt = p >>> 2;
        const ahead = diff30(prevAt, at);
        if (ahead >= 0 && ahead < CLOCK_SKEW_TOLERANCE_MS) at = (prevAt + 1) & TIME_MASK;
      }
      const token = (at << 2) | PERMIT_HELD;
      if (Atomics.compareExchange(mem, first + i, p, token) !== p) continue;
      if (Atomics.load(mem, base + SLOT_STATE) !== w) {
        Atomics.compareExchange(mem, first + i, token, token | PERMIT_RELEASED);
        return REJECTED;
      }
      return ((at & PROBE_TOKEN_MASK) << PROBE_INDEX_BITS) + i + PROBE_OFFSET;
    }
    return REJECTED;
  }

  /**
   * Finds the permit word of a probe admission if the caller still holds it in the current
   * half-open period; returns -1 otherwise (stale: reclaimed, or another period). The word
   * it verified is left in `#ownedWord`, so the caller CASes exactly that holder's token.
   */
  #ownedPermit(base: number, admission: number, w: number): number {
    if ((w & STATE_MASK) !== HALF_OPEN) return -1;
    const v = admission - PROBE_OFFSET;
    const i = v & PROBE_INDEX_MASK;
    if (i >= this.#probes) return -1;
    const p = Atomics.load(this.#mem, base + SLOT_PERMITS + i);
    if (p === PERMIT_FREE || (p & PERMIT_FLAGS) !== PERMIT_HELD) return -1;
    const at = p >>> 2;
    if ((at & PROBE_TOKEN_MASK) !== v >>> PROBE_INDEX_BITS) return -1;
    if (diff30(w >>> 2, at) > 0) return -1;
    this.#ownedWord = p;
    return i;
  }

  /** Records a successful call. Allocation-free. */
  onSuccess(slot: number, admission: number): void {
    const base = this.#base(slot);
    const mem = this.#mem;
    if (admission === ADMITTED) {
      if ((Atomics.load(mem, base + SLOT_STATE) & STATE_MASK) !== CLOSED) return;
      const rules = this.#rules;
      for (let r = 0; r < rules.length; r++) rules[r]!.onSuccess(mem, base + this.#ruleOffsets[r]!);
      return;
    }
    if (admission < PROBE_OFFSET) return;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const i = this.#ownedPermit(base, admission, w);
    if (i < 0) return;
    const first = base + SLOT_PERMITS;
    const p = this.#ownedWord;
    if (Atomics.compareExchange(mem, first + i, p, p | PERMIT_DONE) !== p) return;
    const start = w >>> 2;
    for (let j = 0; j < this.#probes; j++) {
      const q = Atomics.load(mem, first + j);
      if (q === PERMIT_FREE || (q & PERMIT_FLAGS) !== PERMIT_DONE || diff30(start, q >>> 2) > 0)
        return;
    }
    // Every permit of this period succeeded: close. With several probes, several threads can
    // get here; only the one that wins the CAS resets the rules, after winning it. A loser
    // resetting them (before its failed CAS) could wipe failures counted in the new closed
    // period. See the layout comment for why a failure counted before the winner's reset is
    // harmless.
    const cw = (this.#now30() << 2) | CLOSED;
    if (Atomics.compareExchange(mem, base + SLOT_STATE, w, cw) === w) {
      this.#resetRules(base);
      Atomics.store(mem, base + SLOT_OPEN_STREAK, 0);
      this.#emit(slot, HALF_OPEN, CLOSED, 'probes-succeeded');
    }
  }

  /** Records a failed call; may open the breaker. Allocation-free. */
  onFailure(slot: number, admission: number): void {
    const base = this.#base(slot);
    const mem = this.#mem;
    if (admission === ADMITTED) {
      const w = Atomics.load(mem, base + SLOT_STATE);
      if ((w & STATE_MASK) !== CLOSED) return;
      const rules = this.#rules;
      for (let r = 0; r < rules.length; r++) {
        const rule = rules[r]!;
        if (rule.onFailure(mem, base + this.#ruleOffsets[r]!)) {
          this.#open(slot, base, w, CLOSED, 1, rule.name);
          return;
        }
      }
      return;
    }
    if (admission < PROBE_OFFSET) return;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const i = this.#ownedPermit(base, admission, w);
    if (i < 0) return;
    const streak = Atomics.load(mem, base + SLOT_OPEN_STREAK) + 1;
    this.#open(slot, base, w, HALF_OPEN, streak, 'probe-failed');
  }

  #open(slot: number, base: number, w: number, from: number, streak: number, reason: string): void {
    const until = (this.#now30() + this.#openTimeoutMs(streak)) & TIME_MASK;
    const ow = (until << 2) | OPEN;
    if (Atomics.compareExchange(this.#mem, base + SLOT_STATE, w, ow) === w) {
      // Leaving closed: clear the counts that tripped the rule now, so that the words are
      // (nearly) fresh by the time a later close makes them count again.
      if (from === CLOSED) this.#resetRules(base);
      Atomics.store(this.#mem, base + SLOT_OPEN_STREAK, streak);
      this.#emit(slot, from, OPEN, reason);
    }
  }

  /** Gives back the permit of a call that was cancelled or abandoned before it settled. */
  release(slot: number, admission: number): void {
    const base = this.#base(slot);
    if (admission < PROBE_OFFSET) return;
    const mem = this.#mem;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const i = this.#ownedPermit(base, admission, w);
    if (i < 0) return;
    const idx = base + SLOT_PERMITS + i;
    const p = this.#ownedWord;
    // Keep the time: the next holder's token must differ from this one's.
    Atomics.compareExchange(mem, idx, p, p | PERMIT_RELEASED);
  }

  /** Current state; an open breaker whose timeout elapsed still reads `open` until asked. */
  state(slot: number): BreakerStateName {
    return STATE_NAMES[Atomics.load(this.#mem, this.#base(slot) + SLOT_STATE) & STATE_MASK]!;
  }

  /**
   * Another source says the node behind breaker `slot` recovered (a health check marked it up):
   * an open breaker goes half-open now, so its probes decide rather than the rest of the open
   * timeout, and a failed probe reopens it as any probe would; a closed breaker forgets the
   * failures counted so far (they predate the recovery, and must not let the first failures
   * after it trip the breaker); a half-open one is left to its probes. Allocation-free.
   */
  recovered(slot: number): void {
    const base = this.#base(slot);
    const mem = this.#mem;
    for (;;) {
      const w = Atomics.load(mem, base + SLOT_STATE);
      const state = w & STATE_MASK;
      if (state === HALF_OPEN) return;
      if (state === CLOSED) {
        // A failure counted concurrently may be wiped: it raced the recovery, either order holds.
        this.#resetRules(base);
        return;
      }
      const hw = (this.#now30() << 2) | HALF_OPEN;
      if (Atomics.compareExchange(mem, base + SLOT_STATE, w, hw) === w) {
        this.#emit(slot, OPEN, HALF_OPEN, 'recovered');
        return;
      }
    }
  }

  /** Forces breaker `slot` closed with fresh counters (e.g. when a slot is reused). */
  reset(slot: number): void {
    const base = this.#base(slot);
    const mem = this.#mem;
    // Clearing before the loop drops the current counts so that nothing trips on them while
    // the CAS lands; clearing again after winning makes the counters fresh. Both are ours to
    // do: whatever they wipe was counted before this forced close took effect.
    this.#resetRules(base);
    for (;;) {
      const w = Atomics.load(mem, base + SLOT_STATE);
      const cw = (this.#now30() << 2) | CLOSED;
      if (Atomics.compareExchange(mem, base + SLOT_STATE, w, cw) === w) {
        this.#resetRules(base);
        Atomics.store(mem, base + SLOT_OPEN_STREAK, 0);
        for (let i = 0; i < this.#probes; i++)
          Atomics.store(mem, base + SLOT_PERMITS + i, PERMIT_FREE);
        if ((w & STATE_MASK) !== CLOSED) this.#emit(slot, w & STATE_MASK, CLOSED, 'reset');
        return;
      }
    }
  }

  #resetRules(base: number): void {
    const rules = this.#rules;
    for (let r = 0; r < rules.length; r++) rules[r]!.reset(this.#mem, base + this.#ruleOffsets[r]!);
  }

  #resetSlot(base: number, time30: number): void {
    const mem = this.#mem;
    Atomics.store(mem, base + SLOT_STATE, (time30 << 2) | CLOSED);
    Atomics.store(mem, base + SLOT_OPEN_STREAK, 0);
    for (let t = 0; t < 3; t++) Atomics.store(mem, base + SLOT_TRANSITIONS + t, 0);
    for (let i = 0; i < this.#probes; i++) Atomics.store(mem, base + SLOT_PERMITS + i, PERMIT_FREE);
    this.#resetRules(base);
  }

  /**
   * Transitions breaker `slot` made into each state since the table was created, counted once
   * across every thread (by the thread that made each one); a reset keeps them. Uint32, wrap
   * at 2^32.
   */
  transitionsOf(slot: number): BreakerTransitions {
    const at = this.#base(slot) + SLOT_TRANSITIONS;
    const mem = this.#mem;
    return {
      open: Atomics.load(mem, at + OPEN) >>> 0,
      halfOpen: Atomics.load(mem, at + HALF_OPEN) >>> 0,
      closed: Atomics.load(mem, at + CLOSED) >>> 0,
    };
  }

  /** Point-in-time view of breaker `slot`. */
  snapshotOf(slot: number): BreakerSnapshot {
    const base = this.#base(slot);
    const mem = this.#mem;
    const w = Atomics.load(mem, base + SLOT_STATE);
    const state = w & STATE_MASK;
    const now = this.#now30();
    let remainingOpenMs = 0;
    let probesInFlight = 0;
    let probesSucceeded = 0;
    if (state === OPEN) {
      const d = diff30(w >>> 2, now);
      remainingOpenMs = d > 0 && d <= this.#maxRemainingMs ? d : 0;
    } else if (state === HALF_OPEN) {
      const start = w >>> 2;
      for (let i = 0; i < this.#probes; i++) {
        const p = Atomics.load(mem, base + SLOT_PERMITS + i);
        if (p === PERMIT_FREE || diff30(start, p >>> 2) > 0) continue;
        const flags = p & PERMIT_FLAGS;
        if (flags === PERMIT_DONE) probesSucceeded++;
        else if (flags === PERMIT_HELD) probesInFlight++;
      }
    }
    return {
      slot,
      state: STATE_NAMES[state]!,
      remainingOpenMs,
      probesInFlight,
      probesSucceeded,
      openStreak: Atomics.load(mem, base + SLOT_OPEN_STREAK),
    };
  }
}

export function checkCapacity(capacity: number): void {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
    throw new InvalidArgumentError('capacity', capacity, `an integer in [1, ${MAX_CAPACITY}]`);
  }
}
