import { type JitterMode, validateBackoff } from '@engram/retry';
import { MAX_SPACE_ID_LENGTH } from '@engram/ring';
import { ReadConsistency, WriteConsistency } from './consistency.js';
import { InvalidArgumentError } from './errors.js';
import { ReadBalancing } from './read-balance.js';

/** Hedged reads: a second attempt to the next replica when the first is slow. */
export interface HedgeOptions {
  /** Fixed hedge delay, ms; also used until `percentile` has enough samples. Default 50 ms. */
  readonly delayMs?: number | undefined;
  /**
   * When set (0 < p < 1), the delay is that percentile of recent successful read attempt
   * latencies (last 256), clamped to [minDelayMs, delayMs * 10]. Default: unset (fixed delay).
   */
  readonly percentile?: number | undefined;
  /** Floor of a percentile delay, ms. Default 1 ms. */
  readonly minDelayMs?: number | undefined;
  /** Extra concurrent attempts per operation. Default 1, at most 4. */
  readonly maxHedges?: number | undefined;
}

export interface RouterOptions {
  /** Retries after every target was tried once (with backoff). Default 3. */
  readonly maxRetries?: number | undefined;
  /** First backoff delay, ms. Default 100 ms. */
  readonly retryBaseDelayMs?: number | undefined;
  /** Cap of a backoff delay, ms. Default 5 000 ms. */
  readonly retryMaxDelayMs?: number | undefined;
  /** Backoff jitter. Default 'full'. */
  readonly retryJitter?: JitterMode | undefined;
  /** Deadline of an operation and all its attempts, ms. Default 10 000 ms. */
  readonly deadlineMs?: number | undefined;
  /**
   * Deadline of one attempt, ms (Infinity = only the operation deadline). An attempt that
   * times out is a node failure: the operation fails over. Default 2 000 ms.
   */
  readonly attemptTimeoutMs?: number | undefined;
  /** Reads fall back to replicas. Default true. */
  readonly replicaFallback?: boolean | undefined;
  /** Stores fall back to the first healthy replica when the primary fails. Default true. */
  readonly storeFallback?: boolean | undefined;
  /**
   * `store()` gives a memory without an id a random UUID before the first attempt, so a retry
   * or fall-back after an ambiguous failure overwrites the same memory instead of adding a
   * second one (nodes upsert by id). Default true; false (nodes assign ids) only with
   * `replicateWrites: false`, since replicas would each assign their own.
   */
  readonly assignMemoryIds?: boolean | undefined;
  /** Consecutive failures that open a private breaker. Default 5. */
  readonly breakerThreshold?: number | undefined;
  /** How long a private breaker stays open, ms. Default 30 000 ms. */
  readonly breakerTimeoutMs?: number | undefined;
  /** Slots of the private breaker table (nodes beyond it go unguarded). Default 1024. */
  readonly breakerCapacity?: number | undefined;
  /** Try nodes with open breakers last, once, after every admitted target failed. Default true. */
  readonly tryOpenLast?: boolean | undefined;
  /** Hedged reads; `false` (default) = off. */
  readonly hedge?: HedgeOptions | false | undefined;
  /** Longest accepted space id, UTF-16 units. Default (and cap) MAX_SPACE_ID_LENGTH (1024). */
  readonly maxSpaceIdLength?: number | undefined;
  /**
   * Stores go to every replica of the space (Dynamo's coordinator), answered after
   * `writeConsistency` acknowledgements; replicas that miss one get hints. `false` is the
   * seed's behaviour: the primary only (with `storeFallback`). Default true.
   */
  readonly replicateWrites?: boolean | undefined;
  /** Acknowledgements a replicated write waits for: 'one', 'quorum' or 'all'. Default 'quorum'. */
  readonly writeConsistency?: WriteConsistency | undefined;
  /** Replicas a Recall or Query reads: 'one' (first live) or 'quorum' (merged). Default 'one'. */
  readonly readConsistency?: ReadConsistency | undefined;
  /**
   * Which live replica a read (Recall, a Query's spaces) tries first: 'placement' (the primary
   * while up) or 'least-request' (the primary unless it has more than `readBalancingThreshold`
   * attempts in flight more than another live replica, picked at random: then that one).
   * Writes keep their placement either way. Default 'placement': a read moved to a replica can,
   * with readConsistency 'one', miss an acknowledged write the router's lag record does not
   * know of (router-node's Jepsen test caught one in ~50 checks), so spreading reads is asked for.
   */
  readonly readBalancing?: ReadBalancing | undefined;
  /**
   * Attempts in flight (from this router) the first choice of a read may have beyond another
   * live replica before the read goes to that one ('least-request'). Default 2.
   */
  readonly readBalancingThreshold?: number | undefined;
}

export interface ResolvedHedge {
  readonly delayMs: number;
  readonly percentile: number | undefined;
  readonly minDelayMs: number;
  readonly maxHedges: number;
}

export interface ResolvedRouterOptions {
  readonly maxRetries: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly retryJitter: JitterMode;
  readonly deadlineMs: number;
  readonly attemptTimeoutMs: number;
  readonly replicaFallback: boolean;
  readonly storeFallback: boolean;
  readonly assignMemoryIds: boolean;
  readonly breakerThreshold: number;
  readonly breakerTimeoutMs: number;
  readonly breakerCapacity: number;
  readonly tryOpenLast: boolean;
  readonly hedge: ResolvedHedge | undefined;
  readonly maxSpaceIdLength: number;
  readonly replicateWrites: boolean;
  readonly writeConsistency: WriteConsistency;
  readonly readConsistency: ReadConsistency;
  readonly readBalancing: ReadBalancing;
  readonly readBalancingThreshold: number;
}

/** The seed's RouterConfig defaults, plus ours. */
export const ROUTER_DEFAULTS = Object.freeze({
  maxRetries: 3,
  retryBaseDelayMs: 100, // 100 ms
  retryMaxDelayMs: 5 * 1000, // 5 s
  retryJitter: 'full' as JitterMode,
  deadlineMs: 10 * 1000, // 10 s
  attemptTimeoutMs: 2 * 1000, // 2 s
  replicaFallback: true,
  storeFallback: true,
  assignMemoryIds: true,
  breakerThreshold: 5, // consecutive failures
  breakerTimeoutMs: 30 * 1000, // 30 s
  breakerCapacity: 1024, // slots
  tryOpenLast: true,
  hedge: false as const,
  maxSpaceIdLength: MAX_SPACE_ID_LENGTH,
  replicateWrites: true,
  writeConsistency: 'quorum' as WriteConsistency,
  readConsistency: 'one' as ReadConsistency,
  readBalancing: 'placement' as ReadBalancing,
  readBalancingThreshold: 2, // attempts in flight
});

export const HEDGE_DEFAULTS = Object.freeze({
  delayMs: 50, // 50 ms
  minDelayMs: 1, // 1 ms
  maxHedges: 1,
});

export const MAX_RETRIES = 100;
export const MAX_HEDGES = 4;
export const MAX_READ_BALANCING_THRESHOLD = 1_000_000;
const MAX_MS = 24 * 60 * 60 * 1000; // 24 h

function int(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`options.${field}`, value, `an integer in [${min}, ${max}]`);
  }
  return value;
}

function ms(field: string, value: number, min: number, allowInfinity = false): number {
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_MS) {
    throw new InvalidArgumentError(
      `options.${field}`,
      value,
      `a number of ms in [${min}, ${MAX_MS}]${allowInfinity ? ' or Infinity' : ''}`,
    );
  }
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, values: readonly T[]): T {
  if (!values.includes(value as T)) {
    throw new InvalidArgumentError(`options.${field}`, value, `one of ${values.join(', ')}`);
  }
  return value as T;
}

function bool(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new InvalidArgumentError(`options.${field}`, value, 'a boolean');
  return value;
}

export function resolveHedge(hedge: HedgeOptions | false | undefined): ResolvedHedge | undefined {
  if (hedge === undefined || hedge === false) return undefined;
  if (typeof hedge !== 'object' || hedge === null) {
    throw new InvalidArgumentError('options.hedge', hedge, 'false or an object');
  }
  const percentile = hedge.percentile;
  if (percentile !== undefined && !(percentile > 0 && percentile < 1)) {
    throw new InvalidArgumentError('options.hedge.percentile', percentile, 'a number in (0, 1)');
  }
  return Object.freeze({
    delayMs: ms('hedge.delayMs', hedge.delayMs ?? HEDGE_DEFAULTS.delayMs, 0),
    percentile,
    minDelayMs: ms('hedge.minDelayMs', hedge.minDelayMs ?? HEDGE_DEFAULTS.minDelayMs, 0),
    maxHedges: int('hedge.maxHedges', hedge.maxHedges ?? HEDGE_DEFAULTS.maxHedges, 1, MAX_HEDGES),
  });
}

export function resolveOptions(options: RouterOptions = {}): ResolvedRouterOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  const d = ROUTER_DEFAULTS;
  const resolved: ResolvedRouterOptions = {
    maxRetries: int('maxRetries', options.maxRetries ?? d.maxRetries, 0, MAX_RETRIES),
    retryBaseDelayMs: ms('retryBaseDelayMs', options.retryBaseDelayMs ?? d.retryBaseDelayMs, 0),
    retryMaxDelayMs: ms('retryMaxDelayMs', options.retryMaxDelayMs ?? d.retryMaxDelayMs, 0),
    retryJitter: options.retryJitter ?? d.retryJitter,
    deadlineMs: ms('deadlineMs', options.deadlineMs ?? d.deadlineMs, 1),
    attemptTimeoutMs: ms(
      'attemptTimeoutMs',
      options.attemptTimeoutMs ?? d.attemptTimeoutMs,
      1,
      true,
    ),
    replicaFallback: bool('replicaFallback', options.replicaFallback ?? d.replicaFallback),
    storeFallback: bool('storeFallback', options.storeFallback ?? d.storeFallback),
    assignMemoryIds: bool('assignMemoryIds', options.assignMemoryIds ?? d.assignMemoryIds),
    breakerThreshold: int(
      'breakerThreshold',
      options.breakerThreshold ?? d.breakerThreshold,
      1,
      1_000_000,
    ),
    breakerTimeoutMs: ms('breakerTimeoutMs', options.breakerTimeoutMs ?? d.breakerTimeoutMs, 1),
    breakerCapacity: int(
      'breakerCapacity',
      options.breakerCapacity ?? d.breakerCapacity,
      1,
      1 << 20,
    ),
    tryOpenLast: bool('tryOpenLast', options.tryOpenLast ?? d.tryOpenLast),
    hedge: resolveHedge(options.hedge),
    maxSpaceIdLength: int(
      'maxSpaceIdLength',
      options.maxSpaceIdLength ?? d.maxSpaceIdLength,
      1,
      MAX_SPACE_ID_LENGTH,
    ),
    replicateWrites: bool('replicateWrites', options.replicateWrites ?? d.replicateWrites),
    writeConsistency: oneOf(
      'writeConsistency',
      options.writeConsistency ?? d.writeConsistency,
      Object.values(WriteConsistency),
    ),
    readConsistency: oneOf(
      'readConsistency',
      options.readConsistency ?? d.readConsistency,
      Object.values(ReadConsistency),
    ),
    readBalancing: oneOf(
      'readBalancing',
      options.readBalancing ?? d.readBalancing,
      Object.values(ReadBalancing),
    ),
    readBalancingThreshold: int(
      'readBalancingThreshold',
      options.readBalancingThreshold ?? d.readBalancingThreshold,
      0,
      MAX_READ_BALANCING_THRESHOLD,
    ),
  };
  if (resolved.replicateWrites && !resolved.assignMemoryIds) {
    // Each replica would give the same memory an id of its own: three memories, not one.
    throw new InvalidArgumentError(
      'options.assignMemoryIds',
      false,
      'true while replicateWrites is on (every replica must store a memory under one id)',
    );
  }
  if (resolved.retryMaxDelayMs < resolved.retryBaseDelayMs) {
    throw new InvalidArgumentError(
      'options.retryMaxDelayMs',
      resolved.retryMaxDelayMs,
      `>= retryBaseDelayMs (${resolved.retryBaseDelayMs})`,
    );
  }
  try {
    validateBackoff({
      baseMs: resolved.retryBaseDelayMs,
      maxMs: resolved.retryMaxDelayMs,
      jitter: resolved.retryJitter,
    });
  } catch (error) {
    throw new InvalidArgumentError(
      'options.retryJitter',
      options.retryJitter,
      (error as Error).message,
    );
  }
  return Object.freeze(resolved);
}

/** The per-call options `execute` takes (kept structural: types.ts imports this file). */
interface ExecuteOptionsShape {
  readonly signal?: unknown;
  readonly deadline?: unknown;
  readonly deadlineMs?: unknown;
  readonly operation?: unknown;
  readonly hedge?: unknown;
  readonly attemptTimeoutMs?: unknown;
  readonly isRetryable?: unknown;
}

/**
 * Validates per-call `ExecuteOptions` with the same rules as the router's options; throws
 * `InvalidArgumentError` naming `options.<field>` and the value. Only set fields are checked
 * (a few `typeof` tests on the hot path). `deadlineMs: 0` is valid: already expired.
 */
export function validateExecuteOptions(options: ExecuteOptionsShape): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  const { signal, deadline, deadlineMs, operation, hedge, attemptTimeoutMs, isRetryable } = options;
  if (attemptTimeoutMs !== undefined) ms('attemptTimeoutMs', attemptTimeoutMs as number, 1, true);
  if (deadlineMs !== undefined) ms('deadlineMs', deadlineMs as number, 0);
  if (
    deadline !== undefined &&
    (typeof deadline !== 'object' ||
      deadline === null ||
      typeof (deadline as { remaining?: unknown }).remaining !== 'function' ||
      typeof (deadline as { within?: unknown }).within !== 'function')
  ) {
    throw new InvalidArgumentError('options.deadline', deadline, 'a Deadline');
  }
  if (
    signal !== undefined &&
    (typeof signal !== 'object' ||
      signal === null ||
      typeof (signal as { aborted?: unknown }).aborted !== 'boolean' ||
      typeof (signal as { addEventListener?: unknown }).addEventListener !== 'function')
  ) {
    throw new InvalidArgumentError('options.signal', signal, 'an AbortSignal');
  }
  if (hedge !== undefined) bool('hedge', hedge);
  if (isRetryable !== undefined && typeof isRetryable !== 'function') {
    throw new InvalidArgumentError('options.isRetryable', isRetryable, 'a function');
  }
  if (operation !== undefined && typeof operation !== 'string') {
    throw new InvalidArgumentError('options.operation', operation, 'a string');
  }
}
