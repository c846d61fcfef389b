import * as http2 from 'node:http2';
import type { ConnectionFactory, ConnectionHooks } from './connection-set.js';
import { type RawConnectionOptions, superviseLiveness } from './liveness.js';

/**
 * Connection-level receive window of a raw session. HTTP/2 starts every connection at
 * 65 535 B shared by all its streams; a forwarding router with dozens of responses in
 * flight on one session would stall on WINDOW_UPDATE round trips. A window is a credit,
 * not an allocation: it costs no memory until data actually arrives.
 */
export const SESSION_CONNECTION_WINDOW_BYTES = 1024 * 1024; // 1 MiB

const SESSION_OPTIONS = {
  // Node's default 10 MB cap tears the whole session down with ENHANCE_YOUR_CALM under a
  // burst of streams; grpc-js disables it for the same reason (transport.ts). Our peers are
  // our own nodes, and the pool's PING keep-alive still catches a stuck connection.
  maxSessionMemory: Number.MAX_SAFE_INTEGER,
} as const;

/**
 * Raw `node:http2` client sessions to one node, for forwarding gRPC frames undecoded.
 * A session is broken (closed and replaced by the set after backoff) on 'error', 'goaway',
 * 'close', a connect that outlasts the connect timeout, or a keep-alive PING left
 * unanswered for the keep-alive timeout.
 */
export class Http2SessionFactory implements ConnectionFactory<http2.ClientHttp2Session> {
  readonly kind = 'session' as const;
  readonly authority: string;
  private readonly options: RawConnectionOptions;
  private readonly connectOptions: http2.SecureClientSessionOptions;
  /** Sessions that received the peer's SETTINGS (only those can close gracefully). */
  private readonly settled = new WeakSet<http2.ClientHttp2Session>();

  constructor(options: RawConnectionOptions) {
    this.options = options;
    const creds = options.credentials;
    if (creds.kind === 'tls') {
      this.authority = `https://${options.address}`;
      this.connectOptions = {
        ...SESSION_OPTIONS,
        ALPNProtocols: ['h2'],
        ...(creds.ca === undefined ? {} : { ca: creds.ca }),
        ...(creds.cert === undefined ? {} : { cert: creds.cert }),
        ...(creds.key === undefined ? {} : { key: creds.key }),
        ...(creds.serverName === undefined ? {} : { servername: creds.serverName }),
      };
    } else {
      this.authority = `http://${options.address}`;
      this.connectOptions = { ...SESSION_OPTIONS };
    }
  }

  open(index: number, hooks: ConnectionHooks): http2.ClientHttp2Session {
    const { clock, connectTimeoutMs, keepaliveIntervalMs, keepaliveTimeoutMs, address } =
      this.options;
    const session = http2.connect(this.authority, this.connectOptions);
    const live = superviseLiveness({
      clock,
      connectTimeoutMs,
      keepaliveIntervalMs,
      keepaliveTimeoutMs,
      label: `session ${index} to ${address}`,
      hooks,
      ping: (done) => session.ping((err) => done(err)),
      destroy: () => session.destroy(),
      isGone: () => session.closed || session.destroyed,
    });
    const broken = live.broken;
    // READY on the server's first SETTINGS frame, not on TCP/TLS connect: a peer that
    // accepts sockets but does not speak HTTP/2 must fail the connect timeout.
    session.once('remoteSettings', () => {
      this.settled.add(session);
      if (session.destroyed) return;
      session.setLocalWindowSize(SESSION_CONNECTION_WINDOW_BYTES);
      live.ready();
    });
    session.on('error', (err: Error) => broken(err));
    session.once('goaway', (errorCode: number) =>
      broken(new Error(`session ${index} to ${address}: GOAWAY received (code ${errorCode})`)),
    );
    session.once('close', () => broken(new Error(`session ${index} to ${address}: closed`)));
    return session;
  }

  close(session: http2.ClientHttp2Session): Promise<void> {
    if (session.destroyed) return Promise.resolve();
    const { clock, keepaliveTimeoutMs } = this.options;
    return new Promise<void>((resolve) => {
      // Graceful: in-flight streams may finish. A stream that never ends must not hold
      // removeNode()/close() forever, so after the keep-alive timeout the socket goes anyway.
      const grace = clock.setTimeout(() => {
        session.destroy();
        resolve();
      }, keepaliveTimeoutMs);
      session.once('close', () => {
        clock.clearTimeout(grace);
        resolve();
      });
      // Node 20's close() on a session that never got the peer's SETTINGS marks it
      // destroyed but leaves the socket open and never emits 'close': destroy those.
      if (this.settled.has(session) && !session.closed) session.close();
      else session.destroy();
    });
  }
}
