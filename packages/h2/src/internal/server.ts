import net from 'node:net';
import tls from 'node:tls';
import { InvalidArgumentError } from '@engram/common';
import {
  type ConnectionOptions,
  H2Connection,
  type H2Stream,
  type LocalSettings,
  resolveLocalSettings,
} from './connection.js';
import { H2_ERROR } from './frames.js';

/** Gets each new request stream; `stream.headers` holds the request headers. */
export type StreamListener = (stream: H2Stream) => void;

/** The server side of one connection. */
export class H2ServerConnection extends H2Connection {
  readonly #onStream: StreamListener;

  constructor(socket: net.Socket, options: ConnectionOptions, onStream: StreamListener) {
    super(socket, true, options);
    this.#onStream = onStream;
    this.start();
  }

  protected onPeerStream(
    id: number,
    headers: string[],
    endStream: boolean,
    contentLength: number,
  ): void {
    if (this.goawaySent || this.streams.size >= this.local.maxConcurrentStreams) {
      this.refuseStream(id, H2_ERROR.REFUSED_STREAM);
      return;
    }
    const s = this.newStream(id);
    s.headers = headers;
    s.remoteEnded = endStream;
    s.contentLeft = contentLength;
    this.#onStream(s);
  }
}

export interface H2ServerOptions {
  /** TLS (ALPN `h2`) when set; plaintext HTTP/2 (prior knowledge) otherwise. */
  readonly tls?: tls.TlsOptions | null;
  readonly settings?: Partial<LocalSettings>;
  /**
   * A connection with no open stream and no traffic for this long gets GOAWAY and is ended;
   * one still there after another such period is destroyed (clients that connect and never
   * speak, or never close after GOAWAY). 0 = never. Default 300 000 (5 min).
   */
  readonly idleTimeoutMs?: number;
  /** Monotonic milliseconds for the stream-reset rate limit (tests). Default `performance.now`. */
  readonly now?: () => number;
  /** Called for every request stream on every connection. */
  readonly onStream: StreamListener;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 300_000; // 5 min

/**
 * An HTTP/2 server: a `net.Server` (or `tls.Server`) whose connections are
 * `H2ServerConnection`s. Listen through `server` (`listen(port, host)` or `listen({ fd })`).
 */
export class H2Server {
  readonly server: net.Server;
  readonly connections = new Set<H2ServerConnection>();
  readonly #options: ConnectionOptions;
  readonly #onStream: StreamListener;
  readonly #idleTimeoutMs: number;
  #closeWaiters: (() => void)[] = [];

  constructor(options: H2ServerOptions) {
    // Checked here, once: a bad value must not surface as a throw on every accepted socket.
    this.#options = {
      settings: resolveLocalSettings(options.settings),
      ...(options.now === undefined ? {} : { now: options.now }),
    };
    const idle = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (!Number.isInteger(idle) || idle < 0 || idle > 2 ** 31 - 1) {
      throw new InvalidArgumentError('idleTimeoutMs', idle, 'an integer in 0..2147483647 (ms)');
    }
    this.#idleTimeoutMs = idle;
    this.#onStream = options.onStream;
    if (options.tls != null) {
      const server = tls.createServer({ ...options.tls, ALPNProtocols: ['h2'] });
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        // gRPC clients always negotiate h2; anything else cannot be served.
        if (socket.alpnProtocol !== 'h2') socket.destroy();
        else this.#accept(socket);
      });
      server.on('tlsClientError', () => {});
      this.server = server;
    } else {
      this.server = net.createServer((socket) => this.#accept(socket));
    }
  }

  #accept(socket: net.Socket): void {
    socket.on('error', () => {});
    const c = new H2ServerConnection(socket, this.#options, this.#onStream);
    this.connections.add(c);
    if (this.#idleTimeoutMs > 0) {
      // Node re-arms the socket's timer on every read and write: no cost per frame here.
      socket.setTimeout(this.#idleTimeoutMs);
      socket.on('timeout', () => {
        if (c.streams.size > 0) return; // long-lived streams (Health/Watch) are not idle
        if (c.isClosing) c.destroy();
        else c.close();
      });
    }
    c.onClose = () => {
      this.connections.delete(c);
      if (this.connections.size === 0) for (const w of this.#closeWaiters.splice(0)) w();
    };
  }

  /**
   * Stops accepting and sends GOAWAY on every connection; each closes once its open streams
   * have. Resolves true when all are closed, false when `graceMs` passed first.
   */
  async shutdown(graceMs: number): Promise<boolean> {
    if (this.server.listening) this.server.close();
    for (const c of this.connections) c.close();
    if (this.connections.size === 0) return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), graceMs);
      this.#closeWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Closes every connection now; their open streams close with `CLOSE.CONNECTION_LOST`. */
  destroy(): void {
    if (this.server.listening) this.server.close();
    for (const c of this.connections) c.destroy();
  }

  /** `shutdown(graceMs)`, then `destroy()` whatever is left. */
  async close(graceMs: number): Promise<void> {
    await this.shutdown(graceMs);
    this.destroy();
  }
}
