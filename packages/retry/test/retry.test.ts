import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AbortedError,
  backoffDelay,
  Deadline,
  DeadlineExceededError,
  GrpcStatus,
  isRetryableError,
  RetryBudget,
  RetryBudgetExhaustedError,
  type RetryInfo,
  retry,
  retryPushbackMs,
  seededRandom,
} from '../src/index.js';

function grpcError(code: number, pushback?: string | Buffer) {
  const error = Object.assign(new Error(`grpc ${code}`), {
    code,
    metadata: {
      get: (key: string) =>
        key === 'grpc-retry-pushback-ms' && pushback !== undefined ? [pushback] : [],
    },
  });
  return error;
}
const unavailable = () => grpcError(GrpcStatus.UNAVAILABLE);

describe('classifier', () => {
  it('retries UNAVAILABLE and connection failures, not INVALID_ARGUMENT and the like', () => {
    expect(isRetryableError(unavailable())).toBe(true);
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ConnectionFailed' }))).toBe(
      true,
    );
    for (const code of [
      GrpcStatus.INVALID_ARGUMENT,
      GrpcStatus.NOT_FOUND,
      GrpcStatus.INTERNAL,
      GrpcStatus.DEADLINE_EXCEEDED,
      GrpcStatus.CANCELLED,
      GrpcStatus.RESOURCE_EXHAUSTED,
    ]) {
      expect(isRetryableError(grpcError(code))).toBe(false);
    }
    expect(isRetryableError(new Error('plain'))).toBe(false);
    expect(isRetryableError(undefined)).toBe(false);
  });

  it('honours grpc-retry-pushback-ms: a delay to wait, or a refusal when negative or malformed', () => {
    expect(retryPushbackMs(unavailable())).toBeUndefined();
    expect(retryPushbackMs(grpcError(14, '250'))).toBe(250);
    expect(retryPushbackMs(grpcError(14, Buffer.from('40')))).toBe(40);
    expect(retryPushbackMs(grpcError(14, '-1'))).toBe(-1);
    expect(retryPushbackMs(grpcError(14, 'soon'))).toBe(-1);
    expect(isRetryableError(grpcError(GrpcStatus.RESOURCE_EXHAUSTED, '100'))).toBe(true);
    expect(isRetryableError(grpcError(GrpcStatus.UNAVAILABLE, '-1'))).toBe(false);
    expect(isRetryableError(grpcError(GrpcStatus.INVALID_ARGUMENT, '100'))).toBe(false);
  });
});

describe('retry on fake timers', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 50_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries with the backoff delays of the seeded randomness until success', async () => {
    const seen: RetryInfo[] = [];
    const fn = vi.fn(async (attempt: number) => {
      if (attempt < 3) throw unavailable();
      return `ok after ${attempt}`;
    });
    const p = retry(fn, { random: seededRandom(1), onRetry: (i) => seen.push(i) });
    await vi.runAllTimersAsync();
    await expect(p).resolves.toBe('ok after 3');
    expect(fn).toHaveBeenCalledTimes(4);
    const random = seededRandom(1);
    const expected = [0, 1, 2].map((a) => backoffDelay(a, 0, {}, random));
    expect(seen.map((i) => i.delayMs)).toEqual(expected);
    expect(seen.map((i) => i.attempt)).toEqual([0, 1, 2]);
    // Timers run in whole milliseconds.
    const elapsed = Date.now() - 50_000;
    expect(elapsed).toBeGreaterThanOrEqual(expected.reduce((a, d) => a + Math.floor(d), 0));
    expect(elapsed).toBeLessThanOrEqual(expected.reduce((a, d) => a + Math.ceil(d), 0));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not retry INVALID_ARGUMENT: one attempt, the error rethrown as is', async () => {
    const error = grpcError(GrpcStatus.INVALID_ARGUMENT);
    const fn = vi.fn(async () => {
      throw error;
    });
    await expect(retry(fn)).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rethrows the last error after `retries` retries', async () => {
    const fn = vi.fn(async () => {
      throw unavailable();
    });
    const p = retry(fn, { retries: 2, jitter: 'none' }).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    expect(((await p) as { code: number }).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(Date.now() - 50_000).toBe(100 + 200);
  });

  it('waits the server pushback instead of the backoff, and stops when it says no', async () => {
    const seen: number[] = [];
    let calls = 0;
    const p = retry(
      async () => {
        calls++;
        if (calls === 1) throw grpcError(GrpcStatus.RESOURCE_EXHAUSTED, '777');
        if (calls === 2) throw grpcError(GrpcStatus.UNAVAILABLE, '-1');
        return 'unreachable';
      },
      { onRetry: (i) => seen.push(i.delayMs) },
    ).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    expect(((await p) as { code: number }).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(seen).toEqual([777]);
    expect(calls).toBe(2);
  });

  it('a deadline shorter than the next backoff fails at once with DeadlineExceeded', async () => {
    const first = unavailable();
    const p = retry(
      async () => {
        throw first;
      },
      { deadline: 150, jitter: 'none', baseMs: 200 },
    ).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    const error = (await p) as DeadlineExceededError;
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error.code).toBe('DeadlineExceeded');
    expect(error.attempts).toBe(1);
    expect(error.cause).toBe(first);
    expect(Date.now() - 50_000).toBe(0);
  });

  it('cuts a hung attempt at the deadline and aborts its signal', async () => {
    let attemptSignal: AbortSignal | undefined;
    const p = retry(
      (_attempt, signal) => {
        attemptSignal = signal;
        return new Promise<never>(() => {});
      },
      { deadline: Deadline.after(1_000) },
    ).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    const error = (await p) as DeadlineExceededError;
    expect(error.code).toBe('DeadlineExceeded');
    expect(error.attempts).toBe(1);
    expect(attemptSignal?.aborted).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('abort mid-sleep rejects with Aborted at once and leaves no timer or listener', async () => {
    const controller = new AbortController();
    const cause = unavailable();
    const p = retry(
      async () => {
        throw cause;
      },
      { signal: controller.signal, jitter: 'none', baseMs: 1_000 },
    ).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(500);
    controller.abort();
    const error = (await p) as AbortedError;
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.code).toBe('Aborted');
    expect(error.attempts).toBe(1);
    expect(error.cause).toBe(cause);
    expect(Date.now() - 50_000).toBe(500);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('an already aborted signal stops before the first attempt', async () => {
    const fn = vi.fn();
    await expect(retry(fn, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'Aborted',
      attempts: 0,
    });
    expect(fn).not.toHaveBeenCalled();
  });

  it('stops with RetryBudgetExhausted when the budget has no token left', async () => {
    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0.1, ttlMs: 10_000 });
    const fn = vi.fn(async () => {
      throw unavailable();
    });
    const p = retry(fn, { budget, retries: 3 }).catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    const error = (await p) as RetryBudgetExhaustedError;
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    expect(error.code).toBe('RetryBudgetExhausted');
    expect(error.attempts).toBe(2); // the reserve held exactly one retry
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('validates its options', async () => {
    await expect(retry(async () => 1, { retries: -1 })).rejects.toThrow(/retries.*received -1/);
    await expect(retry(async () => 1, { maxMs: 1, baseMs: 2 })).rejects.toThrow(
      /maxMs.*received 1/,
    );
  });
});

describe('retry on real timers', () => {
  it('leaves no active timer and no abort listener behind, whichever way it ends', async () => {
    // Track exactly the timers this test's retries start (a process-wide count would also see
    // the test runner's own timers come and go on a busy machine).
    const live = new Set<unknown>();
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const setSpy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((
      fn: (...a: unknown[]) => void,
      ms?: number,
      ...args: unknown[]
    ) => {
      const handle = realSet(() => {
        live.delete(handle);
        fn(...args);
      }, ms);
      live.add(handle);
      return handle;
    }) as unknown as typeof setTimeout);
    const clearSpy = vi.spyOn(globalThis, 'clearTimeout').mockImplementation(((
      handle?: Parameters<typeof clearTimeout>[0],
    ) => {
      live.delete(handle);
      realClear(handle);
    }) as typeof clearTimeout);
    const controller = new AbortController();
    let calls = 0;
    await retry(
      async () => {
        if (++calls < 3) throw unavailable();
        return 1;
      },
      { signal: controller.signal, baseMs: 1, maxMs: 2 },
    );
    await retry(async () => {
      throw grpcError(GrpcStatus.INVALID_ARGUMENT);
    }).catch(() => {});
    const aborting = new AbortController();
    const p = retry(
      async () => {
        throw unavailable();
      },
      { signal: aborting.signal, baseMs: 60_000, maxMs: 60_000, jitter: 'none', deadline: 120_000 },
    ).catch((e: unknown) => e);
    await new Promise<void>((r) => setImmediate(r));
    aborting.abort();
    expect(((await p) as AbortedError).code).toBe('Aborted');
    const started = setSpy.mock.calls.length;
    setSpy.mockRestore();
    clearSpy.mockRestore();
    expect(started).toBeGreaterThan(0); // the tracking saw retry's timers

    expect(live.size).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(aborting.signal, 'abort')).toHaveLength(0);
  });
});
