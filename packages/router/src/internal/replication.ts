import type { NodeInfo } from '@engram/ring';
import { requiredReplicas, type WriteConsistency } from './consistency.js';
import { singleNodeDecision } from './decider.js';
import { InsufficientReplicasError, isRouterError, type TargetError } from './errors.js';
import { copyExecuteOptions } from './execute-options.js';
import { AttemptTimeoutError, defaultIsRetryable, isNodeFailure } from './policy.js';
import type { TrailingWrites } from './trailing-writes.js';
import {
  type AttemptSettle,
  type CallContext,
  type ExecuteOptions,
  Operation,
  type Routed,
  type RoutedSink,
  type RoutingDecision,
  type RoutingInfo,
  RoutingStrategy,
  type SettledCall,
} from './types.js';

/**
 * What a replicated write tells its owner about replicas, so reads can avoid a replica that
 * lacks an acknowledged write and a missed write gets a hint. Called synchronously (`missed`
 * may return a promise: the replica counts as handled once it resolves).
 */
export interface WriteObserver {
  /** The client was acknowledged while this replica's write was still running. */
  lagging?(node: NodeInfo, spaceId: string): void;
  /** A replica reported `lagging` is done (applied, or failed and `missed` resolved). */
  settled?(node: NodeInfo, spaceId: string): void;
  /** The replica missed the write (failed, timed out, breaker open): keep a hint for it. */
  missed?(node: NodeInfo, spaceId: string, error: unknown): Promise<void> | void;
}

export interface ReplicateOptions extends ExecuteOptions {
  /** Default: the router's `writeConsistency`. */
  readonly consistency?: WriteConsistency | undefined;
  readonly observer?: WriteObserver | undefined;
}

/** A replicated write's answer, and when its stragglers are done. */
export interface Replicated<T> extends Routed<T> {
  /** Resolves when every replica applied the write or was handed to `missed` (never rejects). */
  readonly settled: Promise<void>;
}

/** What a replication needs from its router. */
export interface ReplicationHost {
  /** Replica writes running after their answer, per node. */
  readonly trailing: TrailingWrites;
  execute<T>(
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    options: ExecuteOptions,
  ): Promise<Routed<T>>;
  /**
   * `executeTo` with options the caller already validated (a replication validates its
   * options once, not once per replica).
   */
  runTo<T>(
    decision: RoutingDecision,
    call: SettledCall<T>,
    options: ExecuteOptions,
    sink: RoutedSink<T>,
  ): void;
}

/** A promise-returning call as a `SettledCall` (a throw or a rejection is a failed attempt). */
export function settledCall<T>(call: (ctx: CallContext) => Promise<T>): SettledCall<T> {
  return (ctx, settle) => {
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(call(ctx));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => settle.resolve(value),
      (error: unknown) => settle.reject(error),
    );
  };
}

type Outcome<T> =
  | { readonly kind: 'value'; readonly value: T; readonly attempts: number }
  | { readonly kind: 'answer'; readonly error: unknown; readonly attempts: number }
  | { readonly kind: 'failed'; readonly error: unknown; readonly attempts: number };

/**
 * A node's answer that is about the request, not the node (INVALID_ARGUMENT, NOT_FOUND…): every
 * replica would give it, so it counts as the replica having handled the write.
 */
function isAnswer(error: unknown): boolean {
  if (isRouterError(error) || error instanceof AttemptTimeoutError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && !isNodeFailure(error) && !defaultIsRetryable(error);
}

/**
 * One replicated write, Dynamo's coordinator: the write goes to every replica of the space in
 * placement order, in parallel, each behind its own breaker with its own retries (one
 * single-node execution each, under the one deadline), and to the pending owners of a space
 * whose data is moving (`decision.pending`; they do not count towards W). The client is
 * answered once `required` replicas acknowledged, with the acknowledged reply first in
 * placement order; when too many replicas failed for that, with `InsufficientReplicasError`.
 * Replicas still running then finish in the background without further retries (a failure
 * after the answer is not worth a retry: its hint will carry the write), and every replica that
 * failed goes to `observer.missed`. The host counts the replicas still running after the
 * answer (`TrailingWrites`) until each is done.
 */
export class Replication<T> {
  readonly #host: ReplicationHost;
  readonly #decision: RoutingDecision;
  readonly #call: SettledCall<T>;
  /** The write's options, its deadline set. */
  readonly #options: ExecuteOptions;
  readonly #observer: WriteObserver | undefined;
  readonly #targets: readonly NodeInfo[];
  /** Replicas that count towards W (the placement); pending owners follow them in #targets. */
  readonly #natural: number;
  readonly #required: number;
  readonly #outcomes: (Outcome<T> | undefined)[];
  readonly #errors: TargetError[] = [];
  #answered = false;
  /** An attempt on some replica failed before the answer (set by `StumbleSettle`). */
  stumbled = false;
  #acks = 0;
  #failures = 0;
  #resolve!: (value: Replicated<T>) => void;
  #reject!: (error: unknown) => void;
  /** Replicas not yet handled (settled, and `missed` resolved for a failure). */
  #unhandled: number;
  readonly #allHandled: Promise<void>;
  #onAllHandled!: () => void;

  constructor(
    host: ReplicationHost,
    decision: RoutingDecision,
    call: SettledCall<T>,
    options: ExecuteOptions,
    observer: WriteObserver | undefined,
    consistency: WriteConsistency,
  ) {
    this.#host = host;
    this.#decision = decision;
    this.#call = call;
    this.#options = options;
    this.#observer = observer;
    const natural = decision.placement;
    const targets = [...natural];
    for (const node of decision.pending ?? []) {
      if (!targets.some((t) => t.id === node.id)) targets.push(node);
    }
    this.#targets = targets;
    this.#natural = natural.length;
    this.#required = requiredReplicas(consistency, natural.length);
    this.#outcomes = new Array(targets.length).fill(undefined);
    this.#unhandled = targets.length;
    this.#allHandled = new Promise<void>((resolve) => {
      this.#onAllHandled = resolve;
    });
  }

  run(): Promise<Replicated<T>> {
    const answer = new Promise<Replicated<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const base = this.#options.isRetryable ?? defaultIsRetryable;
    // Before the answer, a replica retries as any call does; after it, no more retries.
    const isRetryable = (error: unknown) => !this.#answered && base(error);
    const perReplica = copyExecuteOptions(this.#options);
    perReplica.isRetryable = isRetryable;
    const d = this.#decision;
    const inner = this.#call;
    // A replica whose attempt failed (even if a retry is still running) makes the write
    // degraded: it is short of its placement right now.
    const call: SettledCall<T> = (ctx, settle) => inner(ctx, new StumbleSettle(settle, this));
    for (let i = 0; i < this.#targets.length; i++) {
      const node = this.#targets[i]!;
      const single = singleNodeDecision(node, d.spaceId, d.epoch, Operation.Store);
      this.#host.runTo(single, call, perReplica, new ReplicaSink(this, i));
    }
    return answer;
  }

  /** Replica `index`'s execution ended (`ReplicaSink`). */
  replicaRouted(index: number, value: T, routing: RoutingInfo): void {
    this.#settle(index, { kind: 'value', value, attempts: routing.attempts });
  }

  /** Replica `index`'s execution failed (`ReplicaSink`). */
  replicaFailed(index: number, error: unknown): void {
    const attempts = (error as { attempts?: unknown })?.attempts;
    const n = typeof attempts === 'number' ? attempts : 1;
    this.#settle(
      index,
      isAnswer(error)
        ? { kind: 'answer', error, attempts: n }
        : { kind: 'failed', error, attempts: n },
    );
  }

  #settle(index: number, outcome: Outcome<T>): void {
    this.#outcomes[index] = outcome;
    const node = this.#targets[index]!;
    // A replica that ends after the answer was running at it: `#trail` counted it.
    if (this.#answered) this.#host.trailing.remove(node.id);
    const observer = this.#observer;
    const wasAnswered = this.#answered;
    const spaceId = this.#decision.spaceId;
    if (outcome.kind === 'failed') {
      this.#errors.push({ nodeId: node.id, error: outcome.error });
      void Promise.resolve()
        .then(() => observer?.missed?.(node, spaceId, outcome.error))
        .catch(() => {}) // the owner logs its own failures; a lost hint is repaired later
        .then(() => {
          if (wasAnswered) observer?.settled?.(node, spaceId);
          this.#handledOne();
        });
    } else {
      if (wasAnswered) observer?.settled?.(node, spaceId);
      this.#handledOne();
    }
    if (index >= this.#natural || wasAnswered) return;
    if (outcome.kind === 'failed') this.#failures++;
    else this.#acks++;
    if (this.#acks >= this.#required) this.#answer();
    else if (this.#natural - this.#failures < this.#required) this.#refuse();
  }

  /** The replicas still running outlive the answer: counted until each is done. */
  #trail(): void {
    const trailing = this.#host.trailing;
    for (let i = 0; i < this.#targets.length; i++) {
      if (this.#outcomes[i] === undefined) trailing.add(this.#targets[i]!.id);
    }
  }

  #answer(): void {
    this.#answered = true;
    this.#trail();
    const observer = this.#observer;
    let served = -1;
    let attempts = 0;
    for (let i = 0; i < this.#targets.length; i++) {
      const o = this.#outcomes[i];
      if (o === undefined) {
        // Still running: the client is told before this replica has the write.
        observer?.lagging?.(this.#targets[i]!, this.#decision.spaceId);
        continue;
      }
      attempts += o.attempts;
      if (served < 0 && i < this.#natural && o.kind !== 'failed') served = i;
    }
    const first = this.#outcomes[served]!;
    const node = this.#targets[served]!;
    const routing = {
      servedBy: node.id,
      attempts,
      fallback: served !== 0,
      strategy: RoutingStrategy.Replicated,
      tableEpoch: this.#decision.epoch,
      acknowledged: this.#acks,
      asked: this.#natural,
      // A replica that failed (not one still running): the write is short of its placement.
      degraded: this.stumbled || this.#failures > 0 || this.#decision.degraded === true,
    };
    if (first.kind === 'answer') {
      const error = first.error as { routing?: unknown };
      if (typeof error === 'object' && error !== null) error.routing = routing;
      this.#reject(first.error);
    } else if (first.kind === 'value') {
      this.#resolve({ value: first.value, routing, settled: this.#allHandled });
    }
  }

  #refuse(): void {
    this.#answered = true;
    this.#trail();
    for (let i = 0; i < this.#targets.length; i++) {
      if (this.#outcomes[i] === undefined) {
        this.#observer?.lagging?.(this.#targets[i]!, this.#decision.spaceId);
      }
    }
    const error = new InsufficientReplicasError(
      'write',
      this.#required,
      this.#acks,
      this.#natural,
      this.#errors.slice(),
    );
    let attempts = 0;
    for (const o of this.#outcomes) if (o !== undefined) attempts += o.attempts;
    error.attempts = attempts;
    error.routing = {
      servedBy: '',
      attempts,
      fallback: false,
      strategy: RoutingStrategy.Replicated,
      tableEpoch: this.#decision.epoch,
      acknowledged: this.#acks,
      asked: this.#natural,
      degraded: true,
    };
    this.#reject(error);
  }

  #handledOne(): void {
    if (--this.#unhandled === 0) this.#onAllHandled();
  }
}

/** Where one replica's execution reports: its replication, at its index. */
class ReplicaSink<T> implements RoutedSink<T> {
  readonly #replication: Replication<T>;
  readonly #index: number;

  constructor(replication: Replication<T>, index: number) {
    this.#replication = replication;
    this.#index = index;
  }

  routed(value: T, routing: RoutingInfo): void {
    this.#replication.replicaRouted(this.#index, value, routing);
  }

  failed(error: unknown): void {
    this.#replication.replicaFailed(this.#index, error);
  }
}

/** An attempt's settle that marks its replication stumbled when the attempt fails. */
class StumbleSettle<T> implements AttemptSettle<T> {
  readonly #settle: AttemptSettle<T>;
  readonly #replication: Replication<T>;

  constructor(settle: AttemptSettle<T>, replication: Replication<T>) {
    this.#settle = settle;
    this.#replication = replication;
  }

  resolve(value: T): void {
    this.#settle.resolve(value);
  }

  reject(error: unknown): void {
    this.#replication.stumbled = true;
    this.#settle.reject(error);
  }
}
