import { type BreakerTable, REJECTED } from '@engram/breaker';
import {
  backoffDelay,
  type Clock,
  Deadline,
  GrpcStatus,
  isRetryableError,
  type Random,
  type RetryBudgetLike,
} from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import type { Logger } from 'pino';
import {
  AbortedError,
  AllReplicasFailedError,
  CircuitBreakerOpenError,
  ConnectionFailedError,
  DeadlineExceededError,
  InvalidEndpointError,
  RetryBudgetExhaustedError,
  RouterError,
  type TargetError,
} from './errors.js';
import type { LatencyWindow } from './latency.js';
import type { ResolvedHedge, ResolvedRouterOptions } from './options.js';
import type {
  CallContext,
  ExecuteOptions,
  Routed,
  RouterHooks,
  RoutingDecision,
  RoutingInfo,
} from './types.js';

/** What an execution needs from its router. */
export interface ExecutionHost {
  readonly options: ResolvedRouterOptions;
  readonly breakers: BreakerTable;
  readonly budget: RetryBudgetLike;
  readonly clock: Clock;
  readonly random: Random;
  readonly hooks: RouterHooks;
  readonly logger: Logger;
  readonly latency: LatencyWindow;
  slotOf(node: NodeInfo): number;
}

/** An admission that bypassed an open breaker (last resort): nothing to settle. */
const BYPASS = -1;
/** gRPC deadline errors this close to a deadline are that deadline's expiry. */
const DEADLINE_SLACK_MS = 5;

/** Raised into an attempt's signal when its own timeout (not the operation's) fires. */
export class AttemptTimeoutError extends Error {
  readonly code = 'AttemptTimeout' as const;
  constructor(timeoutMs: number) {
    super(`attempt timed out after ${timeoutMs} ms`);
    this.name = 'AttemptTimeoutError';
  }
}

/**
 * The router's default retry/fail-over classifier: connection failures (pool
 * `ConnectionFailed`, socket errors), gRPC UNAVAILABLE, RESOURCE_EXHAUSTED with pushback
 * (`isRetryableError` of @engram/retry), invalid endpoints and attempt timeouts. Everything
 * else (INVALID_ARGUMENT, NOT_FOUND, ...) goes straight back to the caller.
 */
export function defaultIsRetryable(error: unknown): boolean {
  return (
    isRetryableError(error) ||
    error instanceof InvalidEndpointError ||
    error instanceof AttemptTimeoutError
  );
}

/** gRPC codes that say something is wrong with the node itself (they count on its breaker). */
function isNodeFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === GrpcStatus.UNKNOWN ||
    code === GrpcStatus.INTERNAL ||
    code === GrpcStatus.DATA_LOSS ||
    code === GrpcStatus.RESOURCE_EXHAUSTED ||
    code === GrpcStatus.UNAVAILABLE
  );
}

function isGrpcDeadline(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === GrpcStatus.DEADLINE_EXCEEDED;
}

interface Target {
  readonly node: NodeInfo;
  /** Position in the decision: 0 = primary. */
  readonly index: number;
  readonly slot: number;
  tried: boolean;
  /** Its breaker refused it this operation. */
  open: boolean;
}

interface Attempt {
  readonly target: Target;
  readonly admission: number;
  readonly controller: AbortController;
  readonly attemptDeadline: Deadline;
  readonly startedAt: number;
  readonly hedge: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  hedgeTimer: ReturnType<typeof setTimeout> | undefined;
  timedOut: boolean;
  /** Aborted by us (operation finished, hedge lost, caller abort): its outcome is not a verdict. */
  cancelled: boolean;
  done: boolean;
}

/**
 * One `execute`: an event-driven state machine over attempts. Policy (README "Retries and
 * fall-back"): pass over the targets in order, failing over at once on a retryable error;
 * then up to `maxRetries` retries with backoff, each to the first target its breaker admits;
 * open-breaker targets are skipped, and tried once last if everything else failed. Every
 * attempt after the first takes a retry-budget token. One deadline bounds it all.
 */
export class Execution<T> {
  readonly #host: ExecutionHost;
  readonly #decision: RoutingDecision;
  readonly #call: (ctx: CallContext) => Promise<T>;
  readonly #operation: string;
  readonly #deadline: Deadline;
  readonly #signal: AbortSignal | undefined;
  readonly #isRetryable: (error: unknown) => boolean;
  readonly #attemptTimeoutMs: number;
  readonly #hedge: ResolvedHedge | undefined;
  readonly #targets: Target[];
  readonly #inflight = new Set<Attempt>();
  readonly #errors: TargetError[] = [];
  readonly #startedAt: number;
  #attempts = 0;
  #failures = 0;
  #retries = 0;
  #prevDelayMs = 0;
  #hedges = 0;
  #lastResortUsed = false;
  #budgetExhausted = false;
  #lastError: unknown;
  #lastNode: NodeInfo | undefined;
  #settled = false;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #resolve!: (value: Routed<T>) => void;
  #reject!: (error: unknown) => void;
  readonly #onAbort = (): void => {
    this.#fail(new AbortedError(this.#signal?.reason));
  };

  constructor(
    host: ExecutionHost,
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    options: ExecuteOptions,
  ) {
    this.#host = host;
    this.#decision = decision;
    this.#call = call;
    this.#operation = options.operation ?? decision.operation ?? 'execute';
    this.#deadline =
      options.deadline ?? Deadline.after(options.deadlineMs ?? host.options.deadlineMs, host.clock);
    this.#signal = options.signal;
    this.#isRetryable = options.isRetryable ?? defaultIsRetryable;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? host.options.attemptTimeoutMs;
    const isRead = decision.operation === 'recall' || decision.operation === 'query';
    const hedgeOn = options.hedge ?? (isRead && host.options.hedge !== undefined);
    this.#hedge = hedgeOn
      ? (host.options.hedge ?? { delayMs: 50, percentile: undefined, minDelayMs: 1, maxHedges: 1 })
      : undefined;
    const targets: Target[] = [];
    const add = (node: NodeInfo): void => {
      for (const t of targets) if (t.node.id === node.id) return;
      targets.push({
        node,
        index: targets.length,
        slot: host.slotOf(node),
        tried: false,
        open: false,
      });
    };
    add(decision.primary);
    for (const node of decision.replicas) add(node);
    this.#targets = targets;
    this.#startedAt = host.clock.now();
  }

  run(): Promise<Routed<T>> {
    const promise = new Promise<Routed<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const signal = this.#signal;
    if (signal?.aborted) {
      this.#fail(new AbortedError(signal.reason));
      return promise;
    }
    const remaining = this.#deadline.remaining();
    if (remaining <= 0) {
      this.#fail(new DeadlineExceededError());
      return promise;
    }
    this.#host.budget.recordRequest();
    if (remaining !== Number.POSITIVE_INFINITY) {
      this.#deadlineTimer = setTimeout(
        () => this.#fail(new DeadlineExceededError(this.#errors.slice(), this.#lastError)),
        Math.min(remaining, 2 ** 31 - 1),
      );
    }
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#advance();
    return promise;
  }

  /** Starts the next attempt if there is one; otherwise backs off or gives up. */
  #advance(): void {
    if (this.#settled) return;
    if (!this.#budgetExhausted) {
      const target = this.#pickUntried() ?? this.#pickLastResort();
      if (target !== undefined) {
        this.#launch(target, false);
        return;
      }
    }
    if (this.#inflight.size > 0) return;
    if (
      !this.#budgetExhausted &&
      this.#failures > 0 &&
      this.#retries < this.#host.options.maxRetries
    ) {
      this.#scheduleRetry();
      return;
    }
    this.#giveUp();
  }

  /** The next target not yet tried whose breaker admits it; refused ones are marked open. */
  #pickUntried(): { target: Target; admission: number } | undefined {
    for (const target of this.#targets) {
      if (target.tried) continue;
      target.tried = true;
      const admission = this.#acquire(target);
      if (admission === REJECTED) {
        target.open = true;
        this.#errors.push({
          nodeId: target.node.id,
          error: new CircuitBreakerOpenError(target.node.id),
        });
        this.#hookAttempt(target.node, 'rejected', 0, undefined);
        continue;
      }
      return { target, admission };
    }
    return undefined;
  }

  /** Once per operation, after an admitted attempt failed: a target whose breaker was open. */
  #pickLastResort(): { target: Target; admission: number } | undefined {
    if (!this.#host.options.tryOpenLast || this.#lastResortUsed || this.#failures === 0)
      return undefined;
    if (this.#inflight.size > 0) return undefined;
    for (const target of this.#targets) {
      if (!target.open) continue;
      this.#lastResortUsed = true;
      const admission = this.#acquire(target);
      return { target, admission: admission === REJECTED ? BYPASS : admission };
    }
    return undefined;
  }

  #acquire(target: Target): number {
    return target.slot < 0 ? BYPASS : this.#host.breakers.tryAcquire(target.slot);
  }

  #settleBreaker(attempt: Attempt, verdict: 'success' | 'failure' | 'release'): void {
    const { admission, target } = attempt;
    if (admission === BYPASS || target.slot < 0) return;
    const breakers = this.#host.breakers;
    if (verdict === 'success') breakers.onSuccess(target.slot, admission);
    else if (verdict === 'failure') breakers.onFailure(target.slot, admission);
    else breakers.release(target.slot, admission);
  }

  #scheduleRetry(): void {
    const o = this.#host.options;
    const delay = backoffDelay(
      this.#retries,
      this.#prevDelayMs,
      { baseMs: o.retryBaseDelayMs, maxMs: o.retryMaxDelayMs, jitter: o.retryJitter },
      this.#host.random,
    );
    this.#prevDelayMs = delay;
    this.#retries++;
    // A backoff that would reach the deadline cannot lead to a useful attempt: stop now.
    if (delay >= this.#deadline.remaining()) {
      this.#fail(new DeadlineExceededError(this.#errors.slice(), this.#lastError));
      return;
    }
    const first = this.#targets[0]!.node;
    this.#emit(() => this.#host.hooks.onRetry?.(this.#operation, first, this.#attempts + 1, delay));
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#retryNow();
    }, delay);
  }

  /** A retry after backoff: the first target (in order) whose breaker admits it. */
  #retryNow(): void {
    if (this.#settled) return;
    for (const target of this.#targets) {
      const admission = this.#acquire(target);
      if (admission === REJECTED) continue;
      this.#launch({ target, admission }, false, true);
      return;
    }
    this.#giveUp();
  }

  /** Starts one attempt. Returns false when the budget refused it. */
  #launch(
    pick: { target: Target; admission: number },
    hedge: boolean,
    afterBackoff = false,
  ): boolean {
    const { target, admission } = pick;
    const host = this.#host;
    if (this.#attempts > 0 && !host.budget.tryRetry()) {
      if (admission !== BYPASS) host.breakers.release(target.slot, admission);
      if (hedge) {
        target.tried = false;
        return false;
      }
      this.#budgetExhausted = true;
      if (this.#inflight.size === 0) this.#giveUp();
      return false;
    }
    this.#attempts++;
    const node = target.node;
    const previous = this.#lastNode;
    if (previous !== undefined && previous !== node) {
      this.#emit(() => host.hooks.onFallback?.(this.#operation, previous, node));
    }
    if (this.#attempts > 1 && !afterBackoff) {
      // Fail-overs and hedges are retries without a delay (backoff retries were reported when scheduled).
      this.#emit(() => host.hooks.onRetry?.(this.#operation, node, this.#attempts, 0));
    }
    this.#lastNode = node;
    const controller = new AbortController();
    const timeoutMs = this.#attemptTimeoutMs;
    const attemptDeadline =
      timeoutMs === Number.POSITIVE_INFINITY ? this.#deadline : this.#deadline.within(timeoutMs);
    const attempt: Attempt = {
      target,
      admission,
      controller,
      attemptDeadline,
      startedAt: host.clock.now(),
      hedge,
      timer: undefined,
      hedgeTimer: undefined,
      timedOut: false,
      cancelled: false,
      done: false,
    };
    if (attemptDeadline !== this.#deadline) {
      attempt.timer = setTimeout(() => {
        attempt.timer = undefined;
        attempt.timedOut = true;
        controller.abort(new AttemptTimeoutError(timeoutMs));
      }, timeoutMs);
    }
    this.#inflight.add(attempt);
    const ctx: CallContext = {
      node,
      attempt: this.#attempts,
      fallback: target.index !== 0,
      signal: controller.signal,
      deadline: this.#deadline,
      attemptDeadline,
      hedge,
    };
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(this.#call(ctx));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.#onSuccess(attempt, value),
      (error: unknown) => this.#onError(attempt, error),
    );
    this.#armHedge(attempt);
    return true;
  }

  #armHedge(attempt: Attempt): void {
    const hedge = this.#hedge;
    if (hedge === undefined || this.#hedges >= hedge.maxHedges) return;
    if (!this.#targets.some((t) => !t.tried)) return;
    let delay = hedge.delayMs;
    if (hedge.percentile !== undefined) {
      const p = this.#host.latency.percentile(hedge.percentile);
      if (!Number.isNaN(p)) delay = Math.min(Math.max(p, hedge.minDelayMs), hedge.delayMs * 10);
    }
    if (delay >= this.#deadline.remaining()) return;
    attempt.hedgeTimer = setTimeout(() => {
      attempt.hedgeTimer = undefined;
      if (this.#settled || attempt.done || this.#budgetExhausted) return;
      const pick = this.#pickUntried();
      if (pick === undefined) return;
      this.#hedges++;
      this.#launch(pick, true);
    }, delay);
  }

  #finishAttempt(attempt: Attempt): number {
    attempt.done = true;
    if (attempt.timer !== undefined) clearTimeout(attempt.timer);
    if (attempt.hedgeTimer !== undefined) clearTimeout(attempt.hedgeTimer);
    attempt.timer = undefined;
    attempt.hedgeTimer = undefined;
    this.#inflight.delete(attempt);
    return this.#host.clock.now() - attempt.startedAt;
  }

  #onSuccess(attempt: Attempt, value: T): void {
    const durationMs = this.#finishAttempt(attempt);
    // A success is a success for the node's breaker, even from an attempt we gave up on.
    this.#settleBreaker(attempt, 'success');
    this.#hookAttempt(attempt.target.node, 'ok', durationMs, undefined);
    if (attempt.cancelled || this.#settled) return;
    const op = this.#decision.operation;
    if (op === 'recall' || op === 'query') this.#host.latency.record(durationMs);
    const routing: RoutingInfo = {
      servedBy: attempt.target.node.id,
      attempts: this.#attempts,
      fallback: attempt.target.index !== 0,
      strategy: this.#decision.strategy,
      tableEpoch: this.#decision.epoch,
    };
    this.#finish();
    this.#emit(() =>
      this.#host.hooks.onComplete?.(
        this.#operation,
        'ok',
        this.#host.clock.now() - this.#startedAt,
        routing,
      ),
    );
    this.#resolve({ value, routing });
  }

  #onError(attempt: Attempt, error: unknown): void {
    const durationMs = this.#finishAttempt(attempt);
    if (attempt.cancelled || this.#settled) {
      this.#settleBreaker(attempt, 'release');
      return;
    }
    const node = attempt.target.node;
    const deadline = this.#deadline;
    const opExpired =
      deadline.expired() || (isGrpcDeadline(error) && deadline.remaining() <= DEADLINE_SLACK_MS);
    const timedOut =
      attempt.timedOut ||
      (isGrpcDeadline(error) &&
        attempt.attemptDeadline !== deadline &&
        attempt.attemptDeadline.remaining() <= DEADLINE_SLACK_MS);
    const failure = timedOut ? new AttemptTimeoutError(this.#attemptTimeoutMs) : error;
    this.#lastError = failure;
    this.#errors.push({ nodeId: node.id, error: failure });
    this.#hookAttempt(node, 'error', durationMs, failure);
    if (opExpired) {
      this.#settleBreaker(attempt, 'failure');
      this.#fail(new DeadlineExceededError(this.#errors.slice(), failure));
      return;
    }
    if (timedOut || this.#isRetryable(error)) {
      this.#settleBreaker(attempt, 'failure');
      this.#failures++;
      this.#host.logger.debug(
        { node: node.id, op: this.#operation, err: failure },
        'attempt failed',
      );
      this.#advance();
      return;
    }
    // Not retryable: the node answered (or the call itself is wrong); the caller gets it as is.
    this.#settleBreaker(attempt, isNodeFailure(error) ? 'failure' : 'success');
    this.#fail(error);
  }

  #giveUp(): void {
    const errors = this.#errors.slice();
    if (this.#budgetExhausted) {
      this.#fail(new RetryBudgetExhaustedError(errors, this.#lastError));
    } else if (this.#failures === 0 && this.#attempts === 0) {
      this.#fail(new CircuitBreakerOpenError(this.#targets[0]!.node.id));
    } else if (this.#targets.length === 1) {
      this.#fail(new ConnectionFailedError(this.#targets[0]!.node.id, this.#lastError));
    } else {
      this.#fail(new AllReplicasFailedError(errors));
    }
  }

  #finish(): void {
    this.#settled = true;
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    if (this.#backoffTimer !== undefined) clearTimeout(this.#backoffTimer);
    this.#deadlineTimer = undefined;
    this.#backoffTimer = undefined;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    for (const attempt of this.#inflight) {
      attempt.cancelled = true;
      if (attempt.timer !== undefined) clearTimeout(attempt.timer);
      if (attempt.hedgeTimer !== undefined) clearTimeout(attempt.hedgeTimer);
      attempt.controller.abort(new AbortedError('operation finished'));
    }
  }

  #fail(error: unknown): void {
    if (this.#settled) return;
    this.#finish();
    const routing: RoutingInfo = {
      servedBy: '',
      attempts: this.#attempts,
      fallback: false,
      strategy: this.#decision.strategy,
      tableEpoch: this.#decision.epoch,
    };
    if (error instanceof RouterError) {
      error.attempts = this.#attempts;
      error.routing = routing;
    }
    const code = errorCode(error);
    this.#emit(() =>
      this.#host.hooks.onComplete?.(
        this.#operation,
        code,
        this.#host.clock.now() - this.#startedAt,
        routing,
      ),
    );
    this.#reject(error);
  }

  #hookAttempt(
    node: NodeInfo,
    outcome: 'ok' | 'error' | 'rejected',
    durationMs: number,
    error: unknown,
  ): void {
    const hook = this.#host.hooks.onAttempt;
    if (hook === undefined) return;
    this.#emit(() => hook(this.#operation, node, outcome, durationMs, error));
  }

  #emit(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#host.logger.error({ err: error }, 'router hook threw');
    }
  }
}

const STATUS_NAMES = Object.fromEntries(
  Object.entries(GrpcStatus).map(([k, v]) => [v, k]),
) as Record<number, string>;

/** The label of an error in hooks: a router code, a gRPC status name, or 'Error'. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (typeof code === 'number') return STATUS_NAMES[code] ?? `GRPC_${code}`;
  return 'Error';
}
