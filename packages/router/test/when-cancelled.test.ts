import { type Clock, Deadline, seededRandom } from '@engram/retry';
import { describe, expect, it, vi } from 'vitest';
import {
  addCancelListener,
  attemptDeadlineAt,
  type CallContext,
  type CancelListener,
  Router,
  removeCancelListener,
  whenCancelled,
} from '../src/index.js';
import { fakeTimersEachTest, TWO_NODE_TABLE, TWO_NODES } from './helpers.js';

const _NODES = TWO_NODES;
const TABLE = TWO_NODE_TABLE;

fakeTimersEachTest();

/**
 * A Recall hedged after 5 ms: attempt 1 (on a) never answers and loses to attempt 2 (on b),
 * which answers. `register` runs in each attempt first. Resolves with the node that served.
 */
async function hedgedRecall(register: (ctx: CallContext) => void): Promise<string> {
  const r = new Router({
    table: TABLE,
    random: seededRandom(1),
    options: { hedge: { delayMs: 5 } },
  });
  const outcome = r.execute(r.routeRecall('s'), (ctx) => {
    register(ctx);
    return ctx.attempt === 1 ? new Promise<string>(() => {}) : Promise.resolve('ok');
  });
  await vi.advanceTimersByTimeAsync(5);
  const { routing } = await outcome;
  await r.close();
  return routing.servedBy;
}

describe('whenCancelled', () => {
  it('runs every registered callback once, in order; a disposed one does not run', async () => {
    const fired: string[] = [];
    const servedBy = await hedgedRecall((ctx) => {
      whenCancelled(ctx, () => fired.push(`first@${ctx.node.id}`));
      const dispose = whenCancelled(ctx, () => fired.push(`disposed@${ctx.node.id}`));
      whenCancelled(ctx, () => fired.push(`third@${ctx.node.id}`));
      dispose();
    });
    expect(servedBy).toBe('b');
    expect(fired).toEqual(['first@a', 'third@a']);
  });
});

/** A clock standing still at `t`. */
function fixedClock(t: number): Clock {
  return { now: () => t };
}

/** Records each call of `attemptCancelled` under `name`. */
function listener(name: string, fired: string[]): CancelListener {
  return { attemptCancelled: () => fired.push(name) };
}

describe('addCancelListener', () => {
  it("tells the router's attempt contexts' listeners once, in order; a removed one is not told", async () => {
    const fired: string[] = [];
    const servedBy = await hedgedRecall((ctx) => {
      const first = listener(`first@${ctx.node.id}`, fired);
      const removed = listener(`removed@${ctx.node.id}`, fired);
      addCancelListener(ctx, first);
      addCancelListener(ctx, first); // once per listener
      addCancelListener(ctx, removed);
      whenCancelled(ctx, () => fired.push(`callback@${ctx.node.id}`));
      removeCancelListener(ctx, removed);
    });
    expect(servedBy).toBe('b');
    // Attempt 1 (on a) lost to the hedge on b; b's listeners stay untold (b answered).
    expect(fired).toEqual(['first@a', 'callback@a']);
  });

  it('tells a listener at once when the attempt is cancelled already', async () => {
    const r = new Router({ table: TABLE, options: { attemptTimeoutMs: 10, maxRetries: 0 } });
    const fired: string[] = [];
    let first: CallContext | undefined;
    const outcome = r.execute(r.routeStore('s'), (ctx) => {
      first = ctx;
      return new Promise<string>(() => {});
    });
    const failed = expect(outcome).rejects.toThrow();
    await vi.advanceTimersByTimeAsync(10);
    await failed;
    addCancelListener(first!, listener('late', fired));
    expect(fired).toEqual(['late']);
    await r.close();
  });

  it("listens on the signal of a context that is not the router's, and can be removed", () => {
    const fired: string[] = [];
    const controller = new AbortController();
    const ctx = { signal: controller.signal } as CallContext;
    const told = listener('told', fired);
    const removed = listener('removed', fired);
    addCancelListener(ctx, told);
    addCancelListener(ctx, told); // once per listener, as on the router's contexts
    addCancelListener(ctx, removed);
    removeCancelListener(ctx, removed);
    controller.abort();
    controller.abort();
    expect(fired).toEqual(['told']);
    const aborted = { signal: AbortSignal.abort() } as CallContext;
    addCancelListener(aborted, listener('at once', fired));
    expect(fired).toEqual(['told', 'at once']);
  });
});

describe('attemptDeadlineAt', () => {
  it("is the router's attempt deadline, the attempt timeout's or the call's, whichever is first", async () => {
    const clock = fixedClock(1_000);
    const r = new Router({ table: TABLE, clock, options: { attemptTimeoutMs: 50 } });
    const seen: [number, number][] = [];
    const call = (ctx: CallContext) => {
      seen.push([attemptDeadlineAt(ctx), ctx.attemptDeadline.at]);
      return Promise.resolve('ok');
    };
    await r.execute(r.routeRecall('s'), call, { deadlineMs: 200 });
    await r.execute(r.routeRecall('s'), call, { deadlineMs: 20 });
    expect(seen).toEqual([
      [1_050, 1_050],
      [1_020, 1_020],
    ]);
    await r.close();
  });

  it("reads attemptDeadline of a context that is not the router's", () => {
    const clock = fixedClock(5);
    const ctx = { attemptDeadline: new Deadline(42, clock) } as CallContext;
    expect(attemptDeadlineAt(ctx)).toBe(42);
  });
});
