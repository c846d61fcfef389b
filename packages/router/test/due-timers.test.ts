import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type DueBatch, type DueEntry, DueTimers } from '../src/internal/due-timers.js';

interface Entry extends DueEntry {
  readonly name: string;
}

function entry(name: string): Entry {
  return { name, due: 0, dueBatch: null, dueSlot: 0 };
}

/** A clock the test sets by hand (fake timers run independently of it). */
function manualClock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('DueTimers', () => {
  it('fires an entry once its due time has come, not before', () => {
    const fired: string[] = [];
    const timers = new DueTimers<Entry>({ now: () => Date.now() }, (e) => fired.push(e.name));
    const start = Date.now();
    timers.schedule(entry('a'), start + 100, start);
    vi.advanceTimersByTime(99);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['a']);
    expect(timers.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives all entries one native timer, aimed at the earliest batch', () => {
    const fired: string[] = [];
    const clock = manualClock(1000.1);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    for (let i = 0; i < 10; i++) {
      clock.t = 1000.1 + i * 0.05; // ten launches within half a millisecond, same timeout
      timers.schedule(entry(`e${i}`), clock.t + 2000, clock.t);
    }
    expect(timers.size).toBe(10);
    expect(timers.armed).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    // Another millisecond of due times: a second batch, the same timer (it aims earlier).
    clock.t = 1001.2;
    timers.schedule(entry('later'), clock.t + 2000, clock.t);
    expect(timers.size).toBe(11);
    expect(vi.getTimerCount()).toBe(1);
    // An entry due before the aim moves the timer (still one).
    const early = entry('early');
    timers.schedule(early, clock.t + 500, clock.t);
    expect(vi.getTimerCount()).toBe(1);
    timers.cancel(early); // the timer keeps its aim: it finds the batch empty and moves on
    expect(vi.getTimerCount()).toBe(1);
    clock.t = 1502.2;
    vi.advanceTimersByTime(501); // fake time 501: the timer aimed at 1502 fires, finds nothing
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(1); // aimed at 3001 now: 1499 ms on
    clock.t = 3001;
    vi.advanceTimersByTime(1499);
    expect(fired).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9']);
    expect(vi.getTimerCount()).toBe(1); // now aimed at 'later'
    clock.t = 3002.2;
    vi.advanceTimersByTime(1);
    expect(fired.at(-1)).toBe('later');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('finds a batch left behind: interleaved due times share batches and the one timer', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const x1 = entry('x1');
    const y1 = entry('y1');
    const x2 = entry('x2');
    const y2 = entry('y2');
    timers.schedule(x1, 100, 0); // two timeouts in turn: attempts and retries, say
    timers.schedule(y1, 50, 0);
    timers.schedule(x2, 100, 0);
    timers.schedule(y2, 50, 0);
    expect(vi.getTimerCount()).toBe(1);
    expect(timers.size).toBe(4);
    timers.cancel(y1);
    timers.cancel(y2);
    expect(timers.size).toBe(2);
    expect(vi.getTimerCount()).toBe(1);
    clock.t = 100;
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['x1', 'x2']);
    expect(timers.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('cancels one entry without touching the others; with the last, the timer lets go of the process', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const a = entry('a');
    const b = entry('b');
    const c = entry('c');
    for (const e of [a, b, c]) timers.schedule(e, 50, 0);
    timers.cancel(b);
    expect(b.dueBatch).toBeNull();
    expect(timers.size).toBe(2);
    timers.cancel(b); // twice: nothing
    expect(timers.size).toBe(2);
    timers.cancel(a);
    expect(vi.getTimerCount()).toBe(1);
    expect(timers.referenced).toBe(1);
    timers.cancel(c);
    // Kept armed for the next entry, unref'd: it holds no process open.
    expect(timers.armed).toBe(1);
    expect(timers.referenced).toBe(0);
    expect(timers.batches).toBe(0);
    clock.t = 100;
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(0); // fired once, found nothing, not re-armed
    expect(timers.armed).toBe(0);
  });

  it('a timer kept after the last entry holds the process again for the next one: no re-arm', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const clearTimeoutSpy = vi.spyOn(globalThis, 'clearTimeout');
    const a = entry('a');
    timers.schedule(a, 50, 0);
    timers.cancel(a); // the count in flight touches zero between two bursts
    expect(timers.referenced).toBe(0);
    clock.t = 10;
    vi.advanceTimersByTime(10);
    const b = entry('b');
    timers.schedule(b, 80, 10); // due after the kept aim: the same timer, held again
    expect(timers.referenced).toBe(1);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    expect(clearTimeoutSpy).not.toHaveBeenCalled();
    clock.t = 50;
    vi.advanceTimersByTime(40); // the kept aim: nothing due, aims at b
    expect(fired).toEqual([]);
    expect(setTimeoutSpy).toHaveBeenCalledTimes(2);
    clock.t = 80;
    vi.advanceTimersByTime(30);
    expect(fired).toEqual(['b']);
    expect(vi.getTimerCount()).toBe(0);
    setTimeoutSpy.mockRestore();
    clearTimeoutSpy.mockRestore();
  });

  it('lets a batch all cancelled go at once (it dies young); the timer moves on when it fires', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const early = [entry('a'), entry('b')];
    for (const e of early) timers.schedule(e, 100, 0);
    timers.schedule(entry('late'), 300, 0);
    expect(timers.batches).toBe(2);
    for (const e of early) timers.cancel(e);
    expect(timers.batches).toBe(1);
    expect(vi.getTimerCount()).toBe(1); // still aimed at 100
    clock.t = 100;
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(1); // aimed at 300 now
    clock.t = 300;
    vi.advanceTimersByTime(200);
    expect(fired).toEqual(['late']);
    expect(timers.batches).toBe(0);
  });

  it('entries due 4,096 ms apart (one index slot) each fire at their time, and cancel alone', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const near = entry('near');
    const far = entry('far');
    const far2 = entry('far2');
    timers.schedule(near, 10, 0);
    timers.schedule(far, 10 + 4096, 0); // the slot of 10 is taken: unindexed
    timers.schedule(entry('near2'), 10, 0); // joins near's batch
    expect(timers.batches).toBe(2);
    timers.cancel(near);
    clock.t = 10;
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['near2']);
    // The slot is free again: the next batch of far's bucket takes it, beside far's own.
    timers.schedule(far2, 10 + 4096, 10);
    expect(timers.size).toBe(2);
    clock.t = 10 + 4096;
    vi.advanceTimersByTime(4096);
    expect(fired).toEqual(['near2', 'far', 'far2']);
    expect(timers.size).toBe(0);
    expect(timers.batches).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a firing entry may cancel one in a later batch taken out with it (a late timer)', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const b = entry('b');
    const timers: DueTimers<Entry> = new DueTimers<Entry>(clock, (e) => {
      fired.push(e.name);
      if (e.name === 'a') timers.cancel(b);
    });
    timers.schedule(entry('a'), 10, 0);
    timers.schedule(b, 11, 0);
    timers.schedule(entry('c'), 50, 0);
    clock.t = 12; // the timer aimed at 10 runs late: the batches of 10 and 11 are both due
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['a']);
    expect(timers.size).toBe(1);
    expect(timers.batches).toBe(1);
    clock.t = 50;
    vi.advanceTimersByTime(40);
    expect(fired).toEqual(['a', 'c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('skips an entry cancelled by another one firing in the same batch', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const b = entry('b');
    const timers: DueTimers<Entry> = new DueTimers<Entry>(clock, (e) => {
      fired.push(e.name);
      if (e.name === 'a') timers.cancel(b); // e.g. a hedge's sibling, abandoned
    });
    timers.schedule(entry('a'), 10, 0);
    timers.schedule(b, 10, 0);
    timers.schedule(entry('c'), 10, 0);
    clock.t = 10;
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['a', 'c']);
    expect(timers.size).toBe(0);
  });

  it('takes entries scheduled while firing (a retry after a timeout)', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers: DueTimers<Entry> = new DueTimers<Entry>(clock, (e) => {
      fired.push(e.name);
      if (e.name === 'first') timers.schedule(entry('retry'), clock.t + 10, clock.t);
    });
    timers.schedule(entry('first'), 10, 0);
    clock.t = 10;
    vi.advanceTimersByTime(10);
    expect(timers.size).toBe(1);
    clock.t = 20;
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['first', 'retry']);
  });

  it('never fires early: a timer that ran ahead of the clock hands its entry on', () => {
    const fired: string[] = [];
    const clock = manualClock(0);
    const timers = new DueTimers<Entry>(clock, (e) => fired.push(e.name));
    const e = entry('e');
    timers.schedule(e, 10.5, 0); // due in the 11th millisecond
    clock.t = 10.2; // the timer fires with the clock moved, but short of the due time
    vi.advanceTimersByTime(11);
    expect(fired).toEqual([]);
    expect(e.dueBatch).not.toBeNull();
    expect(timers.size).toBe(1);
    clock.t = 10.6;
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['e']);
  });

  it('trusts the timer when the clock does not move (a frozen test clock)', () => {
    const fired: string[] = [];
    const timers = new DueTimers<Entry>(manualClock(500), (e) => fired.push(e.name));
    timers.schedule(entry('e'), 600, 500);
    vi.advanceTimersByTime(99);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['e']);
  });

  it('arms whole milliseconds, capped at setTimeout’s limit, for far due times', () => {
    const clock = manualClock(0.25);
    const timers = new DueTimers<Entry>(clock, () => {});
    const e = entry('far');
    timers.schedule(e, 40 * 24 * 3600 * 1000, 0.25); // 40 days
    expect(vi.getTimerCount()).toBe(1);
    expect((e.dueBatch as DueBatch).bucket).toBe(40 * 24 * 3600 * 1000);
    timers.cancel(e);
    expect(timers.referenced).toBe(0);
    expect(vi.getTimerCount()).toBe(1); // kept, unref'd, for the next entry
  });

  it('random schedules and cancels: never early, at most 1 ms late, one timer, held while needed, none left', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const clock = manualClock(0);
    const late: number[] = [];
    const pending = new Set<Entry>();
    const timers: DueTimers<Entry> = new DueTimers<Entry>(clock, (e) => {
      expect(e.due).toBeLessThanOrEqual(clock.t); // never early
      late.push(clock.t - e.due);
      pending.delete(e);
      // Sometimes a firing entry cancels another (a hedge's sibling), maybe one due now too.
      if (pending.size > 0 && rand() < 0.3) {
        const other = [...pending][Math.floor(rand() * pending.size)]!;
        timers.cancel(other);
        pending.delete(other);
      }
    });
    let cancelled = 0;
    for (let step = 0; step < 3000; step++) {
      const r = rand();
      if (r < 0.5) {
        const e = entry(`e${step}`);
        // Mostly one long timeout, sometimes short ones (hedges, retries near the deadline).
        const wait = rand() < 0.8 ? 2000 : rand() * 300;
        timers.schedule(e, clock.t + wait, clock.t);
        pending.add(e);
      } else if (r < 0.8 && pending.size > 0) {
        const e = [...pending][Math.floor(rand() * pending.size)]!;
        timers.cancel(e);
        pending.delete(e);
        cancelled++;
      } else {
        const ms = Math.ceil(rand() * 20);
        for (let k = 0; k < ms; k++) {
          clock.t += 1; // the clock and the fake timers move together, a ms at a time
          vi.advanceTimersByTime(1);
        }
      }
      for (const e of pending) if (e.dueBatch === null) pending.delete(e); // fired
      expect(vi.getTimerCount()).toBeLessThanOrEqual(1);
      expect(timers.size).toBe(pending.size);
      // The timer holds the process exactly while something is scheduled.
      expect(timers.referenced).toBe(pending.size > 0 ? 1 : 0);
    }
    for (let k = 0; k < 2100 && pending.size > 0; k++) {
      clock.t += 1;
      vi.advanceTimersByTime(1);
      for (const e of pending) if (e.dueBatch === null) pending.delete(e);
    }
    expect(pending.size).toBe(0);
    expect(cancelled).toBeGreaterThan(100);
    expect(late.length).toBeGreaterThan(100);
    expect(Math.max(...late)).toBeLessThanOrEqual(1);
    // A timer kept after the last cancel fires once, within the longest wait, and is gone.
    clock.t += 2001;
    vi.advanceTimersByTime(2001);
    expect(vi.getTimerCount()).toBe(0);
  });
});
