import { REJECTED } from '@engram/breaker';
import { seededRandom } from '@engram/retry';
import { describe, expect, it, vi } from 'vitest';
import { Router } from '../src/index.js';
import { fakeTimersEachTest, TWO_NODE_TABLE, TWO_NODES, unavailable } from './helpers.js';

const NODES = TWO_NODES;
const TABLE = TWO_NODE_TABLE;

fakeTimersEachTest();

describe('abandoned attempts', () => {
  it('a losing hedge that was the half-open probe releases its permit, even if it never settles', async () => {
    let now = 1_000_000;
    const r = new Router({
      table: TABLE,
      clock: { now: () => now },
      random: seededRandom(1),
      options: { breakerThreshold: 1, hedge: { delayMs: 5 }, tryOpenLast: false },
    });
    const a = NODES[0]!;
    const slot = r.slotOf(a);
    await r.execute(r.routeRecall('s'), async (ctx) => {
      if (ctx.node.id === 'a') throw unavailable();
      return 'ok';
    });
    expect(r.breakers.state(slot)).toBe('open');
    now += 30_000; // open timeout elapsed: the next attempt on a is the probe
    let late: ((v: string) => void) | undefined;
    const outcome = r.execute(r.routeRecall('s'), (ctx) =>
      ctx.node.id === 'a'
        ? new Promise<string>((resolve) => {
            late = resolve; // ignores cancellation
          })
        : Promise.resolve('ok'),
    );
    await vi.advanceTimersByTimeAsync(5);
    const { routing } = await outcome;
    expect(routing.servedBy).toBe('b');
    now += 1_000;
    // The abandoned probe gave its permit back: a new probe is admitted at once.
    const admission = r.breakers.tryAcquire(slot);
    expect(admission).not.toBe(REJECTED);
    r.breakers.release(slot, admission);
    // A late answer of the abandoned attempt is ignored (no verdict on the breaker).
    const states: string[] = [];
    r.breakers.addListener((_s, from, to) => states.push(`${from}->${to}`));
    late?.('late');
    await vi.advanceTimersByTimeAsync(0);
    expect(states).toEqual([]);
    await r.close();
  });
});
