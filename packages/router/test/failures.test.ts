import type { MemoryNode } from '@engram/memory-node';
import { RetryBudget } from '@engram/retry';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Router, type RouterInit } from '../src/index.js';
import {
  type ChildNode,
  infoOf,
  refusedAddress,
  ringOf,
  spawnNode,
  startNodes,
} from './helpers.js';

/** Scheduling margin for "ends by the deadline" on a shared, noisy 2-core machine. */
const MARGIN_MS = 250;

let replicas: MemoryNode[] = [];
const children: ChildNode[] = [];
const routers: Router[] = [];

beforeAll(async () => {
  replicas = await startNodes(2, 'r');
});
afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
  await Promise.all(replicas.map((n) => n.close()));
});
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function router(init: Partial<RouterInit> & { table: RouterInit['table'] }): Router {
  const r = new Router({
    budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    ...init,
  });
  routers.push(r);
  return r;
}

async function child(id: string): Promise<ChildNode> {
  const node = await spawnNode(id);
  children.push(node);
  return node;
}

function tableWithPrimary(primary: { id: string; address: string }, spaceId: string) {
  return ringOf(
    [infoOf(primary), ...replicas.map(infoOf)],
    [{ spaceId, primary: primary.id, replicas: replicas.map((r) => r.id) }],
  );
}

describe('failures of real processes', () => {
  it('falls back to a replica when the primary process is killed', async () => {
    const primary = await child('p-killed');
    const r = router({ table: tableWithPrimary(primary, 'k') });
    expect((await r.recall({ spaceId: 'k', cue: { text: 'x' } })).routing?.servedBy).toBe(
      'p-killed',
    );
    await primary.stop();
    const recalled = await r.recall({ spaceId: 'k', cue: { text: 'x' } });
    expect(recalled.routing).toMatchObject({ servedBy: 'r1', fallback: true });
  });

  it('answers a black-holed primary (SIGSTOP) from a replica: after the attempt timeout, or at once through a hedge', async () => {
    const primary = await child('p-stopped');
    const table = tableWithPrimary(primary, 'bh');
    const events: string[] = [];
    const hooks = {
      onAttempt: (_op: string, node: { id: string }, outcome: string, _ms: number, e?: unknown) =>
        events.push(
          `${node.id} ${outcome}${e === undefined ? '' : ` ${(e as { code?: unknown }).code}`}`,
        ),
      onRetry: (_op: string, node: { id: string }, _n: number, delayMs: number) =>
        events.push(`retry ${node.id} after ${delayMs}`),
    };
    const plain = router({ table, hooks, options: { attemptTimeoutMs: 1_000, deadlineMs: 5_000 } });
    const hedged = router({
      table,
      hooks,
      options: { attemptTimeoutMs: 1_000, deadlineMs: 5_000, hedge: { delayMs: 50 } },
    });
    // Warm both routers' connections, then stop the process: TCP stays open, nothing answers.
    await plain.recall({ spaceId: 'bh', cue: { text: 'x' } });
    await hedged.recall({ spaceId: 'bh', cue: { text: 'x' } });
    primary.process.kill('SIGSTOP');

    events.length = 0;
    let started = performance.now();
    const slow = await plain.recall({ spaceId: 'bh', cue: { text: 'x' } });
    expect(slow.routing).toMatchObject({ servedBy: 'r1', attempts: 2, fallback: true });
    // Mechanism: the primary's attempt timed out (the node never answered), then fail-over.
    expect(events).toEqual(['p-stopped error AttemptTimeout', 'retry r1 after 0', 'r1 ok']);
    expect(performance.now() - started).toBeLessThan(5_000 + MARGIN_MS); // within its deadline

    events.length = 0;
    started = performance.now();
    const fast = await hedged.recall({ spaceId: 'bh', cue: { text: 'x' } });
    expect(fast.routing).toMatchObject({ servedBy: 'r1', attempts: 2, fallback: true });
    // Mechanism: the hedge went to r1 while the primary's attempt was still pending and served;
    // the primary's attempt was abandoned, never waited out (no AttemptTimeout, no verdict).
    expect(events).toEqual(['retry r1 after 0', 'r1 ok']);
    expect(performance.now() - started).toBeLessThan(5_000 + MARGIN_MS); // within its deadline

    // With only the stopped node to go to, the operation ends at its deadline (decided by the
    // attempt's timer, the call ignoring nothing: it never answers).
    const only = router({
      table,
      hooks,
      options: { replicaFallback: false, attemptTimeoutMs: Number.POSITIVE_INFINITY },
    });
    events.length = 0;
    started = performance.now();
    await expect(
      only.recall({ spaceId: 'bh', cue: { text: 'x' } }, { deadlineMs: 500 }),
    ).rejects.toMatchObject({
      code: 'DeadlineExceeded',
    });
    expect(events).toEqual(['p-stopped error DeadlineExceeded']);
    // Generous bound only (a missing deadline timer would hang forever, not be late).
    expect(performance.now() - started).toBeLessThan(500 + 2_000);
  });

  it('never overruns the deadline against refused connections, however many retries', async () => {
    const deadA = { id: 'deadA', address: await refusedAddress() };
    const deadB = { id: 'deadB', address: await refusedAddress() };
    const table = ringOf(
      [deadA, deadB],
      [{ spaceId: 'out', primary: 'deadA', replicas: ['deadB'] }],
    );
    for (const maxRetries of [3, 100]) {
      const r = router({
        table,
        options: {
          maxRetries,
          retryBaseDelayMs: 10,
          retryMaxDelayMs: 40,
          breakerThreshold: 1_000_000,
        },
      });
      const started = performance.now();
      const error = await r
        .recall({ spaceId: 'out', cue: { text: 'x' } }, { deadlineMs: 400 })
        .catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      expect(elapsed).toBeLessThan(400 + MARGIN_MS);
      expect(['DeadlineExceeded', 'AllReplicasFailed']).toContain((error as { code: string }).code);
      if (maxRetries === 100) expect((error as { code: string }).code).toBe('DeadlineExceeded');
    }
  });
});
