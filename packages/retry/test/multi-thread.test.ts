import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { SharedRetryBudget } from '../src/index.js';

const FIXTURE = new URL('./fixtures/budget-worker.mjs', import.meta.url);

describe('SharedRetryBudget across worker threads', () => {
  let workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
    workers = [];
  });

  it('caps the retries of all threads together at ratio * requests + the floor', async () => {
    const clockWords = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(clockWords, 0, 42_000);
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const budget = new SharedRetryBudget({ clock: { now: () => Atomics.load(clockWords, 0) } });
    const THREADS = 4;
    const REQUESTS = 5_000;
    workers = Array.from(
      { length: THREADS },
      () =>
        new Worker(FIXTURE, {
          workerData: {
            buffer: budget.buffer,
            clockBuffer: clockWords.buffer,
            gateBuffer: gate.buffer,
            requests: REQUESTS,
            retriesPerRequest: 3,
          },
        }),
    );
    const results = workers.map((w) => {
      const result = new Promise<{ retries: number }>((resolve, reject) => {
        w.on('message', (msg: { ready?: boolean; retries?: number }) => {
          if (msg.retries !== undefined) resolve({ retries: msg.retries });
        });
        w.once('error', reject);
      });
      return { ready: once(w, 'message'), result };
    });
    await Promise.all(results.map((r) => r.ready));
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const retries = (await Promise.all(results.map((r) => r.result))).reduce(
      (n, r) => n + r.retries,
      0,
    );
    const limit = 0.2 * THREADS * REQUESTS + 10 * 10;
    expect(retries).toBeLessThanOrEqual(limit);
    // Racing withdrawals may refuse a few retries they could have had, never allow extra.
    expect(retries).toBeGreaterThan(limit * 0.9);
    expect(budget.tryRetry()).toBe(retries < limit);
  });
});
