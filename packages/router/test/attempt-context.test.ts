import type { NodeInfo } from '@engram/ring';
import { describe, expect, it, vi } from 'vitest';
import {
  type CallContext,
  Router,
  type RoutingDecision,
  type SettledCall,
  whenCancelled,
} from '../src/index.js';
import { fakeTimersEachTest, TWO_NODE_TABLE, TWO_NODES, unavailable } from './helpers.js';

const NODES = TWO_NODES;
const TABLE = TWO_NODE_TABLE;

fakeTimersEachTest();

/** `executeTo` as a promise of its outcome. */
function executeTo<T>(
  r: Router,
  decision: RoutingDecision,
  call: SettledCall<T>,
  options = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    r.executeTo(decision, call, options, { routed: (value) => resolve(value), failed: reject });
  });
}

describe("the router's attempt as a CallContext", () => {
  it('serialises as the attempt it describes, not the operation behind it', async () => {
    const r = new Router({ table: TABLE });
    let json = '';
    await r.execute(r.routeRecall('s'), (ctx) => {
      json = JSON.stringify(ctx);
      return Promise.resolve('ok');
    });
    expect(JSON.parse(json)).toEqual({
      node: { id: 'a', address: '127.0.0.1:1001' },
      attempt: 1,
      fallback: false,
      hedge: false,
    });
    await r.close();
  });

  it('refuses a hand-made decision with a replica that is not a node before any attempt', async () => {
    const r = new Router({ table: TABLE });
    const decision: RoutingDecision = {
      ...r.routeRecall('s'),
      replicas: [NODES[1]!, null as unknown as NodeInfo],
    };
    let attempts = 0;
    const failed = executeTo(r, decision, (_ctx, settle) => {
      attempts++;
      settle.resolve('never');
    });
    await expect(failed).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'decision.replicas',
    });
    expect(attempts).toBe(0);
    await r.close();
  });

  it('records a timed-out attempt as timed out, even when its call fails at once on being cancelled', async () => {
    const errors: unknown[] = [];
    const r = new Router({
      table: TABLE,
      options: { attemptTimeoutMs: 10, maxRetries: 0, replicaFallback: false },
      hooks: { onAttempt: (_op, _node, _outcome, _ms, error) => errors.push(error) },
    });
    // A call whose cancellation ends it with a failure of its own, synchronously (as a reset
    // stream reports one): the timeout decided the attempt first.
    const call: SettledCall<string> = (ctx: CallContext, settle) => {
      whenCancelled(ctx, () => settle.reject(unavailable('stream reset')));
    };
    const failed = executeTo(r, r.routeRecall('s'), call);
    const outcome = expect(failed).rejects.toMatchObject({ code: 'ConnectionFailed' });
    await vi.advanceTimersByTimeAsync(10);
    await outcome;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'AttemptTimeout' });
    await r.close();
  });
});
