import { afterEach, describe, expect, it, vi } from 'vitest';
import { perTurn, seededRandom, systemClock, turnClock } from '../src/index.js';

describe('systemClock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is performance.timeOrigin + performance.now(), looked up per call', () => {
    vi.spyOn(performance, 'now').mockReturnValue(1_234.5);
    expect(systemClock.now()).toBe(performance.timeOrigin + 1_234.5);
  });

  it('follows a replaced performance object, its timeOrigin included', () => {
    const real = systemClock.now();
    vi.stubGlobal('performance', { timeOrigin: 5_000, now: () => 250 });
    try {
      expect(systemClock.now()).toBe(5_250);
    } finally {
      vi.unstubAllGlobals();
    }
    // Back on the real object: its own origin again, not the fake's.
    expect(systemClock.now()).toBeGreaterThanOrEqual(real);
    expect(systemClock.now()).toBeLessThan(real + 60_000);
  });

  it('ignores wall-clock steps', () => {
    const before = systemClock.now();
    vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000); // wall clock +1 h
    expect(systemClock.now()).toBeLessThan(before + 60_000);
    vi.spyOn(Date, 'now').mockReturnValue(0); // wall clock back to 1970
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
  });

  it('is frozen: nobody can swap the process-wide clock', () => {
    expect(Object.isFrozen(systemClock)).toBe(true);
  });
});

describe('seededRandom', () => {
  it('repeats its sequence for a seed and differs between seeds', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const first = Array.from({ length: 8 }, a);
    expect(Array.from({ length: 8 }, b)).toEqual(first);
    expect(Array.from({ length: 8 }, c)).not.toEqual(first);
  });

  it('is mulberry32 (pinned: seeded jitter in other packages’ tests depends on it)', () => {
    const r = seededRandom(1);
    expect([r(), r(), r()]).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
  });

  it('stays in [0, 1) and spreads evenly', () => {
    const r = seededRandom(7);
    const buckets = new Array<number>(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = r();
      if (x >= 0 && x < 1) buckets[Math.floor(x * 10)]!++;
      else outside++;
    }
    expect(outside).toBe(0);
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(500);
  });
});

describe('perTurn', () => {
  /** A fake clock that counts its readings. */
  function counting(start = 1_000) {
    const c = {
      t: start,
      reads: 0,
      now: () => {
        c.reads++;
        return c.t;
      },
    };
    return c;
  }
  const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

  it('reads its clock once per synchronous run and keeps that reading for the run', async () => {
    const inner = counting();
    const clock = perTurn(inner);
    expect(clock.now()).toBe(1_000);
    inner.t = 1_005; // time passes inside the run
    expect(clock.now()).toBe(1_000);
    expect(clock.now()).toBe(1_000);
    expect(inner.reads).toBe(1);
    await drain();
    expect(clock.now()).toBe(1_005);
    expect(inner.reads).toBe(2);
  });

  it('reads afresh in a microtask that runs after the first reading was forgotten', async () => {
    const inner = counting();
    const clock = perTurn(inner);
    clock.now();
    inner.t = 2_000;
    // Queued after the reading: runs once the run that took it is over.
    const later = await Promise.resolve().then(() => Promise.resolve().then(() => clock.now()));
    expect(later).toBe(2_000);
    expect(inner.reads).toBe(2);
  });

  it('never reads when nobody asks, and each instance keeps its own reading', async () => {
    const a = counting(10);
    const b = counting(20);
    const ca = perTurn(a);
    const cb = perTurn(b);
    await drain();
    expect(a.reads + b.reads).toBe(0);
    expect([ca.now(), cb.now(), ca.now()]).toEqual([10, 20, 10]);
    expect([a.reads, b.reads]).toEqual([1, 1]);
  });

  it('turnClock follows systemClock across turns', async () => {
    const before = systemClock.now();
    const first = turnClock.now();
    expect(first).toBeGreaterThanOrEqual(before);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = turnClock.now();
    expect(second).toBeGreaterThan(first);
    expect(second).toBeLessThanOrEqual(systemClock.now());
  });

  it('refuses what is not a clock, with the field and value', () => {
    for (const bad of [null, undefined, 5, {}, { now: 1 }]) {
      expect(() => perTurn(bad as never)).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', field: 'clock', value: bad }),
      );
    }
  });
});
