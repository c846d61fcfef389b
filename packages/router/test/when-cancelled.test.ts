import { seededRandom } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Router, whenCancelled } from '../src/index.js';
import { ringOf } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
];
const TABLE = ringOf(NODES, [{ spaceId: 's', primary: 'a', replicas: ['b'] }]);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('whenCancelled', () => {
  it('runs every registered callback once, in order; a disposed one does not run', async () => {
    const r = new Router({
      table: TABLE,
      random: seededRandom(1),
      options: { hedge: { delayMs: 5 } },
    });
    const fired: string[] = [];
    const outcome = r.execute(r.routeRecall('s'), (ctx) => {
      whenCancelled(ctx, () => fired.push(`first@${ctx.node.id}`));
      const dispose = whenCancelled(ctx, () => fired.push(`disposed@${ctx.node.id}`));
      whenCancelled(ctx, () => fired.push(`third@${ctx.node.id}`));
      dispose();
      return ctx.attempt === 1 ? new Promise<string>(() => {}) : Promise.resolve('ok');
    });
    await vi.advanceTimersByTimeAsync(5);
    const { routing } = await outcome;
    expect(routing.servedBy).toBe('b');
    expect(fired).toEqual(['first@a', 'third@a']);
    await r.close();
  });
});
