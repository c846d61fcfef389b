import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  INITIAL_BACKOFF_STATE,
  planRetry,
  RetryBudget,
  seededRandom,
} from '../src/index.js';

const OPTIONS = { maxRetries: 3, backoff: { baseMs: 100, maxMs: 5000, jitter: 'full' as const } };

describe('planRetry: the one next-attempt step of retry() and the Router', () => {
  it('waits the backoff step when there is no pushback, and counts the retry', () => {
    const plan = planRetry(INITIAL_BACKOFF_STATE, OPTIONS, undefined, 10_000, seededRandom(7));
    const expected = backoffDelay(0, 0, OPTIONS.backoff, seededRandom(7));
    expect(plan).toEqual({
      retry: true,
      delayMs: expected,
      next: { attempt: 1, prevDelayMs: expected },
    });
  });

  it('waits the server pushback instead of the backoff (gRFC A6), even when shorter', () => {
    const plan = planRetry({ attempt: 2, prevDelayMs: 300 }, OPTIONS, 5, 10_000, Math.random);
    expect(plan).toEqual({ retry: true, delayMs: 5, next: { attempt: 3, prevDelayMs: 5 } });
  });

  it('stops in this order: retries exhausted, refused by the server, deadline, budget', () => {
    const empty = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0 });
    const last = { attempt: 3, prevDelayMs: 0 };
    expect(planRetry(last, OPTIONS, -1, 0, Math.random, empty)).toEqual({
      retry: false,
      reason: 'exhausted',
    });
    expect(planRetry(INITIAL_BACKOFF_STATE, OPTIONS, -1, 0, Math.random, empty)).toEqual({
      retry: false,
      reason: 'refused',
    });
    expect(planRetry(INITIAL_BACKOFF_STATE, OPTIONS, 50, 50, Math.random, empty)).toEqual({
      retry: false,
      reason: 'deadline',
    });
    expect(planRetry(INITIAL_BACKOFF_STATE, OPTIONS, 50, 51, Math.random, empty)).toEqual({
      retry: false,
      reason: 'budget',
    });
  });

  it('takes a budget token only for a retry that happens', () => {
    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 1, ttlMs: 1000 });
    // Refused and deadline plans leave the one token in place…
    planRetry(INITIAL_BACKOFF_STATE, OPTIONS, -1, 10_000, Math.random, budget);
    planRetry(INITIAL_BACKOFF_STATE, OPTIONS, 500, 100, Math.random, budget);
    // …for the retry that goes ahead.
    expect(planRetry(INITIAL_BACKOFF_STATE, OPTIONS, 1, 100, Math.random, budget).retry).toBe(true);
    expect(planRetry(INITIAL_BACKOFF_STATE, OPTIONS, 1, 100, Math.random, budget)).toMatchObject({
      reason: 'budget',
    });
  });
});
