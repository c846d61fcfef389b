import type { HttpReply } from './metrics-server.js';

/** Why /ready answers 503 (each a condition a load balancer should route around). */
export type NotReadyReason = 'no-table' | 'draining' | 'panic';

export interface Readiness {
  readonly ready: boolean;
  /** Every condition that holds, first the one that matters most. */
  readonly reasons: readonly NotReadyReason[];
  readonly epoch: number;
}

/**
 * The readiness verdict (pure): ready when a usable table is published (one with nodes), the
 * router is not draining, and not in panic (fewer nodes up than health.panicThreshold).
 */
export function readiness(s: {
  readonly published: boolean;
  readonly draining: boolean;
  readonly panic: boolean;
  readonly epoch: number;
}): Readiness {
  const reasons: NotReadyReason[] = [];
  if (!s.published) reasons.push('no-table');
  if (s.draining) reasons.push('draining');
  if (s.panic) reasons.push('panic');
  return { ready: reasons.length === 0, reasons, epoch: s.epoch };
}

const JSON_TYPE = 'application/json; charset=utf-8';
const NO_STORE = Object.freeze({ 'cache-control': 'no-store' });

function json(status: number, body: unknown): HttpReply {
  return { status, contentType: JSON_TYPE, body: `${JSON.stringify(body)}\n`, headers: NO_STORE };
}

/** `GET /ready`: 200 `{"ready":true,…}`, or 503 with the reasons. */
export function readyRoute(check: () => Readiness): () => HttpReply {
  return () => {
    const r = check();
    return json(r.ready ? 200 : 503, r);
  };
}

/**
 * `GET /live`: answered by the main thread's event loop (so an answer at all is the main
 * thread being alive); 503 when the data plane should run on workers and none is alive.
 */
export function liveRoute(
  workers: () => { readonly workers: number; readonly live: number },
): () => HttpReply {
  return () => {
    const w = workers();
    const live = w.workers === 0 || w.live > 0;
    return json(live ? 200 : 503, { live, workers: w.workers, liveWorkers: w.live });
  };
}
