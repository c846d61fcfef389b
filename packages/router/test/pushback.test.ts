import { RetryBudget, seededRandom } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import { Metadata } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Router, type RouterOptions } from '../src/index.js';
import { ringOf } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
];
const TABLE = ringOf(NODES, [{ spaceId: 's', primary: 'a', replicas: ['b'] }]);

function exhausted(pushbackMs: string): Error {
  const metadata = new Metadata();
  metadata.set('grpc-retry-pushback-ms', pushbackMs);
  return Object.assign(new Error('slow down'), { code: 8, details: 'slow down', metadata });
}

function makeRouter(options: RouterOptions, retries: number[]) {
  return new Router({
    table: TABLE,
    random: seededRandom(1),
    budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    options: { retryJitter: 'none', retryBaseDelayMs: 10, breakerThreshold: 1000, ...options },
    hooks: { onRetry: (_op, _node, _n, delayMs) => retries.push(delayMs) },
  });
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('grpc-retry-pushback-ms', () => {
  it('waits at least the pushback before retrying that node', async () => {
    const retries: number[] = [];
    const r = makeRouter({ replicaFallback: false, maxRetries: 1 }, retries);
    const at: number[] = [];
    const started = Date.now();
    const outcome = r.execute(r.routeRecall('s'), async () => {
      at.push(Date.now() - started);
      if (at.length === 1) throw exhausted('300');
      return 'ok';
    });
    await vi.advanceTimersByTimeAsync(299);
    expect(at).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    const { value, routing } = await outcome;
    expect(value).toBe('ok');
    expect(routing.attempts).toBe(2);
    expect(at).toEqual([0, 300]);
    expect(retries).toEqual([300]);
    await r.close();
  });

  it('never retries a node whose pushback is negative, but fails over', async () => {
    const retries: number[] = [];
    const r = makeRouter({ maxRetries: 3 }, retries);
    const calls: string[] = [];
    const outcome = r.execute(
      r.routeRecall('s'),
      async (ctx) => {
        calls.push(ctx.node.id);
        throw ctx.node.id === 'a' ? exhausted('-1') : Object.assign(new Error('x'), { code: 14 });
      },
      { isRetryable: () => true },
    );
    const settled = outcome.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10_000);
    const error = (await settled) as { code: string };
    expect(calls[0]).toBe('a');
    expect(calls.slice(1).every((id) => id === 'b')).toBe(true);
    expect(calls.length).toBe(5); // a once, b once, then 3 retries all on b
    expect(error.code).toBe('AllReplicasFailed');
    await r.close();
  });
});
