import { describe, expect, it } from 'vitest';
import {
  type Clock,
  isRetryError,
  LayoutMismatchError,
  RETRY_BUDGET_DEFAULTS,
  RetryBudget,
  SharedRetryBudget,
} from '../src/index.js';

class FakeClock implements Clock {
  constructor(public t = 0) {}
  now(): number {
    return this.t;
  }
}

function drain(budget: { tryRetry(): boolean }, limit = 100_000): number {
  let n = 0;
  while (n < limit && budget.tryRetry()) n++;
  return n;
}

describe('RetryBudget', () => {
  it('defaults to Finagle’s 20 %, 10 retries/s and a 10 s window', () => {
    expect(RETRY_BUDGET_DEFAULTS).toEqual({ ratio: 0.2, minRetriesPerSecond: 10, ttlMs: 10_000 });
  });

  it('in a total outage allows exactly the floor: minRetriesPerSecond * ttl', () => {
    const budget = new RetryBudget({ clock: new FakeClock() });
    expect(budget.available()).toBe(100);
    expect(drain(budget)).toBe(100);
    expect(budget.tryRetry()).toBe(false);
  });

  it('allows ratio of the requests on top of the floor', () => {
    const budget = new RetryBudget({ clock: new FakeClock() });
    for (let i = 0; i < 1_000; i++) budget.recordRequest();
    expect(drain(budget)).toBe(100 + 200);
  });

  it('forgets deposits and withdrawals after the TTL', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ clock, minRetriesPerSecond: 1 });
    for (let i = 0; i < 50; i++) budget.recordRequest();
    expect(drain(budget)).toBe(10 + 10);
    clock.t += 5_000;
    expect(budget.tryRetry()).toBe(false);
    clock.t += 5_000; // the first slice has left the window: its deposits and withdrawals too
    expect(drain(budget)).toBe(10);
    clock.t += 10_000;
    expect(budget.available()).toBe(10);
  });

  it('a budget with no floor and no requests refuses every retry', () => {
    const budget = new RetryBudget({ clock: new FakeClock(), minRetriesPerSecond: 0 });
    expect(budget.tryRetry()).toBe(false);
    budget.recordRequest();
    expect(budget.tryRetry()).toBe(false);
    for (let i = 0; i < 4; i++) budget.recordRequest();
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
  });

  it('rejects bad options naming the field and value', () => {
    expect(() => new RetryBudget({ ratio: 2 })).toThrow(/ratio.*received 2/);
    expect(() => new RetryBudget({ minRetriesPerSecond: -1 })).toThrow(
      /minRetriesPerSecond.*received -1/,
    );
    expect(() => new RetryBudget({ ttlMs: 5 })).toThrow(/ttlMs.*received 5/);
  });
});

describe('SharedRetryBudget', () => {
  it('two views over one buffer draw on the same tokens', () => {
    const clock = new FakeClock();
    const a = new SharedRetryBudget({ clock });
    const b = new SharedRetryBudget({ clock, buffer: a.buffer });
    for (let i = 0; i < 100; i++) b.recordRequest();
    expect(drain(a, 60)).toBe(60);
    expect(drain(b)).toBe(100 + 20 - 60);
    expect(a.tryRetry()).toBe(false);
  });

  it('refuses to attach with different options', () => {
    const a = new SharedRetryBudget();
    expect(() => new SharedRetryBudget({ buffer: a.buffer, ratio: 0.5 })).toThrow(/ratio/);
    expect(() => new SharedRetryBudget({ buffer: a.buffer, ttlMs: 1_000 })).toThrow(/ttlMs/);
    expect(() => new SharedRetryBudget({ buffer: a.buffer, ratio: 0.5 })).toThrow(
      LayoutMismatchError,
    );
  });

  it('refuses a buffer that is not a budget of this layout with LayoutMismatch', () => {
    for (const buffer of [
      new SharedArrayBuffer(SharedRetryBudget.byteLength),
      new SharedArrayBuffer(8),
    ]) {
      let caught: unknown;
      try {
        new SharedRetryBudget({ buffer });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(LayoutMismatchError);
      expect(caught).toMatchObject({ code: 'LayoutMismatch', what: 'retry budget' });
      expect(isRetryError(caught)).toBe(true);
    }
  });

  it('refuses a buffer that is not a SharedArrayBuffer, naming the field', () => {
    const buffer = new ArrayBuffer(SharedRetryBudget.byteLength) as unknown as SharedArrayBuffer;
    expect(() => new SharedRetryBudget({ buffer })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'buffer' }),
    );
  });
});
