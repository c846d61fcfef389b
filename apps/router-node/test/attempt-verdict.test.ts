import { ConnectionPool } from '@engram/pool';
import { Deadline } from '@engram/retry';
import { buildRing } from '@engram/ring';
import { type CallContext, Router } from '@engram/router';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AttemptObserver,
  type AttemptVerdict,
  attemptStatus,
  attemptVerdict,
  type ClientCall,
  forward,
} from '../src/internal/forward.js';
import { GRPC_STATUS_NAMES } from '../src/internal/layout.js';
import { upstreamHeaders } from '../src/internal/upstream-headers.js';
import { Cleanup, eventually, freePort, startSlowNode } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const RECALL = '/engram.v1.MemoryService/Recall';
/** An empty RecallRequest, framed (flag 0, length 0). */
const EMPTY_FRAME = Buffer.alloc(5);

/**
 * An attempt's context: the call's deadline `callMs` from now, the attempt's `attemptMs`
 * (the router's attempt timeout; the earlier of the two binds, as the Router sets it).
 */
function context(address: string, callMs: number, attemptMs: number, aborted = false): CallContext {
  const deadline = Deadline.after(callMs);
  const c = new AbortController();
  if (aborted) c.abort();
  return {
    node: { id: 'n', address, zone: 'a' },
    attempt: 1,
    fallback: false,
    signal: c.signal,
    deadline,
    attemptDeadline: deadline.within(attemptMs),
    hedge: false,
  } as CallContext;
}

/** Records every `ended` (status name and verdict). */
function recorder() {
  const ended: { status: string; verdict: AttemptVerdict }[] = [];
  const observer: AttemptObserver = {
    started: () => 0,
    ended: (_t, status, _s, verdict) => ended.push({ status: GRPC_STATUS_NAMES[status]!, verdict }),
  };
  return { ended, observer };
}

function pool(address: string): ConnectionPool {
  // Reconnect backoff far longer than the test: once refused, the connection waits it out.
  const p = new ConnectionPool({
    channelsPerNode: 1,
    reconnectBaseDelayMs: 60_000,
    reconnectMaxDelayMs: 60_000,
  });
  cleanup.add(() => p.close());
  p.addNode('n', address);
  return p;
}

const newCall = (): ClientCall => ({ gone: false, upstream: null, children: null });

function send(p: ConnectionPool, ctx: CallContext, observer: AttemptObserver): Promise<unknown> {
  const headers = upstreamHeaders(['content-type', 'application/grpc'], RECALL, 'http');
  return forward(p, ctx, headers, EMPTY_FRAME, newCall(), undefined, observer).then(
    (r) => r,
    (e: unknown) => e,
  );
}

describe('what an attempt says of its node (outlier detection)', () => {
  it('a refused connect fails the attempts that were on it; calls never sent while it backs off are unjudged (UNAVAILABLE in the metric)', async () => {
    const address = `127.0.0.1:${await freePort()}`; // nothing listens
    const p = pool(address);
    const { ended, observer } = recorder();
    const ctx = () => context(address, 10_000, 2_000);
    // The first call opens the connection and waits on it: refused, it fails on the node.
    await send(p, ctx(), observer);
    expect(ended).toEqual([{ status: 'UNAVAILABLE', verdict: 'failed' }]);
    // Then every connection is broken and awaiting its backoff: calls fail fast, never sent.
    const errors = [];
    for (let i = 0; i < 20; i++) errors.push(await send(p, ctx(), observer));
    expect(errors.every((e) => (e as { code?: unknown }).code === 'ConnectionFailed')).toBe(true);
    expect(ended.slice(1)).toEqual(
      Array.from({ length: 20 }, () => ({ status: 'UNAVAILABLE', verdict: 'unjudged' })),
    );
  });

  it('a deadline counts against the node only when it was the router’s attempt timeout, not the caller’s', async () => {
    const node = await startSlowNode(cleanup, 'slow', 60_000); // answers far too late
    const p = pool(node.address);
    const { ended, observer } = recorder();
    // The caller's own 100 ms deadline binds (the attempt timeout, 2 s, is later): the node
    // ends the call at it with DEADLINE_EXCEEDED; that says nothing of the node.
    await send(p, context(node.address, 100, 2_000), observer);
    // The router's 100 ms attempt timeout binds (the call has 10 s): the node failed it.
    await send(p, context(node.address, 10_000, 100), observer);
    expect(ended).toEqual([
      { status: 'DEADLINE_EXCEEDED', verdict: 'unjudged' },
      { status: 'DEADLINE_EXCEEDED', verdict: 'failed' },
    ]);
  });

  it('judges an attempt that ended without a reply by which deadline passed, and a cancel as nothing', () => {
    const own = context('x', 60_000, 0);
    const callers = context('x', 0, 2_000);
    expect(GRPC_STATUS_NAMES[attemptStatus(own)]).toBe('DEADLINE_EXCEEDED');
    expect(attemptVerdict(own, attemptStatus(own))).toBe('failed');
    expect(GRPC_STATUS_NAMES[attemptStatus(callers)]).toBe('DEADLINE_EXCEEDED');
    expect(attemptVerdict(callers, attemptStatus(callers))).toBe('unjudged');
    const cancelled = context('x', 60_000, 2_000, true);
    expect(GRPC_STATUS_NAMES[attemptStatus(cancelled)]).toBe('CANCELLED');
    expect(attemptVerdict(cancelled, attemptStatus(cancelled))).toBe('unjudged');
    const reset = context('x', 60_000, 2_000);
    expect(attemptVerdict(reset, attemptStatus(reset))).toBe('failed'); // UNAVAILABLE
    expect(attemptVerdict(reset, 0)).toBe('answered');
    expect(attemptVerdict(reset, 3)).toBe('answered'); // INVALID_ARGUMENT: the node answered
    expect(attemptVerdict(reset, 13)).toBe('failed'); // INTERNAL
  });
});

describe('an attempt cancelled while it waits on its node', () => {
  it('resets its upstream stream when the context it was sent with is cancelled', async () => {
    const node = await startSlowNode(cleanup, 'slow', 60_000);
    const p = pool(node.address);
    const { ended, observer } = recorder();
    const ctx = context(node.address, 60_000, 60_000);
    const controller = new AbortController();
    const cancellable = { ...ctx, signal: controller.signal } as CallContext;
    const sent = send(p, cancellable, observer);
    await eventually(() => node.recalls() === 1);
    controller.abort();
    const err = await sent;
    expect((err as { details?: string }).details).toMatch(/stream reset/);
    await eventually(() => node.cancelled() === 1);
    expect(ended).toEqual([{ status: 'CANCELLED', verdict: 'unjudged' }]);
  });

  it("resets the losing hedge's stream when the Router gives it up", async () => {
    const slow = await startSlowNode(cleanup, 'slow', 60_000);
    const fast = await startSlowNode(cleanup, 'fast', 0);
    const p = new ConnectionPool({ channelsPerNode: 1 });
    cleanup.add(() => p.close());
    p.addNode('slow', slow.address);
    p.addNode('fast', fast.address);
    const table = buildRing({
      nodes: [
        { id: 'slow', address: slow.address },
        { id: 'fast', address: fast.address },
      ],
      vnodesPerNode: 16,
      replicationFactor: 2,
      assignments: [{ spaceId: 's', primary: 'slow', replicas: ['fast'] }],
    });
    const router = new Router({ table, pool: p, options: { hedge: { delayMs: 50 } } });
    cleanup.add(() => router.close());
    const { ended, observer } = recorder();
    const headers = upstreamHeaders(['content-type', 'application/grpc'], RECALL, 'http');
    const { routing } = await router.execute(router.routeRecall('s'), (ctx) =>
      forward(p, ctx, headers, EMPTY_FRAME, newCall(), undefined, observer),
    );
    expect(routing.servedBy).toBe('fast');
    // The slow node's call is cancelled by the router, not left to run out its minute.
    await eventually(() => slow.cancelled() === 1);
    await eventually(() => ended.length === 2);
    expect(ended).toContainEqual({ status: 'CANCELLED', verdict: 'unjudged' });
  });
});
