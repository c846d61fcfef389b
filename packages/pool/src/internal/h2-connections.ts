import { parseAddress } from '@engram/common';
import { H2_ERROR_CODES, H2ClientConnection, H2Error } from '@engram/h2';
import type { ConnectionFactory, ConnectionHooks } from './connection-set.js';
import { type RawConnectionOptions, superviseLiveness } from './liveness.js';

/**
 * Connection-level receive window of an `@engram/h2` connection: dozens of responses in
 * flight on one connection must not stall on WINDOW_UPDATE round trips. A window is a
 * credit, not an allocation.
 */
export const H2_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024; // 16 MiB

/**
 * `@engram/h2` client connections to one node: the proxy's forwarding path, with none of
 * `node:http2`'s per-stream objects. Broken (closed and replaced after backoff) on close,
 * GOAWAY, a connect that outlasts the connect timeout (READY means the server's SETTINGS
 * arrived, not just TCP), or a keep-alive PING left unanswered for the keep-alive timeout.
 */
export class H2ConnectionFactory implements ConnectionFactory<H2ClientConnection> {
  readonly kind = 'h2' as const;
  private readonly options: RawConnectionOptions;
  private readonly host: string;
  private readonly port: number;

  constructor(options: RawConnectionOptions) {
    this.options = options;
    const { host, port } = parseAddress(options.address);
    this.host = host;
    this.port = port;
  }

  open(index: number, hooks: ConnectionHooks): H2ClientConnection {
    const {
      clock,
      connectTimeoutMs,
      keepaliveIntervalMs,
      keepaliveTimeoutMs,
      address,
      credentials,
    } = this.options;
    const c = H2ClientConnection.connect({
      host: this.host,
      port: this.port,
      settings: { connectionWindowSize: H2_CONNECTION_WINDOW_BYTES },
      tls:
        credentials.kind === 'tls'
          ? {
              ...(credentials.ca === undefined ? {} : { ca: credentials.ca }),
              ...(credentials.cert === undefined ? {} : { cert: credentials.cert }),
              ...(credentials.key === undefined ? {} : { key: credentials.key }),
              ...(credentials.serverName === undefined
                ? {}
                : { servername: credentials.serverName }),
            }
          : null,
    });
    const live = superviseLiveness({
      clock,
      connectTimeoutMs,
      keepaliveIntervalMs,
      keepaliveTimeoutMs,
      label: `connection ${index} to ${address}`,
      hooks,
      ping: (done) => c.ping(done),
      destroy: (cause) => c.destroy(new H2Error(H2_ERROR_CODES.H2ConnectionClosed, cause.message)),
      isGone: () => c.isDestroyed,
    });
    const broken = live.broken;
    c.onReady = () => live.ready();
    c.onGoaway = (_last, code) =>
      broken(new Error(`connection ${index} to ${address}: GOAWAY received (code ${code})`));
    // The H2Error keeps the socket error (e.g. ECONNREFUSED) as its cause: keep the chain.
    c.onClose = (err) =>
      broken(
        new Error(
          `connection ${index} to ${address}: ${err?.message ?? 'closed'}`,
          err === null ? undefined : { cause: err },
        ),
      );
    return c;
  }

  close(c: H2ClientConnection): Promise<void> {
    if (c.isDestroyed) return Promise.resolve();
    const { clock, keepaliveTimeoutMs } = this.options;
    return new Promise<void>((resolve) => {
      // Graceful: in-flight streams may finish; a stream that never ends must not hold
      // removeNode()/close() forever, so after the keep-alive timeout the socket goes anyway.
      const grace = clock.setTimeout(() => {
        c.destroy();
        resolve();
      }, keepaliveTimeoutMs);
      c.socket.once('close', () => {
        clock.clearTimeout(grace);
        resolve();
      });
      if (c.isReady) c.close();
      else c.destroy();
    });
  }
}
