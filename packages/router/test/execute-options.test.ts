import type { NodeInfo } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import { Router } from '../src/index.js';
import { ringOf } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
];
const TABLE = ringOf(NODES, [{ spaceId: 's', primary: 'a', replicas: ['b'] }]);
const routers: Router[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

describe('per-call ExecuteOptions', () => {
  it('rejects invalid values with InvalidArgument (field, value), never throwing synchronously, without calling a node', async () => {
    const r = new Router({ table: TABLE });
    routers.push(r);
    const cases: [Record<string, unknown>, string, unknown][] = [
      [{ attemptTimeoutMs: Number.NaN }, 'options.attemptTimeoutMs', Number.NaN],
      [{ attemptTimeoutMs: 0 }, 'options.attemptTimeoutMs', 0],
      [{ attemptTimeoutMs: -5 }, 'options.attemptTimeoutMs', -5],
      [{ attemptTimeoutMs: '5' }, 'options.attemptTimeoutMs', '5'],
      [{ deadlineMs: -1 }, 'options.deadlineMs', -1],
      [{ deadlineMs: Number.NaN }, 'options.deadlineMs', Number.NaN],
      [{ deadline: 5 }, 'options.deadline', 5],
      [{ hedge: 'yes' }, 'options.hedge', 'yes'],
      [{ isRetryable: true }, 'options.isRetryable', true],
      [{ signal: {} }, 'options.signal', {}],
    ];
    let calls = 0;
    const call = async () => {
      calls++;
      return 1;
    };
    for (const [options, field, value] of cases) {
      let promise: Promise<unknown> | undefined;
      expect(() => {
        promise = r.execute(r.routeRecall('s'), call, options as never);
      }).not.toThrow();
      await expect(promise).rejects.toMatchObject({ code: 'InvalidArgument', field, value });
    }
    expect(calls).toBe(0);
    // A bad option is the caller's mistake, never a node failure on its breaker.
    for (const node of NODES) expect(r.breakers.state(r.slotOf(node))).toBe('closed');
  });

  it('accepts Infinity as attemptTimeoutMs and 0 as deadlineMs (already expired)', async () => {
    const r = new Router({ table: TABLE });
    routers.push(r);
    const ok = await r.execute(r.routeRecall('s'), async () => 1, {
      attemptTimeoutMs: Number.POSITIVE_INFINITY,
    });
    expect(ok.value).toBe(1);
    await expect(
      r.execute(r.routeRecall('s'), async () => 1, { deadlineMs: 0 }),
    ).rejects.toMatchObject({ code: 'DeadlineExceeded' });
  });

  it('query validates its options the same way', async () => {
    const r = new Router({ table: TABLE });
    routers.push(r);
    await expect(
      r.query({ spaceIds: ['s'], cue: { text: 'x' } }, { deadlineMs: -1 }),
    ).rejects.toMatchObject({ code: 'InvalidArgument', field: 'options.deadlineMs' });
  });
});
