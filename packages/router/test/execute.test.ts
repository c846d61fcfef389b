import { CircuitBreakerOpenError } from '@engram/breaker';
import { DeadlineExceededError, RetryBudget, seededRandom } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AllReplicasFailedError,
  type AttemptRunner,
  type CallContext,
  type ExecuteOptions,
  type Routed,
  Router,
  type RouterInit,
  type RouterOptions,
  type RoutingDecision,
  RoutingStrategy,
  whenCancelled,
} from '../src/index.js';
import { invalidArgument, ringOf, settling, unavailable } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
  { id: 'c', address: '127.0.0.1:1003' },
];
const TABLE = ringOf(NODES, [{ spaceId: 's', primary: 'a', replicas: ['b', 'c'] }]);

/** A scripted node: each call's behaviour by node id. */
type Behaviour = 'ok' | 'unavailable' | 'invalid' | 'hang' | 'hang-ignoring-signal';

function scripted(behaviour: Record<string, Behaviour>) {
  const calls: CallContext[] = [];
  const call = (ctx: CallContext): Promise<string> => {
    calls.push(ctx);
    switch (behaviour[ctx.node.id] ?? 'ok') {
      case 'ok':
        return Promise.resolve(`from ${ctx.node.id}`);
      case 'unavailable':
        return Promise.reject(unavailable());
      case 'invalid':
        return Promise.reject(invalidArgument());
      case 'hang':
        return new Promise((_resolve, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }),
        );
      case 'hang-ignoring-signal':
        return new Promise(() => {});
    }
  };
  return { calls, call };
}

function makeRouter(options: RouterOptions = {}, init: Partial<RouterInit> = {}): Router {
  return new Router({
    table: TABLE,
    random: seededRandom(1),
    // A generous budget unless a test is about the budget.
    budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    options: { retryJitter: 'none', ...options },
    ...init,
  });
}

async function settle<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Both ways to run an operation: `execute`'s promises, and `executeTo`'s settle and sink. */
/**
 * No timer survives the operation holding the process: the only one left may be the router's
 * attempt timer, kept armed unref'd after the last attempt (DueTimers), which fires once to
 * find nothing.
 */
function expectNoTimerHeld(r: Router, label?: string): void {
  expect(r.attemptTimers.referenced, label).toBe(0);
  expect(r.attemptTimers.size, label).toBe(0);
  expect(vi.getTimerCount(), label).toBe(r.attemptTimers.armed);
}

const MODES = ['execute', 'executeTo', 'executeTo with an AttemptRunner'] as const;
type Mode = (typeof MODES)[number];
let mode: Mode = 'execute';

/**
 * `router.execute(decision, call, options)` in the mode under test. For `executeTo`, the
 * promise-returning call reports to its AttemptSettle (given as a function, or as an object's
 * `runAttempt`) and the sink is read back as a promise, so every test below checks the same
 * behaviour through every path.
 */
function run<T>(
  router: Router,
  decision: RoutingDecision,
  call: (ctx: CallContext) => Promise<T>,
  options: ExecuteOptions = {},
): Promise<Routed<T>> {
  if (mode === 'execute') return router.execute(decision, call, options);
  const settled = settling(call);
  const runner: AttemptRunner<T> = { runAttempt: (ctx, settle) => settled(ctx, settle) };
  return new Promise((resolve, reject) => {
    router.executeTo<T>(decision, mode === 'executeTo' ? settled : runner, options, {
      routed: (value, routing) => resolve({ value, routing }),
      failed: reject,
    });
  });
}

describe.each(MODES)('through %s', (m) => {
  beforeEach(() => {
    mode = m;
  });

  describe('execute', () => {
    it('serves from the primary first; RoutingInfo says so', async () => {
      const r = makeRouter();
      const { calls, call } = scripted({});
      const result = await run(r, r.routeRecall('s'), call);
      expect(result.value).toBe('from a');
      expect(result.routing).toEqual({
        servedBy: 'a',
        attempts: 1,
        fallback: false,
        strategy: 'PrimaryWithFallback',
        tableEpoch: 0,
        acknowledged: 0,
        asked: 0,
        degraded: false,
      });
      expect(calls.map((c) => [c.node.id, c.attempt, c.fallback])).toEqual([['a', 1, false]]);
    });

    it('fails over to replicas in order at once, without backoff', async () => {
      const r = makeRouter();
      const { calls, call } = scripted({ a: 'unavailable', b: 'unavailable' });
      const result = await run(r, r.routeRecall('s'), call);
      expect(result.routing).toMatchObject({ servedBy: 'c', attempts: 3, fallback: true });
      expect(calls.map((c) => c.node.id)).toEqual(['a', 'b', 'c']);
      expectNoTimerHeld(r);
    });

    it('retries with exponential backoff (base * 2^n, capped) after every target failed', async () => {
      const delays: number[] = [];
      const r = makeRouter(
        {
          retryBaseDelayMs: 100,
          retryMaxDelayMs: 300,
          maxRetries: 4,
          deadlineMs: 60_000,
          replicateWrites: false,
        },
        {
          hooks: {
            onRetry: (_op, _node, _attempt, delayMs) => (delayMs > 0 ? delays.push(delayMs) : 0),
          },
        },
      );
      const { calls, call } = scripted({ a: 'unavailable' });
      const pending = settle(run(r, r.routeStore('s'), call, {}));
      const decisionless = r.routeStore('s');
      expect(decisionless.strategy).toBe('Primary');
      await vi.runAllTimersAsync();
      const { value } = await pending;
      // Store falls back to b at once (b answers), so no backoff was needed here:
      expect((value as { routing: { servedBy: string } }).routing.servedBy).toBe('b');
      expect(delays).toEqual([]);

      // With a single target every retry goes back to it after backoff.
      const single = makeRouter(
        {
          retryBaseDelayMs: 100,
          retryMaxDelayMs: 300,
          maxRetries: 4,
          deadlineMs: 60_000,
          storeFallback: false,
        },
        { hooks: { onRetry: (_op, _node, _attempt, delayMs) => delays.push(delayMs) } },
      );
      const started = Date.now();
      const times: number[] = [];
      const failing = (ctx: CallContext) => {
        times.push(Date.now() - started);
        calls.push(ctx);
        return Promise.reject(unavailable());
      };
      const outcome = settle(run(single, single.routeStore('s'), failing));
      await vi.runAllTimersAsync();
      const { error } = await outcome;
      expect(delays).toEqual([100, 200, 300, 300]);
      expect(times).toEqual([0, 100, 300, 600, 900]);
      expect((error as { code: string }).code).toBe('ConnectionFailed');
      expect((error as { attempts: number }).attempts).toBe(5);
    });

    it('never overruns the deadline however many retries are configured', async () => {
      for (const behaviour of ['unavailable', 'hang', 'hang-ignoring-signal'] as const) {
        const r = makeRouter({
          maxRetries: 100,
          retryBaseDelayMs: 7,
          retryMaxDelayMs: 50,
          attemptTimeoutMs: 10_000,
          breakerThreshold: 1_000_000,
        });
        const { call } = scripted({ a: behaviour, b: behaviour, c: behaviour });
        const started = Date.now();
        let endedAt = -1;
        const outcome = settle(run(r, r.routeRecall('s'), call, { deadlineMs: 1_000 })).then(
          (o) => {
            endedAt = Date.now() - started;
            return o;
          },
        );
        await vi.advanceTimersByTimeAsync(2_000);
        const { error } = await outcome;
        expect((error as { code: string }).code, behaviour).toBe('DeadlineExceeded');
        expect(endedAt, behaviour).toBeLessThanOrEqual(1_000);
        expectNoTimerHeld(r, behaviour);
      }
    });

    it('cuts a backoff short: a delay that would reach the deadline ends the operation at once', async () => {
      const r = makeRouter({
        maxRetries: 3,
        retryBaseDelayMs: 5_000,
        retryMaxDelayMs: 5_000,
        replicaFallback: false,
      });
      const { calls, call } = scripted({ a: 'unavailable' });
      const started = Date.now();
      const outcome = settle(run(r, r.routeRecall('s'), call, { deadlineMs: 1_000 }));
      await vi.advanceTimersByTimeAsync(0);
      const { error } = await outcome;
      expect((error as { code: string }).code).toBe('DeadlineExceeded');
      expect(Date.now() - started).toBe(0);
      expect(calls).toHaveLength(1);
      // @engram/retry's class, stamped with the operation's attempts, failures and routing.
      expect(error).toBeInstanceOf(DeadlineExceededError);
      expect(error).toMatchObject({ attempts: 1, routing: { attempts: 1, servedBy: '' } });
      expect((error as DeadlineExceededError).errors.map((e) => e.nodeId)).toEqual(['a']);
    });

    it('gives non-retryable errors straight back, unchanged, without fall-back', async () => {
      const r = makeRouter();
      const { calls, call } = scripted({ a: 'invalid' });
      const { error } = await settle(run(r, r.routeRecall('s'), call));
      expect((error as { code: number }).code).toBe(3);
      expect(calls).toHaveLength(1);
    });

    it('all targets failing is AllReplicasFailed with each target error', async () => {
      const r = makeRouter({ maxRetries: 0 });
      const { call } = scripted({ a: 'unavailable', b: 'unavailable', c: 'unavailable' });
      const { error } = await settle(run(r, r.routeRecall('s'), call));
      expect(error).toBeInstanceOf(AllReplicasFailedError);
      const e = error as AllReplicasFailedError;
      expect(e.errors.map((t) => [t.nodeId, (t.error as { code: number }).code])).toEqual([
        ['a', 14],
        ['b', 14],
        ['c', 14],
      ]);
      expect(e.attempts).toBe(3);
    });

    it('times out a silent attempt and fails over (attemptTimeoutMs), aborting its signal', async () => {
      const r = makeRouter({ attemptTimeoutMs: 300 });
      const { calls, call } = scripted({ a: 'hang' });
      const started = Date.now();
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(300);
      const { value } = await outcome;
      expect(value?.routing).toMatchObject({ servedBy: 'b', attempts: 2, fallback: true });
      expect(Date.now() - started).toBe(300);
      expect(calls[0]!.signal.aborted).toBe(true);
      expect(calls[0]!.attemptDeadline.at).toBe(started + 300);
      expect(calls[0]!.deadline.at).toBe(started + 10_000);
    });

    it('calls launched together share one native timer, and each still times out', async () => {
      const r = makeRouter({ attemptTimeoutMs: 300, replicaFallback: false, maxRetries: 0 });
      const { calls, call } = scripted({ a: 'hang' });
      const outcomes = Array.from({ length: 20 }, () => settle(run(r, r.routeRecall('s'), call)));
      expect(calls).toHaveLength(20);
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(299);
      expect(calls.some((c) => c.signal.aborted)).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      for (const { error } of await Promise.all(outcomes)) {
        expect((error as { code: string }).code).toBe('ConnectionFailed');
      }
      expect(calls.every((c) => c.signal.aborted)).toBe(true);
      expectNoTimerHeld(r);
    });

    it('fails over from an attempt that ignores cancellation once its timeout passes', async () => {
      const r = makeRouter({ attemptTimeoutMs: 200 });
      const { calls, call } = scripted({ a: 'hang-ignoring-signal' });
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(200);
      const { value } = await outcome;
      expect(value?.routing).toMatchObject({ servedBy: 'b', attempts: 2 });
      expect(calls[0]!.signal.aborted).toBe(true);
      expectNoTimerHeld(r);
    });

    it("ends with Aborted on the caller's signal and aborts the attempt in flight", async () => {
      const r = makeRouter();
      const { calls, call } = scripted({ a: 'hang' });
      const controller = new AbortController();
      const outcome = settle(run(r, r.routeRecall('s'), call, { signal: controller.signal }));
      await vi.advanceTimersByTimeAsync(10);
      controller.abort(new Error('bye'));
      const { error } = await outcome;
      expect((error as { code: string }).code).toBe('Aborted');
      expect(calls[0]!.signal.aborted).toBe(true);
      expectNoTimerHeld(r);
      // An already-aborted signal makes no call at all.
      const before = calls.length;
      const again = await settle(run(r, r.routeRecall('s'), call, { signal: controller.signal }));
      expect((again.error as { code: string }).code).toBe('Aborted');
      expect(calls.length).toBe(before);
    });

    it('reports attempts, fall-backs and completion to the hooks', async () => {
      const events: string[] = [];
      const r = makeRouter(
        {},
        {
          hooks: {
            onAttempt: (op, node, outcome) => events.push(`attempt ${op} ${node.id} ${outcome}`),
            onFallback: (op, from, to) => events.push(`fallback ${op} ${from.id}->${to.id}`),
            onRetry: (op, node, attempt, delay) =>
              events.push(`retry ${op} ${node.id} #${attempt} ${delay}ms`),
            onComplete: (op, outcome, _ms, routing) =>
              events.push(`complete ${op} ${outcome} ${routing?.servedBy}`),
          },
        },
      );
      const { call } = scripted({ a: 'unavailable' });
      await run(r, r.routeRecall('s'), call);
      expect(events).toEqual([
        'attempt recall a error',
        'fallback recall a->b',
        'retry recall b #2 0ms',
        'attempt recall b ok',
        'complete recall ok b',
      ]);
    });
  });

  describe('whenCancelled and hand-made decisions', () => {
    it('runs the callback once when a router attempt is cancelled, and can be disposed', async () => {
      const r = makeRouter({ hedge: { delayMs: 10 }, attemptTimeoutMs: 1_000 });
      const cancelled: string[] = [];
      const call = (ctx: CallContext) =>
        new Promise<string>((resolve) => {
          if (ctx.node.id === 'a') whenCancelled(ctx, () => cancelled.push('a'));
          else {
            const dispose = whenCancelled(ctx, () => cancelled.push('b'));
            dispose();
            resolve('b');
          }
        });
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(10);
      expect((await outcome).value?.routing.servedBy).toBe('b');
      expect(cancelled).toEqual(['a']);
    });

    it('listens on the signal of any other CallContext', () => {
      const controller = new AbortController();
      const seen: number[] = [];
      const ctx = { signal: controller.signal } as CallContext;
      whenCancelled(ctx, () => seen.push(1));
      const dispose = whenCancelled(ctx, () => seen.push(2));
      dispose();
      controller.abort();
      whenCancelled(ctx, () => seen.push(3)); // already aborted: at once
      expect(seen).toEqual([1, 3]);
    });

    it('ignores replicas of a decision whose strategy allows no fall-back', async () => {
      const r = makeRouter({ maxRetries: 0 });
      const { calls, call } = scripted({ a: 'unavailable' });
      const decision = { ...r.routeRecall('s'), strategy: RoutingStrategy.Primary };
      const { error } = await settle(run(r, decision, call));
      expect((error as { code: string }).code).toBe('ConnectionFailed');
      expect(calls.map((c) => c.node.id)).toEqual(['a']);
    });
  });

  describe('hooks', () => {
    it('a hook that throws is logged, never breaks the operation', async () => {
      const logged: unknown[] = [];
      const logger = { error: (obj: unknown) => logged.push(obj), warn() {}, debug() {} };
      const r = makeRouter(
        {},
        {
          logger: logger as unknown as RouterInit['logger'],
          hooks: {
            onAttempt: () => {
              throw new Error('bad hook');
            },
            onComplete: () => {
              throw new Error('bad hook');
            },
          },
        },
      );
      const { call } = scripted({ a: 'unavailable' });
      const { routing } = await run(r, r.routeRecall('s'), call);
      expect(routing.servedBy).toBe('b');
      expect(logged).toHaveLength(3);
    });
  });

  describe('execute with breakers', () => {
    it('opens a breaker after the threshold of consecutive failures; then refuses without calling', async () => {
      const transitions: string[] = [];
      const r = makeRouter(
        { breakerThreshold: 5, maxRetries: 0, replicaFallback: false },
        {
          hooks: {
            onBreakerTransition: (node, from, to) => transitions.push(`${node.id} ${from}->${to}`),
          },
        },
      );
      const { calls, call } = scripted({ a: 'unavailable' });
      for (let i = 0; i < 5; i++) {
        const { error } = await settle(run(r, r.routeRecall('s'), call));
        expect((error as { code: string }).code).toBe('ConnectionFailed');
      }
      expect(transitions).toEqual(['a closed->open']);
      const { error } = await settle(run(r, r.routeRecall('s'), call));
      expect((error as { code: string }).code).toBe('CircuitBreakerOpen');
      expect(calls).toHaveLength(5);
      // @engram/breaker's class, naming the node, stamped with attempts and routing.
      expect(error).toBeInstanceOf(CircuitBreakerOpenError);
      expect(error).toMatchObject({ nodeId: 'a', attempts: 0, routing: { attempts: 0 } });
    });

    it('half-opens after the breaker timeout (fake clock) and closes on a successful probe', async () => {
      let now = 1_000_000;
      const clock = { now: () => now };
      const transitions: string[] = [];
      const r = makeRouter(
        { breakerThreshold: 2, breakerTimeoutMs: 30_000, maxRetries: 0, replicaFallback: false },
        {
          clock,
          hooks: { onBreakerTransition: (_n, from, to) => transitions.push(`${from}->${to}`) },
        },
      );
      const behaviour: Record<string, Behaviour> = { a: 'unavailable' };
      const { calls, call } = scripted(behaviour);
      await settle(run(r, r.routeRecall('s'), call));
      await settle(run(r, r.routeRecall('s'), call));
      expect((await settle(run(r, r.routeRecall('s'), call))).error).toMatchObject({
        code: 'CircuitBreakerOpen',
      });
      now += 29_999;
      expect((await settle(run(r, r.routeRecall('s'), call))).error).toMatchObject({
        code: 'CircuitBreakerOpen',
      });
      now += 1;
      behaviour.a = 'ok';
      const { value } = await settle(run(r, r.routeRecall('s'), call));
      expect(value?.routing.servedBy).toBe('a');
      expect(transitions).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
      expect(calls).toHaveLength(3);
    });

    it('breaker prevents cascade: once the primary is open, reads go to the replica with one attempt', async () => {
      const r = makeRouter({ breakerThreshold: 3 });
      const { calls, call } = scripted({ a: 'unavailable' });
      for (let i = 0; i < 3; i++) await run(r, r.routeRecall('s'), call);
      calls.length = 0;
      for (let i = 0; i < 10; i++) {
        const { routing } = await run(r, r.routeRecall('s'), call);
        expect(routing).toMatchObject({ servedBy: 'b', attempts: 1, fallback: true });
      }
      expect(calls.map((c) => c.node.id)).toEqual(Array(10).fill('b'));
    });

    it('tries a node whose breaker is open last, once, when every other target failed', async () => {
      const r = makeRouter({ breakerThreshold: 1, maxRetries: 0 });
      const behaviour: Record<string, Behaviour> = { a: 'unavailable' };
      const { calls, call } = scripted(behaviour);
      await run(r, r.routeRecall('s'), call); // opens a, served by b
      Object.assign(behaviour, { a: 'ok', b: 'unavailable', c: 'unavailable' });
      calls.length = 0;
      const { routing, value } = await run(r, r.routeRecall('s'), call);
      expect(calls.map((c) => c.node.id)).toEqual(['b', 'c', 'a']);
      expect(value).toBe('from a');
      expect(routing).toMatchObject({ servedBy: 'a', attempts: 3, fallback: false });
    });
  });

  describe('execute with the retry budget', () => {
    it('a total outage makes at most budget-many retries', async () => {
      // 10 % of requests plus a reserve of 1 per second over a 1 s window: 100 requests -> <= 11.
      const budget = new RetryBudget({ ratio: 0.1, minRetriesPerSecond: 1, ttlMs: 1_000 });
      const r = makeRouter({ breakerThreshold: 1_000_000, maxRetries: 3 }, { budget });
      const { calls, call } = scripted({ a: 'unavailable', b: 'unavailable', c: 'unavailable' });
      const codes = new Map<string, number>();
      for (let i = 0; i < 100; i++) {
        const outcome = settle(run(r, r.routeRecall('s'), call));
        await vi.advanceTimersByTimeAsync(0);
        const { error } = await outcome;
        const code = (error as { code: string }).code;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
      const retries = calls.length - 100;
      expect(retries).toBeLessThanOrEqual(11);
      expect(retries).toBeGreaterThan(0);
      expect(codes.get('RetryBudgetExhausted')).toBeGreaterThan(80);
    });
  });

  describe('hedged reads', () => {
    it('sends a slow read to the next replica after the hedge delay; first answer wins, loser cancelled', async () => {
      const r = makeRouter({ hedge: { delayMs: 20 }, attemptTimeoutMs: 5_000 });
      const { calls, call } = scripted({ a: 'hang' });
      const started = Date.now();
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(20);
      const { value } = await outcome;
      expect(Date.now() - started).toBe(20);
      expect(value?.routing).toMatchObject({ servedBy: 'b', attempts: 2, fallback: true });
      expect(calls.map((c) => [c.node.id, c.hedge])).toEqual([
        ['a', false],
        ['b', true],
      ]);
      expect(calls[0]!.signal.aborted).toBe(true);
      expectNoTimerHeld(r);
    });

    it('is off by default and never hedges stores unless asked', async () => {
      const r = makeRouter({ attemptTimeoutMs: 100 });
      const { calls, call } = scripted({ a: 'hang' });
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(100);
      await outcome;
      expect(calls.map((c) => c.hedge)).toEqual([false, false]);

      const hedging = makeRouter({
        hedge: { delayMs: 10 },
        attemptTimeoutMs: 100,
        replicateWrites: false,
      });
      const store = scripted({ a: 'hang' });
      const stored = settle(run(hedging, hedging.routeStore('s'), store.call));
      await vi.advanceTimersByTimeAsync(100);
      await stored;
      expect(store.calls.map((c) => c.hedge)).toEqual([false, false]);
    });

    it('hedges draw on the retry budget: none without a token', async () => {
      const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 0 });
      const r = makeRouter({ hedge: { delayMs: 10 }, attemptTimeoutMs: 50 }, { budget });
      const { calls, call } = scripted({ b: 'ok', a: 'hang' });
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(100);
      const { error } = await outcome;
      expect(calls.map((c) => c.node.id)).toEqual(['a']);
      expect((error as { code: string }).code).toBe('RetryBudgetExhausted');
    });

    it('with a percentile policy, waits for that percentile of recent read latencies', async () => {
      const r = makeRouter({
        hedge: { percentile: 0.9, delayMs: 1_000, minDelayMs: 1 },
        attemptTimeoutMs: 50_000,
      });
      // 40 reads of 30 ms teach the window; p90 = 30 ms.
      const slow = (ctx: CallContext) =>
        new Promise<string>((resolve) => setTimeout(() => resolve(ctx.node.id), 30));
      for (let i = 0; i < 40; i++) {
        const p = run(r, r.routeRecall('s'), slow);
        await vi.advanceTimersByTimeAsync(30);
        await p;
      }
      const { call } = scripted({ a: 'hang' });
      const started = Date.now();
      const outcome = settle(run(r, r.routeRecall('s'), call));
      await vi.advanceTimersByTimeAsync(30);
      const { value } = await outcome;
      expect(Date.now() - started).toBe(30);
      expect(value?.routing.servedBy).toBe('b');
    });
  });
});

describe('executeTo: settled calls and a sink', () => {
  /** The sink's one report, as a promise; counts reports to catch a second one. */
  function sink<T>() {
    const reports: string[] = [];
    let done!: (r: { value?: T; routing?: unknown; error?: unknown }) => void;
    const outcome = new Promise<{ value?: T; routing?: unknown; error?: unknown }>((r) => {
      done = r;
    });
    return {
      reports,
      outcome,
      sink: {
        routed: (value: T, routing: unknown) => {
          reports.push('routed');
          done({ value, routing });
        },
        failed: (error: unknown) => {
          reports.push('failed');
          done({ error });
        },
      },
    };
  }

  it('a call that settles before it returns is handled after it returns, as a promise would be', async () => {
    const r = makeRouter();
    const order: string[] = [];
    const s = sink<string>();
    r.executeTo(
      r.routeRecall('s'),
      (ctx, settle) => {
        if (ctx.node.id === 'a') settle.reject(unavailable());
        else settle.resolve(`from ${ctx.node.id}`);
        order.push(`returned ${ctx.node.id}`);
      },
      {},
      s.sink,
    );
    order.push('executeTo returned');
    const { value } = await s.outcome;
    expect(value).toBe('from b');
    expect(order).toEqual(['returned a', 'executeTo returned', 'returned b']);
    expect(s.reports).toEqual(['routed']);
  });

  it('a call that throws fails over like a rejected attempt; a second report is ignored', async () => {
    const r = makeRouter();
    const s = sink<string>();
    const settles: { resolve(v: string): void }[] = [];
    r.executeTo(
      r.routeRecall('s'),
      (ctx, settle) => {
        if (ctx.node.id === 'a') throw unavailable();
        settles.push(settle);
        settle.resolve('first');
        settle.resolve('second');
      },
      {},
      s.sink,
    );
    const { value, routing } = await s.outcome;
    expect(value).toBe('first');
    expect(routing).toMatchObject({ servedBy: 'b', attempts: 2, fallback: true });
    settles[0]!.resolve('late');
    await Promise.resolve();
    expect(s.reports).toEqual(['routed']);
  });

  it('bad options, a closed router and a sink that throws each end the operation with one report', async () => {
    const logged: unknown[] = [];
    const logger = { error: (obj: unknown) => logged.push(obj), warn() {}, debug() {} };
    const r = makeRouter({}, { logger: logger as unknown as RouterInit['logger'] });
    const bad = sink<string>();
    r.executeTo(r.routeRecall('s'), () => {}, { deadlineMs: -1 }, bad.sink);
    expect((await bad.outcome).error).toMatchObject({ code: 'InvalidArgument' });

    r.executeTo(
      r.routeRecall('s'),
      (_ctx, settle) => queueMicrotask(() => settle.resolve('ok')),
      {},
      {
        routed: () => {
          throw new Error('bad sink');
        },
        failed: () => {},
      },
    );
    await vi.runAllTimersAsync();
    expect(logged).toHaveLength(1);

    await r.close();
    const closed = sink<string>();
    r.executeTo(r.routeRecall('s'), () => {}, {}, closed.sink);
    expect((await closed.outcome).error).toMatchObject({ code: 'RouterClosed' });
    expect([bad.reports, closed.reports]).toEqual([['failed'], ['failed']]);
  });

  it('times out a call that never reports, within the deadline (attemptTimeoutMs)', async () => {
    const r = makeRouter({ attemptTimeoutMs: 100, deadlineMs: 1_000 });
    const s = sink<string>();
    r.executeTo(
      r.routeRecall('s'),
      (ctx, settle) => {
        if (ctx.node.id !== 'a') settle.resolve(`from ${ctx.node.id}`);
      },
      {},
      s.sink,
    );
    await vi.advanceTimersByTimeAsync(100);
    expect((await s.outcome).value).toBe('from b');
  });
});
