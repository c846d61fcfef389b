import type { Clock } from '@engram/common';

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (~24.8 days)
/** Slots of the batch index: buckets (ms) this far apart share one (a power of two). */
const BUCKET_SLOTS = 4096;

/** Something that must hear once its due time (on the timers' clock) has come. */
export interface DueEntry {
  /** Clock ms at which it is due. */
  due: number;
  /** The batch holding it; null when not scheduled. Managed by `DueTimers`. */
  dueBatch: DueBatch | null;
  /** Its slot in the batch's list. Managed by `DueTimers`. */
  dueSlot: number;
}

/** The entries due within one millisecond of the clock. */
export class DueBatch {
  /** The clock ms every entry is due by (an integer). */
  readonly bucket: number;
  readonly entries: (DueEntry | null)[] = [];
  /** Entries still scheduled (not cancelled, not fired). */
  live = 0;
  /** Its entries are being fired: a cancel only unlinks the entry. */
  firing = false;
  /** Its index in `DueTimers`' heap; -1 when out of it. */
  heapIndex = -1;

  constructor(bucket: number) {
    this.bucket = bucket;
  }
}

/**
 * Timers for many entries with due times on one clock, at the cost of a few stores each
 * instead of a native timer each, and one native `setTimeout` for all of them. Entries due
 * within the same millisecond share a batch; batches wait in a heap by due time, and the one
 * native timer aims at the earliest. Cancelling an entry clears a slot; a batch all cancelled
 * leaves the heap at once (it dies young; kept until its time, batches outlived a scavenge and
 * filled the old generation), and the timer keeps its aim: when it fires early for that
 * reason it moves on to the next batch. When the last entry anywhere leaves, the timer stays
 * armed but unref'd: it holds no process open, and fires once, at its aim, to find nothing
 * (or the entries scheduled since, which ref it again).
 *
 * Why: a routed call starts a timer per attempt (its timeout) and almost always cancels it a
 * fraction of a millisecond later. Node's `setTimeout` + `clearTimeout` pair costs a Timeout
 * object, a timer list insertion and removal and a libuv clock read: ~0.4 µs per call under
 * load (proxy bench profile). One native timer per millisecond of launches still cost 2.5 % of
 * the data thread at 10k calls/s; with the default 2 s timeout the one timer now fires about
 * once per 2 s under load (at the first batch, all cancelled), and is re-armed only when an
 * entry is due before the one it aims at. Clearing it with the last entry and arming it again
 * with the next cost 1.5 % of the data thread at 64 calls in flight (perf): calls come in
 * bursts, and the count in flight touches zero between them. One call at a time costs what a
 * native timer did.
 *
 * Never early: an entry fires only once the clock has reached its due time. A native timer
 * runs on libuv's loop time, which may lag the clock by up to a millisecond, so a timer that
 * fires before an entry is due leaves it for the next. One exception keeps clocks that do not
 * follow the timers (a frozen test clock) from never firing: a timer that fires with the clock
 * not moved since it was armed fires the batches up to the one it aimed at, as a native timer
 * per entry would have.
 */
export class DueTimers<E extends DueEntry> {
  readonly #clock: Clock;
  readonly #fire: (entry: E) => void;
  /** The batches, a binary min-heap by bucket. */
  #heap: DueBatch[] = [];
  /**
   * Batches by `bucket % BUCKET_SLOTS`, direct-mapped: a slot keeps the batch it was given
   * until that batch leaves (a batch whose slot is taken, ~4 s of buckets away, goes unindexed,
   * and a second batch of its bucket may be opened beside it: both fire, they only share less).
   */
  readonly #index: (DueBatch | null)[] = new Array<DueBatch | null>(BUCKET_SLOTS).fill(null);
  /** The batch the last entry joined: the usual one for the next. */
  #last: DueBatch | null = null;
  /** Entries scheduled and not yet fired or cancelled, all batches. */
  #live = 0;
  #handle: ReturnType<typeof setTimeout> | undefined = undefined;
  /** The bucket the native timer aims at (Infinity: none armed). */
  #aim = Number.POSITIVE_INFINITY;
  /** Clock reading when the native timer was armed. */
  #armedAt = 0;

  constructor(clock: Clock, fire: (entry: E) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Entries scheduled and not yet fired or cancelled (for tests and diagnostics). */
  get size(): number {
    return this.#live;
  }

  /** Batches held (each with entries left; for tests and diagnostics). */
  get batches(): number {
    return this.#heap.length;
  }

  /** Native timers armed: 0 or 1 (for tests and diagnostics). */
  get armed(): number {
    return this.#handle === undefined ? 0 : 1;
  }

  /** Native timers holding the process open: 1 while entries are scheduled, else 0. */
  get referenced(): number {
    return this.#handle?.hasRef() ? 1 : 0;
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
      b = this.#find(bucket) ?? this.#open(bucket);
      this.#last = b;
    }
    entry.dueBatch = b;
    entry.dueSlot = b.entries.length;
    b.entries.push(entry);
    b.live++;
    if (bucket < this.#aim) this.#arm(bucket, now);
    // The first entry since the last left: the timer kept armed holds the process again.
    else if (this.#live === 0) this.#handle!.ref();
    this.#live++;
  }

  /** Unschedules `entry` (nothing when it is not scheduled). */
  cancel(entry: E): void {
    const b = entry.dueBatch;
    if (b === null) return;
    entry.dueBatch = null;
    this.#live--;
    if (b.firing) return; // the firing loop skips unlinked entries
    b.entries[entry.dueSlot] = null;
    if (--b.live === 0) this.#remove(b);
    // The last entry anywhere gone (every batch with it): the timer keeps its aim, unref'd.
    if (this.#live === 0) this.#handle?.unref();
  }

  /**
   * The batch of `bucket`, if it is indexed (see `#index`): one array read and a compare. (A
   * Map by bucket cost more: a float key hashed per lookup, a rehash as batches come and go.)
   */
  #find(bucket: number): DueBatch | undefined {
    const b = this.#index[bucket & (BUCKET_SLOTS - 1)];
    return b != null && b.bucket === bucket ? b : undefined;
  }

  #open(bucket: number): DueBatch {
    const b = new DueBatch(bucket);
    const slot = bucket & (BUCKET_SLOTS - 1);
    if (this.#index[slot] === null) this.#index[slot] = b;
    b.heapIndex = this.#heap.length;
    this.#heap.push(b);
    this.#siftUp(b.heapIndex);
    return b;
  }

  /** Removes and returns the earliest batch. */
  #pop(): DueBatch {
    const top = this.#heap[0]!;
    this.#remove(top);
    return top;
  }

  /** Takes `b` out of the heap and the index (nothing when out already: taken to be fired). */
  #remove(b: DueBatch): void {
    const heap = this.#heap;
    const i = b.heapIndex;
    if (i < 0) return;
    const end = heap.pop()!;
    if (end !== b) {
      heap[i] = end;
      end.heapIndex = i;
      this.#siftDown(i);
      this.#siftUp(end.heapIndex);
    }
    b.heapIndex = -1;
    const slot = b.bucket & (BUCKET_SLOTS - 1);
    if (this.#index[slot] === b) this.#index[slot] = null;
    if (this.#last === b) this.#last = null;
  }

  #siftUp(at: number): void {
    const heap = this.#heap;
    const b = heap[at]!;
    let i = at;
    while (i > 0) {
      const up = (i - 1) >> 1;
      const parent = heap[up]!;
      if (parent.bucket <= b.bucket) break;
      heap[i] = parent;
      parent.heapIndex = i;
      i = up;
    }
    heap[i] = b;
    b.heapIndex = i;
  }

  #siftDown(at: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const b = heap[at]!;
    let i = at;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.bucket < heap[child]!.bucket) child++;
      const c = heap[child]!;
      if (c.bucket >= b.bucket) break;
      heap[i] = c;
      c.heapIndex = i;
      i = child;
    }
    heap[i] = b;
    b.heapIndex = i;
  }

  #arm(bucket: number, now: number): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#aim = bucket;
    this.#armedAt = now;
    // A whole number of ms: Node keeps a timer list per distinct duration.
    const wait = Math.min(Math.max(Math.ceil(bucket - now), 0), MAX_TIMER_MS);
    this.#handle = setTimeout(DueTimers.#onTimer, wait, this);
  }

  /** Nothing left scheduled: no timer, no batch. */
  #clear(): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#aim = Number.POSITIVE_INFINITY;
    this.#index.fill(null);
    this.#heap = [];
    this.#last = null;
  }

  static #onTimer<F extends DueEntry>(this: void, timers: DueTimers<F>): void {
    timers.#expire();
  }

  #expire(): void {
    this.#handle = undefined;
    const aim = this.#aim;
    this.#aim = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    // The clock did not move while the timer ran: it does not follow the timers (a frozen
    // test clock). Trust the timer up to the batch it aimed at.
    const upTo = now === this.#armedAt ? Math.max(now, aim) : now;
    // A batch holds entries due in (bucket - 1, bucket]: any of them may be due by `upTo`.
    // Taken out first, then fired: an entry not yet due goes to a new batch of the same
    // bucket, which waits for the next timer.
    const due: DueBatch[] = [];
    while (this.#heap.length > 0 && this.#heap[0]!.bucket < upTo + 1) due.push(this.#pop());
    for (const b of due) if (b.live > 0) this.#fireBatch(b, upTo);
    const next = this.#heap[0];
    if (this.#live === 0) this.#clear();
    else if (next !== undefined && next.bucket < this.#aim) this.#arm(next.bucket, now);
  }

  #fireBatch(b: DueBatch, upTo: number): void {
    const entries = b.entries;
    const n = entries.length;
    b.firing = true;
    for (let i = 0; i < n; i++) {
      const e = entries[i] as E | null;
      // Cancelled before (slot cleared) or while firing (unlinked): skipped.
      if (e === null || e.dueBatch !== b) continue;
      e.dueBatch = null;
      this.#live--;
      if (e.due <= upTo) {
        this.#fire(e);
      } else {
        // libuv's loop time ran behind the clock: not due yet, a little later.
        this.schedule(e, e.due, this.#clock.now());
      }
    }
    b.live = 0;
  }
}
