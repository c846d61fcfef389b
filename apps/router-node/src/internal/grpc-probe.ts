import type { PoolCredentials } from '@engram/pool';
import { checkHealth, HealthClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import type { Probe, ProbeTarget } from './health-monitor.js';

function pem(v: string | Buffer | undefined): Buffer | null {
  return v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v;
}

function keyOf(target: ProbeTarget): string {
  return `${target.id}\n${target.address}`;
}

/**
 * Health probes over `grpc.health.v1` with the same credentials the data plane uses, one
 * grpc-js client per watched node (closed when the node is forgotten).
 *
 * A failed probe closes its client: the next probe dials afresh. A kept client would wait out
 * grpc-js's reconnect backoff (1 s growing by 1.6× to 120 s) and fail at once meanwhile, so a
 * node back after a long outage would be seen up to minutes late (the soak saw 2.5–9 s after
 * restarts of nodes down for ~10 s). A probe of a down node costs one connect (refused, or
 * accepted and answered), which the probe interval bounds.
 */
export class GrpcProbe implements Probe {
  readonly #credentials: grpc.ChannelCredentials;
  readonly #options: grpc.ClientOptions;
  readonly #clients = new Map<string, HealthClient>();

  constructor(upstream: PoolCredentials) {
    this.#credentials =
      upstream.kind === 'insecure'
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(pem(upstream.ca), pem(upstream.key), pem(upstream.cert));
    this.#options =
      upstream.kind === 'tls' && upstream.serverName !== undefined
        ? { 'grpc.ssl_target_name_override': upstream.serverName }
        : {};
  }

  async check(target: ProbeTarget, timeoutMs: number): Promise<boolean> {
    const key = keyOf(target);
    let client = this.#clients.get(key);
    if (client === undefined) {
      client = new HealthClient(target.address, this.#credentials, this.#options);
      this.#clients.set(key, client);
    }
    let serving = false;
    try {
      const res = await checkHealth(client, '', { deadline: Date.now() + timeoutMs });
      serving = res.status === 'SERVING';
    } catch {
      serving = false;
    }
    if (!serving && this.#clients.get(key) === client) {
      client.close();
      this.#clients.delete(key);
    }
    return serving;
  }

  forget(target: ProbeTarget): void {
    const key = keyOf(target);
    this.#clients.get(key)?.close();
    this.#clients.delete(key);
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
