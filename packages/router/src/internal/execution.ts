/**
 * Why this module is long (~670 lines): one execution is one event-driven state machine
 * (documented on `Execution`): attempts, fail-over, the retry phase, hedges, timers and the
 * breaker admissions it holds all change the same few fields, and its invariants (every
 * admission settled exactly once, no timer outlives the operation) span every handler. The
 * policy (what is retryable, what counts against a node, when to retry) lives in policy.ts and
 * @engram/retry's planRetry; attempt contexts in attempt-context.ts.
 */
import { type BreakerTable, isProbe, REJECTED } from '@engram/breaker';
import {
  type BackoffState,
  type Clock,
  Deadline,
  GrpcStatus,
  INITIAL_BACKOFF_STATE,
  isDeadlineExceededError,
  planRetry,
  type Random,
  type RetryBudgetLike,
  retryPushbackMs,
} from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import type { Logger } from 'pino';
import { AttemptContext } from './attempt-context.js';
import type { DueBatch, DueEntry, DueTimers } from './due-timers.js';
import {
  AbortedError,
  AllReplicasFailedError,
  CircuitBreakerOpenError,
  ConnectionFailedError,
  carriesRouting,
  DeadlineExceededError,
  InvalidArgumentError,
  InvalidEndpointError,
  RetryBudgetExhaustedError,
  type TargetError,
} from './errors.js';
import type { LatencyWindow } from './latency.js';
import type { ResolvedHedge, ResolvedRouterOptions } from './options.js';
import { AttemptTimeoutError, defaultIsRetryable, isNodeFailure } from './policy.js';
import type { OutstandingAttempts } from './read-balance.js';
import type {
  AttemptRunner,
  AttemptSettle,
  CallContext,
  ExecuteOptions,
  Routed,
  RoutedSink,
  RouterHooks,
  RoutingDecision,
  RoutingInfo,
  SettledCall,
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
  /** Attempts in flight per node slot: raised at launch, lowered once when decided. */
  readonly outstanding: OutstandingAttempts;
  /** Every attempt's timeout timer (see `attemptTimers`). */
  readonly attemptTimers: DueTimers<Attempt<unknown>>;
  slotOf(node: NodeInfo): number;
  /**
   * An attempt on `node` is about to start under a half-open breaker's probe permit: the
   * node's trial, which must reach it (e.g. not fail fast on a pooled connection still waiting
   * out its reconnect backoff).
   */
  probing(node: NodeInfo): void;
}

const NO_REPLICAS: readonly NodeInfo[] = Object.freeze([]);
/** An admission that bypassed an open breaker (last resort): nothing to settle. */
const BYPASS = -1;
/** gRPC deadline errors this close to a deadline are that deadline's expiry. */
const DEADLINE_SLACK_MS = 5;

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
  /** Admission of the attempt being started (handed from pick to launch). */
  admission: number;
  /** Clock ms before which it must not be retried (the node's `grpc-retry-pushback-ms`). */
  notBefore: number;
  /** Its node sent a pushback (then `notBefore` holds). */
  pushedBack: boolean;
  /** The node asked not to be retried (negative pushback). */
  noRetry: boolean;
}

function newTarget(node: NodeInfo, index: number, slot: number): Target {
  return {
    node,
    index,
    slot,
    tried: false,
    open: false,
    admission: REJECTED,
    notBefore: 0,
    pushedBack: false,
    noRetry: false,
  };
}

/**
 * One attempt in flight. It is its own CallContext (one object per attempt) and the
 * `AttemptSettle` a settled call reports to (see `Router.executeTo`), so that path costs no
 * promise and no closure per attempt.
 */
export class Attempt<T> extends AttemptContext implements AttemptSettle<T>, DueEntry {
  /**
   * Its timer (`ExecutionHost.attemptTimers`) fires at its deadline: its own timeout, or the
   * operation's deadline if earlier. `due` is that time on the host's clock.
   */
  due = 0;
  dueBatch: DueBatch | null = null;
  dueSlot = 0;
  hedgeTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Given up by us (operation finished, hedge lost, caller abort): its outcome is no verdict. */
  abandoned = false;
  /** Decided (settled, or timed out by us): a later settlement of the call is ignored. */
  done = false;
  /** Inside the call that started it: a settlement now is handled after the call returns. */
  starting = false;

  constructor(
    readonly execution: Execution<T>,
    readonly target: Target,
    readonly admission: number,
    readonly startedAt: number,
    n: number,
    fallback: boolean,
    deadline: Deadline,
    attemptAt: number,
    hedge: boolean,
  ) {
    super(target.node, n, fallback, deadline, attemptAt, hedge);
  }

  resolve(value: T): void {
    if (this.starting) queueMicrotask(() => this.execution.settled(this, true, value));
    else this.execution.settled(this, true, value);
  }

  reject(error: unknown): void {
    if (this.starting) queueMicrotask(() => this.execution.settled(this, false, error));
    else this.execution.settled(this, false, error);
  }
}

const FALLBACK_HEDGE: ResolvedHedge = Object.freeze({
  delayMs: 50,
  percentile: undefined,
  minDelayMs: 1,
  maxHedges: 1,
});

/**
 * One `execute`: an event-driven state machine over attempts. Policy (README "Retries and
 * fall-back"): pass over the targets in order, failing over at once on a retryable error;
 * then up to `maxRetries` retries with backoff, each to the first target its breaker admits;
 * open-breaker targets are skipped, and tried once last if everything else failed. Every
 * attempt after the first takes a retry-budget token. One deadline bounds it all.
 *
 * Timers: one per attempt (at its timeout or the deadline, whichever is first; an entry in the
 * host's `attemptTimers`, which share one native timer), one for a backoff (never started
 * when it would reach the deadline), one per armed hedge. There is no
 * operation-wide timer: at every moment either an attempt's timer or a backoff is pending,
 * and each ends by the deadline.
 */
export class Execution<T> {
  readonly #host: ExecutionHost;
  readonly #decision: RoutingDecision;
  /** The call: returns a promise, or (`settles`) reports to the attempt it is given. */
  readonly #call: ((ctx: CallContext) => Promise<T>) | SettledCall<T> | AttemptRunner<T>;
  readonly #settles: boolean;
  /** Where the outcome goes instead of the promise of `run()` (`runTo`). */
  #sink: RoutedSink<T> | undefined;
  readonly #operation: string;
  readonly #deadline: Deadline;
  readonly #signal: AbortSignal | undefined;
  readonly #isRetryable: (error: unknown) => boolean;
  readonly #attemptTimeoutMs: number;
  readonly #hedge: ResolvedHedge | undefined;
  /**
   * The primary's target, then (`#everyTarget`) the fall-back replicas' in order: made when the
   * primary alone did not do (most operations end on their first attempt and make none). A
   * replica's breaker slot is looked up then, against the table as it is at that moment (a
   * replica gone from it since has no slot: unguarded, as any node without one).
   */
  readonly #targets: Target[];
  /** The replicas the operation may fall back to (a duplicate of an earlier node is skipped). */
  readonly #replicas: readonly NodeInfo[];
  /** Every replica has its target. */
  #complete: boolean;
  /** The placement's primary: a reply from any other node is a fall-back. */
  readonly #ownerId: string;
  /**
   * Attempts in flight: the first one started (most operations never have another), then any
   * more (hedges, a retry while a lost hedge winds down) in `#more` (at most maxHedges: an
   * array beats a Set), each made on first use.
   */
  #first: Attempt<T> | null = null;
  #more: Attempt<T>[] | null = null;
  /** Each target's failure, in order (made on the first). */
  #errors: TargetError[] | null = null;
  readonly #startedAt: number;
  #attempts = 0;
  #failures = 0;
  /** Retries of the retry phase made so far, and the previous backoff delay. */
  #backoff: BackoffState = INITIAL_BACKOFF_STATE;
  #hedges = 0;
  #lastResortUsed = false;
  #budgetExhausted = false;
  #lastError: unknown;
  #lastNode: NodeInfo | undefined;
  #settled = false;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  /** Clock ms the pending retry was scheduled for. */
  #retryAt = 0;
  #resolve!: (value: Routed<T>) => void;
  #reject!: (error: unknown) => void;
  /** The abort listener, created only when the caller passed a signal. */
  #onAbort: (() => void) | undefined;

  // Timer callbacks are static (no per-execution closures); the execution is a timer argument.

  static #onBackoff<U>(this: void, execution: Execution<U>): void {
    execution.#backoffTimer = undefined;
    execution.#retryNow();
  }

  /**
   * `settles`: `call` is a `SettledCall` (reports to the AttemptSettle it is given) instead
   * of returning a promise.
   */
  constructor(
    host: ExecutionHost,
    decision: RoutingDecision,
    call: ((ctx: CallContext) => Promise<T>) | SettledCall<T> | AttemptRunner<T>,
    options: ExecuteOptions,
    settles = false,
  ) {
    this.#host = host;
    this.#decision = decision;
    this.#call = call;
    this.#settles = settles;
    this.#operation = options.operation ?? decision.operation ?? 'execute';
    // One clock read for the start and the deadline (deadlineMs is checked by the Router).
    const now = host.clock.now();
    this.#deadline =
      options.deadline ??
      new Deadline(now + (options.deadlineMs ?? host.options.deadlineMs), host.clock);
    this.#signal = options.signal;
    this.#isRetryable = options.isRetryable ?? defaultIsRetryable;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? host.options.attemptTimeoutMs;
    const isRead = decision.operation === 'recall' || decision.operation === 'query';
    const hedgeOn = options.hedge ?? (isRead && host.options.hedge !== undefined);
    this.#hedge = hedgeOn ? (host.options.hedge ?? FALLBACK_HEDGE) : undefined;
    // Replicas only when the strategy allows fall-back (a hand-made decision may carry them):
    // reads and scatter-gather, and a `Primary` Store while `storeFallback` is on.
    const strategy = decision.strategy;
    const fallback =
      strategy === 'PrimaryWithFallback' ||
      strategy === 'ScatterGather' ||
      (strategy === 'Primary' && decision.operation === 'store' && host.options.storeFallback);
    const replicas = fallback ? decision.replicas : NO_REPLICAS;
    // Checked now, though their targets are made later: a bad hand-made decision fails the
    // operation before it starts, not in a timer or a settlement halfway through it.
    for (let i = 0; i < replicas.length; i++) {
      if (typeof (replicas[i] as NodeInfo | undefined)?.id !== 'string') {
        throw new InvalidArgumentError('decision.replicas', replicas[i], 'nodes with an id');
      }
    }
    this.#replicas = replicas;
    this.#complete = replicas.length === 0;
    this.#targets = [newTarget(decision.primary, 0, host.slotOf(decision.primary))];
    // A hand-made decision may lack `placement`: its primary is then the owner.
    this.#ownerId = (decision.placement?.[0] ?? decision.primary).id;
    this.#startedAt = now;
  }

  run(): Promise<Routed<T>> {
    const promise = new Promise<Routed<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#start();
    return promise;
  }

  /**
   * Runs with the outcome going to `sink` (exactly one of its methods, once) instead of a
   * promise. The sink may be called before this returns (a decision that cannot start).
   */
  runTo(sink: RoutedSink<T>): void {
    this.#sink = sink;
    this.#start();
  }

  #start(): void {
    const signal = this.#signal;
    if (signal?.aborted) {
      this.#fail(new AbortedError(0, signal.reason));
      return;
    }
    // run()/runTo() follow the constructor at once: its clock reading is still "now".
    const deadline = this.#deadline;
    const left =
      deadline.clock === this.#host.clock ? deadline.at - this.#startedAt : deadline.remaining();
    if (left <= 0) {
      this.#fail(new DeadlineExceededError());
      return;
    }
    this.#host.budget.recordRequest();
    if (signal !== undefined) {
      const onAbort = (): void => {
        this.#fail(new AbortedError(0, signal.reason));
      };
      this.#onAbort = onAbort;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    this.#advance();
  }

  /** An attempt of a settled call reported (see `Attempt`). */
  settled(attempt: Attempt<T>, ok: boolean, outcome: unknown): void {
    if (ok) this.#onSuccess(attempt, outcome as T);
    else this.#onError(attempt, outcome);
  }

  /** Starts the next attempt if there is one; otherwise backs off or gives up. */
  #advance(): void {
    if (this.#settled) return;
    if (!this.#budgetExhausted) {
      const target = this.#pickUntried() ?? this.#pickLastResort();
      if (target !== undefined) {
        this.#launch(target, false, false);
        return;
      }
    }
    if (this.#inFlight()) return;
    if (!this.#budgetExhausted && this.#failures > 0) {
      this.#scheduleRetry();
      return;
    }
    this.#giveUp();
  }

  /** Every target: the replicas' made now if not yet (see `#targets`). */
  #everyTarget(): Target[] {
    const targets = this.#targets;
    if (this.#complete) return targets;
    this.#complete = true;
    const replicas = this.#replicas;
    outer: for (let i = 0; i < replicas.length; i++) {
      const node = replicas[i]!;
      for (let k = 0; k < targets.length; k++) if (targets[k]!.node.id === node.id) continue outer;
      targets.push(newTarget(node, targets.length, this.#host.slotOf(node)));
    }
    return targets;
  }

  /** The next target not yet tried whose breaker admits it; refused ones are marked open. */
  #pickUntried(): Target | undefined {
    // The primary first, on its own; the replicas' targets only once it is tried.
    const targets = this.#targets[0]!.tried ? this.#everyTarget() : this.#targets;
    for (const target of targets) {
      if (target.tried) continue;
      target.tried = true;
      const admission = this.#acquire(target);
      if (admission === REJECTED) {
        target.open = true;
        this.#addError(target.node.id, new CircuitBreakerOpenError(target.node.id));
        this.#hookAttempt(target.node, 'rejected', 0, undefined);
        continue;
      }
      target.admission = admission;
      return target;
    }
    // The primary's breaker refused it: on to the replicas.
    return this.#complete ? undefined : this.#pickUntried();
  }

  /** Once per operation, after an admitted attempt failed: a target whose breaker was open. */
  #pickLastResort(): Target | undefined {
    if (!this.#host.options.tryOpenLast || this.#lastResortUsed || this.#failures === 0) {
      return undefined;
    }
    if (this.#inFlight()) return undefined;
    for (const target of this.#everyTarget()) {
      if (!target.open) continue;
      this.#lastResortUsed = true;
      const admission = this.#acquire(target);
      target.admission = admission === REJECTED ? BYPASS : admission;
      return target;
    }
    return undefined;
  }

  #acquire(target: Target): number {
    return target.slot < 0 ? BYPASS : this.#host.breakers.tryAcquire(target.slot);
  }

  #settleBreaker(attempt: Attempt<T>, verdict: 'success' | 'failure' | 'release'): void {
    const { admission, target } = attempt;
    if (admission === BYPASS || target.slot < 0) return;
    const breakers = this.#host.breakers;
    if (verdict === 'success') breakers.onSuccess(target.slot, admission);
    else if (verdict === 'failure') breakers.onFailure(target.slot, admission);
    else breakers.release(target.slot, admission);
  }

  /**
   * Plans the retry phase's next attempt with @engram/retry's `planRetry` (the policy `retry()`
   * follows too). Pushback is per node: the delay is the backoff while any target that did not
   * refuse retries sent no pushback, else the soonest pushback to end (a node's pushback
   * replaces the backoff for it). The retry then goes to the first target, in order, that is
   * not pushed back past it and that its breaker admits.
   */
  #scheduleRetry(): void {
    const o = this.#host.options;
    const now = this.#host.clock.now();
    let pushback: number | undefined = -1; // every target refused retries
    for (const target of this.#everyTarget()) {
      if (target.noRetry) continue;
      if (!target.pushedBack) {
        pushback = undefined;
        break;
      }
      const wait = Math.max(0, target.notBefore - now);
      pushback = pushback === -1 ? wait : Math.min(pushback as number, wait);
    }
    const plan = planRetry(
      this.#backoff,
      {
        maxRetries: o.maxRetries,
        backoff: { baseMs: o.retryBaseDelayMs, maxMs: o.retryMaxDelayMs, jitter: o.retryJitter },
      },
      pushback,
      this.#deadline.remaining(),
      this.#host.random,
      this.#host.budget,
    );
    if (!plan.retry) {
      if (plan.reason === 'deadline') {
        this.#fail(new DeadlineExceededError(0, this.#lastError, this.#errorList()));
        return;
      }
      if (plan.reason === 'budget') this.#budgetExhausted = true;
      this.#giveUp();
      return;
    }
    this.#backoff = plan.next;
    const delay = plan.delayMs;
    this.#retryAt = now + delay;
    const onRetry = this.#host.hooks.onRetry;
    if (onRetry !== undefined) {
      const node = this.#everyTarget().find((t) => !t.noRetry && t.notBefore <= now + delay)?.node;
      const next = this.#attempts + 1;
      if (node !== undefined) this.#emit(() => onRetry(this.#operation, node, next, delay));
    }
    this.#backoffTimer = setTimeout(Execution.#onBackoff, delay, this);
  }

  /** A retry after backoff: the first target (in order) not pushed back that its breaker admits. */
  #retryNow(): void {
    if (this.#settled) return;
    const retryAt = this.#retryAt;
    for (const target of this.#everyTarget()) {
      if (target.noRetry || target.notBefore > retryAt) continue;
      const admission = this.#acquire(target);
      if (admission === REJECTED) continue;
      target.admission = admission;
      this.#launch(target, false, true);
      return;
    }
    this.#giveUp();
  }

  /**
   * Starts one attempt on `target` (admission in `target.admission`); false if the budget
   * refused. Every attempt after the first takes a budget token; a retry after backoff took
   * its token when it was planned.
   */
  #launch(target: Target, hedge: boolean, afterBackoff: boolean): boolean {
    const admission = target.admission;
    const host = this.#host;
    if (this.#attempts > 0 && !afterBackoff && !host.budget.tryRetry()) {
      if (admission !== BYPASS) host.breakers.release(target.slot, admission);
      if (hedge) {
        target.tried = false;
        return false;
      }
      this.#budgetExhausted = true;
      if (!this.#inFlight()) this.#giveUp();
      return false;
    }
    const n = ++this.#attempts;
    const node = target.node;
    if (isProbe(admission)) host.probing(node);
    const previous = this.#lastNode;
    const hooks = host.hooks;
    if (previous !== undefined && previous !== node) {
      const onFallback = hooks.onFallback;
      if (onFallback !== undefined) this.#emit(() => onFallback(this.#operation, previous, node));
    }
    if (n > 1 && !afterBackoff) {
      // Fail-overs and hedges are retries without a delay (backoffs are reported when scheduled).
      const onRetry = hooks.onRetry;
      if (onRetry !== undefined) this.#emit(() => onRetry(this.#operation, node, n, 0));
    }
    this.#lastNode = node;
    const deadline = this.#deadline;
    const timeoutMs = this.#attemptTimeoutMs;
    // One clock read (two when the caller's deadline runs on another clock), none for the
    // first attempt: it starts within the same call as the constructor, which read the clock.
    const sameClock = deadline.clock === host.clock;
    const now = n === 1 && sameClock ? this.#startedAt : deadline.clock.now();
    const remaining = Math.max(deadline.at - now, 0);
    const attemptAt = timeoutMs < remaining ? now + timeoutMs : deadline.at;
    const startedAt = sameClock ? now : host.clock.now();
    const fallback = node.id !== this.#ownerId;
    const attempt = new Attempt<T>(
      this,
      target,
      admission,
      startedAt,
      n,
      fallback,
      deadline,
      attemptAt,
      hedge,
    );
    const wait = Math.min(timeoutMs, remaining);
    if (wait !== Number.POSITIVE_INFINITY) {
      host.attemptTimers.schedule(attempt as Attempt<unknown>, startedAt + wait, startedAt);
    }
    this.#addInflight(attempt);
    host.outstanding.start(target.slot);
    if (this.#settles) {
      // A settlement during the call is handled after it returns, as a promise's would be.
      attempt.starting = true;
      try {
        const call = this.#call;
        if (typeof call === 'function') (call as SettledCall<T>)(attempt, attempt);
        else call.runAttempt(attempt, attempt);
      } catch (error) {
        queueMicrotask(() => this.#onError(attempt, error));
      }
      attempt.starting = false;
    } else {
      let pending: Promise<T>;
      try {
        pending = Promise.resolve((this.#call as (ctx: CallContext) => Promise<T>)(attempt));
      } catch (error) {
        pending = Promise.reject(error);
      }
      pending.then(
        (value) => this.#onSuccess(attempt, value),
        (error: unknown) => this.#onError(attempt, error),
      );
    }
    this.#armHedge(attempt);
    return true;
  }

  #armHedge(attempt: Attempt<T>): void {
    const hedge = this.#hedge;
    if (hedge === undefined || this.#hedges >= hedge.maxHedges) return;
    if (!this.#everyTarget().some((t) => !t.tried)) return;
    let delay = hedge.delayMs;
    if (hedge.percentile !== undefined) {
      const p = this.#host.latency.percentile(hedge.percentile);
      if (!Number.isNaN(p)) delay = Math.min(Math.max(p, hedge.minDelayMs), hedge.delayMs * 10);
    }
    if (delay >= this.#deadline.remaining()) return;
    attempt.hedgeTimer = setTimeout(() => {
      attempt.hedgeTimer = undefined;
      if (this.#settled || attempt.done || this.#budgetExhausted) return;
      const target = this.#pickUntried();
      if (target === undefined) return;
      this.#hedges++;
      this.#launch(target, true, false);
    }, delay);
  }

  #finishAttempt(attempt: Attempt<T>): number {
    attempt.done = true;
    this.#host.outstanding.end(attempt.target.slot);
    this.#host.attemptTimers.cancel(attempt as Attempt<unknown>);
    if (attempt.hedgeTimer !== undefined) clearTimeout(attempt.hedgeTimer);
    attempt.hedgeTimer = undefined;
    this.#removeInflight(attempt);
    return this.#host.clock.now() - attempt.startedAt;
  }

  /** Whether any attempt is in flight. */
  #inFlight(): boolean {
    return this.#first !== null || (this.#more !== null && this.#more.length > 0);
  }

  #addInflight(attempt: Attempt<T>): void {
    if (this.#first === null) this.#first = attempt;
    else if (this.#more === null) this.#more = [attempt];
    else this.#more.push(attempt);
  }

  #removeInflight(attempt: Attempt<T>): void {
    if (this.#first === attempt) this.#first = null;
    else {
      const more = this.#more;
      const i = more === null ? -1 : more.indexOf(attempt);
      if (i >= 0) more!.splice(i, 1);
    }
  }

  #addError(nodeId: string, error: unknown): void {
    const entry: TargetError = { nodeId, error };
    if (this.#errors === null) this.#errors = [entry];
    else this.#errors.push(entry);
  }

  /** A copy of the failures so far (errors carry it; the list goes on growing). */
  #errorList(): TargetError[] {
    return this.#errors === null ? [] : this.#errors.slice();
  }

  #onSuccess(attempt: Attempt<T>, value: T): void {
    if (attempt.done) return; // already decided: by its timer, or abandoned by #finish
    const durationMs = this.#finishAttempt(attempt);
    this.#host.outstanding.answered(attempt.target.slot, durationMs);
    this.#settleBreaker(attempt, 'success');
    this.#hookAttempt(attempt.target.node, 'ok', durationMs, undefined);
    if (attempt.abandoned || this.#settled) return;
    const op = this.#decision.operation;
    if (op === 'recall' || op === 'query') this.#host.latency.record(durationMs);
    const routing: RoutingInfo = {
      servedBy: attempt.target.node.id,
      attempts: this.#attempts,
      fallback: attempt.target.node.id !== this.#ownerId,
      strategy: this.#decision.strategy,
      tableEpoch: this.#decision.epoch,
      acknowledged: 0,
      asked: 0,
      degraded: this.#decision.degraded === true,
    };
    this.#finish();
    const onComplete = this.#host.hooks.onComplete;
    if (onComplete !== undefined) {
      const ms = this.#host.clock.now() - this.#startedAt;
      this.#emit(() => onComplete(this.#operation, 'ok', ms, routing));
    }
    const sink = this.#sink;
    if (sink === undefined) {
      this.#resolve({ value, routing });
      return;
    }
    try {
      sink.routed(value, routing);
    } catch (error) {
      this.#host.logger.error({ err: error }, 'router sink threw');
    }
  }

  /** @internal The attempt's timer fired (`ExecutionHost.attemptTimers`). */
  timedOut(attempt: Attempt<T>): void {
    this.#expire(attempt);
  }

  /** The attempt's timer fired: its own timeout, or the operation's deadline. */
  #expire(attempt: Attempt<T>): void {
    if (attempt.done || this.#settled) return;
    const reason =
      this.#deadline.remaining() <= DEADLINE_SLACK_MS
        ? new DeadlineExceededError()
        : new AttemptTimeoutError(this.#attemptTimeoutMs);
    // Decide now, then cancel the call: a call that ignores cancellation cannot hold us past
    // it, and one that ends at once when cancelled (a reset stream reports a failure) is
    // already decided, so the timeout is what the attempt is recorded with.
    this.#onError(attempt, reason);
    attempt.cancel(reason);
  }

  #onError(attempt: Attempt<T>, error: unknown): void {
    if (attempt.done) return; // already decided by its timer
    const durationMs = this.#finishAttempt(attempt);
    if (attempt.abandoned || this.#settled) {
      this.#settleBreaker(attempt, 'release');
      return;
    }
    const node = attempt.target.node;
    const deadline = this.#deadline;
    // A gRPC DEADLINE_EXCEEDED is the deadline we sent with the attempt expiring (grpc-js's
    // timer or the node's, on the wall clock, may run a few ms ahead of our monotonic one):
    // the operation's when the attempt had no earlier deadline of its own, else the attempt's.
    const grpcDeadline = isGrpcDeadline(error);
    const ownDeadline = attempt.attemptAt < deadline.at;
    const opExpired =
      isDeadlineExceededError(error) ||
      deadline.expired() ||
      (grpcDeadline && (!ownDeadline || deadline.remaining() <= DEADLINE_SLACK_MS));
    const timedOut = error instanceof AttemptTimeoutError || (grpcDeadline && ownDeadline);
    const failure =
      opExpired && grpcDeadline
        ? new DeadlineExceededError(0, error)
        : timedOut && !(error instanceof AttemptTimeoutError)
          ? new AttemptTimeoutError(this.#attemptTimeoutMs)
          : error;
    this.#lastError = failure;
    this.#addError(node.id, failure);
    this.#hookAttempt(node, 'error', durationMs, failure);
    if (opExpired) {
      // The node did not answer within the whole remaining deadline: a failure for its breaker.
      this.#settleBreaker(attempt, 'failure');
      this.#fail(new DeadlineExceededError(0, failure, this.#errorList()));
      return;
    }
    if (timedOut || this.#isRetryable(error)) {
      const pushback = retryPushbackMs(error);
      if (pushback !== undefined) {
        if (pushback < 0) attempt.target.noRetry = true;
        else {
          attempt.target.notBefore = this.#host.clock.now() + pushback;
          attempt.target.pushedBack = true;
        }
      }
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
    const errors = this.#errorList();
    if (this.#budgetExhausted) {
      this.#fail(new RetryBudgetExhaustedError(0, this.#lastError, errors));
    } else if (this.#attempts === 0) {
      this.#fail(new CircuitBreakerOpenError(this.#targets[0]!.node.id));
    } else if (this.#everyTarget().length === 1) {
      const last = this.#lastError;
      this.#fail(
        last instanceof InvalidEndpointError
          ? last
          : new ConnectionFailedError(this.#targets[0]!.node.id, last),
      );
    } else {
      this.#fail(new AllReplicasFailedError(errors));
    }
  }

  #finish(): void {
    this.#settled = true;
    if (this.#backoffTimer !== undefined) clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    const onAbort = this.#onAbort;
    if (onAbort !== undefined) {
      this.#onAbort = undefined;
      this.#signal?.removeEventListener('abort', onAbort);
    }
    if (!this.#inFlight()) return;
    const reason = new AbortedError(0, 'operation finished');
    // Abandoned attempts (lost hedges, caller abort, deadline) are decided now: their breaker
    // admission is released at once, so a call that ignores cancellation cannot hold a
    // half-open probe permit; their late settlement is ignored (`done`).
    const abandoned: Attempt<T>[] = [];
    if (this.#first !== null) abandoned.push(this.#first);
    if (this.#more !== null) for (const attempt of this.#more) abandoned.push(attempt);
    this.#first = null;
    this.#more = null;
    for (const attempt of abandoned) {
      attempt.abandoned = true;
      attempt.done = true;
      this.#host.outstanding.end(attempt.target.slot);
      this.#host.attemptTimers.cancel(attempt as Attempt<unknown>);
      if (attempt.hedgeTimer !== undefined) clearTimeout(attempt.hedgeTimer);
      attempt.hedgeTimer = undefined;
      this.#settleBreaker(attempt, 'release');
    }
    for (const attempt of abandoned) attempt.cancel(reason);
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
      acknowledged: 0,
      asked: 0,
      degraded: this.#decision.degraded === true,
    };
    if (carriesRouting(error)) {
      error.attempts = this.#attempts;
      error.routing = routing;
    }
    const onComplete = this.#host.hooks.onComplete;
    if (onComplete !== undefined) {
      const code = errorCode(error);
      const ms = this.#host.clock.now() - this.#startedAt;
      this.#emit(() => onComplete(this.#operation, code, ms, routing));
    }
    const sink = this.#sink;
    if (sink === undefined) {
      this.#reject(error);
      return;
    }
    try {
      sink.failed(error);
    } catch (thrown) {
      this.#host.logger.error({ err: thrown }, 'router sink threw');
    }
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
