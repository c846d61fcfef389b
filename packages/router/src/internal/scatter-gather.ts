import type { RoutingInfo, SpaceError, SpaceResult } from '@engram/proto';
import { toGrpcStatus } from './errors.js';
import { type Routed, RoutingStrategy } from './types.js';

/** What one space's sub-query produced: its results and the errors its node reported. */
export interface SpaceAnswer {
  readonly results: readonly SpaceResult[];
  readonly errors: readonly SpaceError[];
}

/** The merged answer of a scatter-gather query. */
export interface Gathered {
  readonly results: SpaceResult[];
  readonly errors: SpaceError[];
  readonly routing: RoutingInfo;
}

/**
 * Merges the per-space outcomes of a scatter-gather (one settled sub-query per space, in
 * `spaceIds` order) into one answer: results concatenated, a failed space becomes a
 * `SpaceError` with its gRPC status, `routing.servedBy` lists the nodes that served (distinct,
 * comma-separated), `attempts` sums every space's attempts, `fallback` is true when any space
 * was served by fall-back, `tableEpoch` is the newest epoch a decision used (`epochNow` when
 * no space got as far as a decision).
 */
export function gather(
  spaceIds: readonly string[],
  settled: readonly PromiseSettledResult<Routed<SpaceAnswer>>[],
  epochs: readonly number[],
  epochNow: number,
): Gathered {
  const results: SpaceResult[] = [];
  const errors: SpaceError[] = [];
  const servedBy: string[] = [];
  let attempts = 0;
  let fallback = false;
  let degraded = false;
  let tableEpoch = Number.NEGATIVE_INFINITY;
  for (const epoch of epochs) if (epoch > tableEpoch) tableEpoch = epoch;
  for (let i = 0; i < settled.length; i++) {
    const outcome = settled[i]!;
    const spaceId = spaceIds[i]!;
    if (outcome.status === 'fulfilled') {
      const { value, routing } = outcome.value;
      attempts += routing.attempts;
      fallback ||= routing.fallback;
      degraded ||= routing.degraded;
      if (!servedBy.includes(routing.servedBy)) servedBy.push(routing.servedBy);
      for (const r of value.results) results.push(r);
      for (const e of value.errors) errors.push(e);
    } else {
      const error = outcome.reason as { attempts?: unknown };
      if (typeof error?.attempts === 'number') attempts += error.attempts;
      const status = toGrpcStatus(outcome.reason);
      errors.push({ spaceId, code: status.code, message: status.message });
    }
  }
  return {
    results,
    errors,
    routing: {
      servedBy: servedBy.join(','),
      attempts,
      fallback,
      strategy: RoutingStrategy.ScatterGather,
      tableEpoch: tableEpoch === Number.NEGATIVE_INFINITY ? epochNow : tableEpoch,
      acknowledged: 0,
      asked: 0,
      degraded,
    },
  };
}
