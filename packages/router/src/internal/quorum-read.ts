import type { NodeInfo } from '@engram/ring';
import { requiredReplicas } from './consistency.js';
import { singleNodeDecision } from './decider.js';
import { InsufficientReplicasError, type TargetError } from './errors.js';
import { copyExecuteOptions } from './execute-options.js';
import { defaultIsRetryable } from './policy.js';
import type { ReplicationHost } from './replication.js';
import type { CallContext, ExecuteOptions, Routed, RoutingDecision } from './types.js';

/** A replica of a quorum read is asked once: a failure moves to the next replica. */
const NEVER_RETRY = (): boolean => false;

/** How the answers of several replicas become one (operation-specific). */
export interface ReadMerge<T> {
  /**
   * One answer from the replicas' answers (in target order), and whether they disagreed: a
   * replica missing a memory another returned, or holding an older version of it.
   */
  merge(values: readonly T[]): { readonly value: T; readonly diverged: boolean };
}

export interface QuorumReadOptions extends ExecuteOptions {
  /** The replicas answered differently: repair the space (in the background). */
  readonly onDivergence?: ((spaceId: string, nodes: readonly NodeInfo[]) => void) | undefined;
}

/**
 * A quorum read: a majority of the space's replicas asked in parallel (the decision's target
 * order: up nodes first), a failed one replaced by the next replica not asked yet, the answers
 * merged once a majority answered. With quorum writes this reads every acknowledged write
 * through any single failure. When the replicas disagreed, `onDivergence` asks for a repair
 * (read repair: the merged answer is already right; the replicas are fixed behind it).
 */
export class QuorumRead<T> {
  readonly #host: ReplicationHost;
  readonly #decision: RoutingDecision;
  readonly #call: (ctx: CallContext) => Promise<T>;
  readonly #merge: ReadMerge<T>;
  /** The read's options, its deadline set. */
  readonly #options: ExecuteOptions;
  readonly #onDivergence: QuorumReadOptions['onDivergence'];
  readonly #targets: readonly NodeInfo[];
  readonly #required: number;
  readonly #values: (T | undefined)[];
  readonly #errors: TargetError[] = [];
  #next = 0;
  #answers = 0;
  #failures = 0;
  #attempts = 0;
  #done = false;
  #resolve!: (value: Routed<T>) => void;
  #reject!: (error: unknown) => void;

  constructor(
    host: ReplicationHost,
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    merge: ReadMerge<T>,
    options: ExecuteOptions,
    onDivergence: QuorumReadOptions['onDivergence'],
  ) {
    this.#host = host;
    this.#decision = decision;
    this.#call = call;
    this.#merge = merge;
    this.#options = options;
    this.#onDivergence = onDivergence;
    this.#targets = [decision.primary, ...decision.replicas];
    this.#required = requiredReplicas('quorum', decision.placement.length);
    this.#values = new Array(this.#targets.length).fill(undefined);
  }

  run(): Promise<Routed<T>> {
    const done = new Promise<Routed<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const first = Math.min(this.#required, this.#targets.length);
    for (let i = 0; i < first; i++) this.#ask();
    if (first < this.#required) this.#refuse();
    return done;
  }

  #ask(): void {
    const index = this.#next++;
    const node = this.#targets[index]!;
    const d = this.#decision;
    const single = singleNodeDecision(node, d.spaceId, d.epoch, d.operation);
    // One attempt per replica: a failure moves to the next replica rather than retrying.
    const options = copyExecuteOptions(this.#options);
    options.isRetryable = NEVER_RETRY;
    this.#host.execute(single, this.#call, options).then(
      ({ value, routing }) => {
        this.#attempts += routing.attempts;
        this.#values[index] = value;
        this.#answers++;
        if (!this.#done && this.#answers >= this.#required) this.#finish();
      },
      (error: unknown) => {
        const attempts = (error as { attempts?: unknown })?.attempts;
        this.#attempts += typeof attempts === 'number' ? attempts : 1;
        this.#failures++;
        this.#errors.push({ nodeId: node.id, error });
        if (this.#done) return;
        // An answer about the request (INVALID_ARGUMENT…) is the client's answer.
        const retryable = (this.#options.isRetryable ?? defaultIsRetryable)(error);
        const code = (error as { code?: unknown } | null)?.code;
        if (!retryable && typeof code === 'number') {
          this.#done = true;
          this.#reject(error);
          return;
        }
        if (this.#next < this.#targets.length) this.#ask();
        else if (this.#answers + (this.#next - this.#answers - this.#failures) < this.#required) {
          this.#refuse();
        }
      },
    );
  }

  #finish(): void {
    this.#done = true;
    const values: T[] = [];
    const nodes: NodeInfo[] = [];
    for (let i = 0; i < this.#values.length; i++) {
      if (this.#values[i] === undefined) continue;
      values.push(this.#values[i]!);
      nodes.push(this.#targets[i]!);
    }
    const { value, diverged } = this.#merge.merge(values);
    const owner = this.#decision.placement[0]?.id;
    if (diverged) this.#onDivergence?.(this.#decision.spaceId, nodes);
    this.#resolve({
      value,
      routing: {
        servedBy: nodes.map((n) => n.id).join(','),
        attempts: this.#attempts,
        fallback: !nodes.some((n) => n.id === owner),
        strategy: this.#decision.strategy,
        tableEpoch: this.#decision.epoch,
        acknowledged: nodes.length,
        asked: this.#decision.placement.length,
        degraded: false,
      },
    });
  }

  #refuse(): void {
    this.#done = true;
    const error = new InsufficientReplicasError(
      'read',
      this.#required,
      this.#answers,
      this.#decision.placement.length,
      this.#errors.slice(),
    );
    error.attempts = this.#attempts;
    this.#reject(error);
  }
}
