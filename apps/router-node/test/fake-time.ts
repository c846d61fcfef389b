import type { Timers } from '../src/internal/timers.js';

interface Pending {
  at: number;
  fn: () => void;
  every: number | null;
}

/** Timers and a clock on fake time: `advance` runs what falls due, in time order. */
export class FakeTime implements Timers {
  #now = 0;
  #next = 1;
  readonly #pending = new Map<number, Pending>();

  now(): number {
    return this.#now;
  }

  readonly clock = { now: () => this.#now };

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.#now + ms, fn, every: null });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }

  setInterval(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.#now + ms, fn, every: ms });
    return id;
  }

  clearInterval(handle: unknown): void {
    this.#pending.delete(handle as number);
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Moves time forward by `ms`, running every timer that falls due (and flushing microtasks). */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    for (;;) {
      await flush();
      let dueId = -1;
      let due: Pending | undefined;
      for (const [id, p] of this.#pending) {
        if (p.at <= until && (due === undefined || p.at < due.at)) {
          due = p;
          dueId = id;
        }
      }
      if (due === undefined) break;
      this.#now = due.at;
      if (due.every === null) this.#pending.delete(dueId);
      else due.at += due.every;
      due.fn();
    }
    this.#now = until;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
