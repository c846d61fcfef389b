import type { NodeInfo } from '@engram/ring';
import { requiredReplicas, type WriteConsistency } from './consistency.js';
import { singleNodeDecision } from './decider.js';
import { InsufficientReplicasError, isRouterError, type TargetError } from './errors.js';
import { AttemptTimeoutError, defaultIsRetryable, isNodeFailure } from './policy.js';
import {
  type CallContext,
  type ExecuteOptions,
  Operation,
  type Routed,
  type RoutingDecision,
  RoutingStrategy,
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
  execute<T>(
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    options: ExecuteOptions,
  ): Promise<Routed<T>>;
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
 * failed goes to `observer.missed`.
 */
export class Replication<T> {
  readonly #host: ReplicationHost;
  readonly #decision: RoutingDecision;
  readonly #call: (ctx: CallContext) => Promise<T>;
  readonly #options: ReplicateOptions;
  readonly #targets: readonly NodeInfo[];
  /** Replicas that count towards W (the placement); pending owners follow them in #targets. */
  readonly #natural: number;
  readonly #required: number;
  readonly #outcomes: (Outcome<T> | undefined)[];
  readonly #errors: TargetError[] = [];
  #answered = false;
  /** An attempt on some replica failed before the answer. */
  #stumbled = false;
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
    call: (ctx: CallContext) => Promise<T>,
    options: ReplicateOptions,
    consistency: WriteConsistency,
  ) {
    this.#host = host;
    this.#decision = decision;
    this.#call = call;
    this.#options = options;
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
    const perReplica: ExecuteOptions = { ...this.#options, isRetryable };
    const d = this.#decision;
    for (let i = 0; i < this.#targets.length; i++) {
      const node = this.#targets[i]!;
      const single = singleNodeDecision(node, d.spaceId, d.epoch, Operation.Store);
      // A replica whose attempt failed (even if a retry is still running) makes the write
      // degraded: it is short of its placement right now.
      const call = (ctx: CallContext) =>
        this.#call(ctx).catch((error: unknown) => {
          this.#stumbled = true;
          throw error;
        });
      this.#host.execute(single, call, perReplica).then(
        ({ value, routing }) =>
          this.#settle(i, { kind: 'value', value, attempts: routing.attempts }),
        (error: unknown) => {
          const attempts = (error as { attempts?: unknown })?.attempts;
          const n = typeof attempts === 'number' ? attempts : 1;
          this.#settle(
            i,
            isAnswer(error)
              ? { kind: 'answer', error, attempts: n }
              : { kind: 'failed', error, attempts: n },
          );
        },
      );
    }
    return answer;
  }

  #settle(index: number, outcome: Outcome<T>): void {
    this.#outcomes[index] = outcome;
    const node = this.#targets[index]!;
    const observer = this.#options.observer;
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

  #answer(): void {
    this.#answered = true;
    const observer = this.#options.observer;
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
      degraded: this.#stumbled || this.#failures > 0 || this.#decision.degraded === true,
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
    for (let i = 0; i < this.#targets.length; i++) {
      if (this.#outcomes[i] === undefined) {
        this.#options.observer?.lagging?.(this.#targets[i]!, this.#decision.spaceId);
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
