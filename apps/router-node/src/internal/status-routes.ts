/**
 * The status page's routes on the metrics listener: `GET /` (the page) and `GET /status.json`
 * (its data), with the request-history sampler they read, started here and stopped by `stop`.
 */
import type { Ring } from '@engram/ring';
import type { TableView } from './admin.js';
import type { HttpReply, HttpRoutes } from './metrics-server.js';
import { statusPageRoute } from './status-page.js';
import { readRequestTotals, StatusSampler } from './status-sampler.js';
import { buildStatusSnapshot } from './status-snapshot.js';
import { systemTimers, type Timers } from './timers.js';

/** `GET /status.json` of `snapshot()`. */
export function statusJsonRoute(snapshot: () => unknown): () => HttpReply {
  return () => ({
    status: 200,
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify(snapshot()),
    headers: { 'cache-control': 'no-store' },
  });
}

/**
 * Starts sampling the request histograms of `state` (every second, on unref'd timers) and
 * returns the two routes and `stop` (the sampler's timer).
 */
export function startStatusRoutes(
  state: SharedArrayBuffer,
  table: () => TableView,
  ring: () => Ring,
  timers: Timers = systemTimers,
  clock: { now(): number } = Date,
): { routes: HttpRoutes; stop(): void } {
  const sampler = new StatusSampler({ read: () => readRequestTotals(state), clock });
  sampler.start(timers);
  const snapshot = () => buildStatusSnapshot(table(), ring(), sampler.history(), clock.now());
  return {
    routes: { '/': statusPageRoute(), '/status.json': statusJsonRoute(snapshot) },
    stop: () => sampler.stop(),
  };
}
