import type { Clock } from '@engram/common';

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (~24.8 days)

/** Something that must hear once its due time (on the timers' clock) has come. */
export interface DueEntry {
  /** Clock ms at which it is due. */
  due: number;
  /** The batch holding it; null when not scheduled. Managed by `DueTimers`. */
  dueBatch: DueBatch | null;
  /** Its slot in the batch's list. Managed by `DueTimers`. */
  dueSlot: number;
}

/** The entries due within one millisecond of the clock: one native timer for all of them. */
export class DueBatch {
  /** The clock ms every entry is due by (an integer): the timer aims here. */
  readonly bucket: number;
  readonly entries: (DueEntry | null)[] = [];
  /** Entries still scheduled (not cancelled, not fired). */
  live = 0;
  /** Clock reading when the native timer was armed. */
  armedAt: number;
  /** Its entries are being fired: a cancel only unlinks the entry. */
  firing = false;
  /** Held in `DueTimers`' map (it stopped being the last batch with entries left). */
  mapped = false;
  handle: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(bucket: number, armedAt: number) {
    this.bucket = bucket;
    this.armedAt = armedAt;
  }
}

/**
 * Timers for many entries with due times on one clock, at the cost of a few stores each
 * instead of a native timer each. Entries due within the same millisecond share one native
 * `setTimeout`; cancelling one clears a slot, and the native timer goes with its last entry (no
 * timer outlives what it was for).
 *
 * Why: a routed call starts a timer per attempt (its timeout) and almost always cancels it a
 * fraction of a millisecond later. Node's `setTimeout` + `clearTimeout` pair costs a Timeout
 * object, a timer list insertion and removal and a libuv clock read: ~0.4 µs per call under
 * load, measured in the proxy bench's profile. Under load, calls launched within the same
 * millisecond with the same timeout share a batch (one call at a time costs what it did).
 *
 * Never early: an entry fires only once the clock has reached its due time. A native timer
 * runs on libuv's loop time, which may lag the clock by up to a millisecond, so a batch that
 * fires before some of its entries are due hands them to a later batch. One exception keeps
 * clocks that do not follow the timers (a frozen test clock) from never firing: a batch that
 * fires with the clock not moved since it was armed fires all its entries, as the native timer
 * alone would have.
 */
export class DueTimers<E extends DueEntry> {
  readonly #clock: Clock;
  readonly #fire: (entry: E) => void;
  /**
   * Batches with entries left that are not (or were not, when put here) the last one, by
   * bucket. One call at a time never gets here: its batch empties while it is the last.
   */
  readonly #batches = new Map<number, DueBatch>();
  /** The batch the last entry joined, while it has entries: the usual one for the next. */
  #last: DueBatch | null = null;

  constructor(clock: Clock, fire: (entry: E) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Entries scheduled and not yet fired or cancelled (for tests and diagnostics). */
  get size(): number {
    let n = 0;
    for (const b of this.#withEntries()) n += b.live;
    return n;
  }

  /** Native timers armed (for tests and diagnostics). */
  get armed(): number {
    let n = 0;
    for (const b of this.#withEntries()) if (b.handle !== undefined) n++;
    return n;
  }

  /** Every batch with entries: the mapped ones and the last. */
  #withEntries(): DueBatch[] {
    const all = [...this.#batches.values()];
    const last = this.#last;
    if (last !== null && !last.mapped) all.push(last);
    return all;
  }

  /**
   * Schedules `entry` to fire at clock ms `due`; `now` is a reading of the same clock taken
   * just before (the caller has one). An entry already scheduled must be cancelled first.
   */
  schedule(entry: E, due: number, now: number): void {
    entry.due = due;
    const bucket = Math.ceil(due);
    let b = this.#last;
    if (b === null || b.bucket !== bucket) {
      // The last batch is left behind with entries: it goes in the map, to be found again.
      if (b !== null && !b.mapped) {
        b.mapped = true;
        this.#batches.set(b.bucket, b);
      }
      b = this.#batches.get(bucket) ?? this.#open(bucket, now);
      this.#last = b;
    }
    entry.dueBatch = b;
    entry.dueSlot = b.entries.length;
    b.entries.push(entry);
    b.live++;
  }

  /** Unschedules `entry` (nothing when it is not scheduled). */
  cancel(entry: E): void {
    const b = entry.dueBatch;
    if (b === null) return;
    entry.dueBatch = null;
    if (b.firing) return; // the firing loop skips unlinked entries
    b.entries[entry.dueSlot] = null;
    // The last entry gone: so is the native timer (none outlives what it was for).
    if (--b.live === 0) this.#close(b);
  }

  #open(bucket: number, now: number): DueBatch {
    const b = new DueBatch(bucket, now);
    this.#arm(b, now);
    return b;
  }

  #arm(b: DueBatch, now: number): void {
    b.armedAt = now;
    // A whole number of ms: Node keeps a timer list per distinct duration.
    const wait = Math.min(Math.max(Math.ceil(b.bucket - now), 0), MAX_TIMER_MS);
    b.handle = setTimeout(DueTimers.#onTimer, wait, this, b);
  }

  /** A batch with no entry left: its timer goes, and so does the batch. */
  #close(b: DueBatch): void {
    if (b.handle !== undefined) clearTimeout(b.handle);
    b.handle = undefined;
    this.#forget(b);
  }

  /** Neither the last batch nor in the map any more (then it is garbage). */
  #forget(b: DueBatch): void {
    if (this.#last === b) this.#last = null;
    if (b.mapped) {
      b.mapped = false;
      this.#batches.delete(b.bucket);
    }
  }

  static #onTimer<F extends DueEntry>(this: void, timers: DueTimers<F>, b: DueBatch): void {
    timers.#expire(b);
  }

  #expire(b: DueBatch): void {
    b.handle = undefined;
    this.#forget(b);
    const now = this.#clock.now();
    // The clock did not move while the timer ran: it does not follow the timers (a frozen
    // test clock). Trust the timer, as a native timer per entry would have.
    const trustTimer = now === b.armedAt;
    const entries = b.entries;
    const n = entries.length;
    b.firing = true;
    for (let i = 0; i < n; i++) {
      const e = entries[i] as E | null;
      // Cancelled before (slot cleared) or while firing (unlinked): skipped.
      if (e === null || e.dueBatch !== b) continue;
      e.dueBatch = null;
      if (trustTimer || e.due <= now) {
        this.#fire(e);
      } else {
        // libuv's loop time ran behind the clock: not due yet, a little later.
        this.schedule(e, e.due, now);
      }
    }
    b.live = 0;
  }
}
