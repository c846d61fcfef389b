import * as grpc from '@grpc/grpc-js';
import type { HealthCheckResponse, ServingStatus } from './messages.js';
import { HealthDefinition, type HealthHandlers } from './services.js';

type Watcher = grpc.ServerWritableStream<{ service: string }, HealthCheckResponse>;

/**
 * Serving status per service name ("" is the server overall), served as
 * `grpc.health.v1.Health` (Check and Watch). Watch streams get every change.
 */
export class HealthReporter {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Map<string, Set<Watcher>>();
  #closed = false;

  constructor(initial: Readonly<Record<string, ServingStatus>> = { '': 'SERVING' }) {
    for (const [service, status] of Object.entries(initial)) this.#statuses.set(service, status);
  }

  getStatus(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  setStatus(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const w of this.#watchers.get(service) ?? []) w.write({ status });
  }

  /**
   * Marks every service NOT_SERVING and ends open Watch streams (they would otherwise keep
   * `server.tryShutdown` waiting). Later Watch calls end immediately.
   */
  shutdown(): void {
    for (const service of this.#statuses.keys()) this.setStatus(service, 'NOT_SERVING');
    this.#closed = true;
    for (const set of this.#watchers.values()) for (const w of set) w.end();
    this.#watchers.clear();
  }

  readonly handlers: HealthHandlers = {
    Check: (call, callback) => {
      const status = this.#statuses.get(call.request.service);
      if (status === undefined) {
        callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      } else {
        callback(null, { status });
      }
    },
    Watch: (call) => {
      const service = call.request.service;
      call.write({ status: this.#statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      if (this.#closed) {
        call.end();
        return;
      }
      let set = this.#watchers.get(service);
      if (set === undefined) {
        set = new Set();
        this.#watchers.set(service, set);
      }
      set.add(call);
      call.on('cancelled', () => {
        this.#watchers.get(service)?.delete(call);
      });
    },
  };
}

/**
 * Adds `grpc.health.v1.Health` to a server. `initial` maps service names ("" = overall) to
 * their status; default `{ '': 'SERVING' }`. Returns the reporter that changes them.
 */
export function addHealthService(
  server: grpc.Server,
  initial?: Readonly<Record<string, ServingStatus>>,
): HealthReporter {
  const reporter = new HealthReporter(initial);
  server.addService(HealthDefinition, reporter.handlers);
  return reporter;
}
